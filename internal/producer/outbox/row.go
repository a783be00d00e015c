package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ordersonkafka/orders/internal/event/envelope"
	"github.com/ordersonkafka/orders/internal/order"
)

// Row is one event ready for the outbox table.
type Row struct {
	EventID       uuid.UUID
	Topic         string
	Key           []byte // the order ID in canonical text form: the message key
	Payload       []byte // the Avro body, not framed (the relay adds the frame)
	SchemaVersion int    // the schemas/ version Payload was written with
	Headers       []byte // a JSON object of header name to value (the headers column)
}

// NewRow returns the outbox row of ev for topic, whose Avro body payload was
// written with schemas/ version schemaVersion.
func NewRow(topic string, ev order.Event, payload []byte, schemaVersion int) (Row, error) {
	headers, err := json.Marshal(map[string]string{
		envelope.HeaderEventID:       ev.ID.String(),
		envelope.HeaderEventType:     string(ev.Type),
		envelope.HeaderTraceparent:   ev.Meta.Traceparent,
		envelope.HeaderCorrelationID: ev.Meta.CorrelationID,
	})
	if err != nil {
		return Row{}, fmt.Errorf("outbox headers of event %s: %w", ev.ID, err)
	}
	return Row{
		EventID:       ev.ID,
		Topic:         topic,
		Key:           []byte(ev.Order.ID.String()),
		Payload:       payload,
		SchemaVersion: schemaVersion,
		Headers:       headers,
	}, nil
}

// InsertSQL inserts one outbox row whose values are $1 to $6, in the order
// of Row's fields. It is a statement of its own (a SELECT without FROM
// yields one row) and is written to end a longer one: after a WITH clause,
// whose parameters then number from $7, it writes the row in the same
// statement as the order; followed by "FROM u", it inserts the row only if
// the WITH's u returns one.
const InsertSQL = `
INSERT INTO outbox (event_id, topic, message_key, payload, schema_version, headers)
SELECT $1::uuid, $2::text, $3::bytea, $4::bytea, $5::int, $6::jsonb`

// Execer runs a statement: pgx.Tx, *pgxpool.Pool and *pgx.Conn are ones.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

var errNotInsertSQL = errors.New("outbox: statement does not contain InsertSQL")

// Insert runs stmt, which is InsertSQL or a statement built around it, with
// r as $1 to $6 and args from $7 on, and returns how many outbox rows it
// inserted. Errors are db's, unwrapped, or an error if stmt does not
// contain InsertSQL (its parameters would not be r's).
func Insert(ctx context.Context, db Execer, stmt string, r Row, args ...any) (int64, error) {
	if !strings.Contains(stmt, InsertSQL) {
		return 0, errNotInsertSQL
	}
	all := make([]any, 0, 6+len(args))
	all = append(all, r.EventID, r.Topic, r.Key, r.Payload, r.SchemaVersion, r.Headers)
	tag, err := db.Exec(ctx, stmt, append(all, args...)...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
