package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SetAside is a row of outbox_set_aside: an event the relay does not
// publish until it is moved back (RetrySetAside), because Kafka refused it for what
// it is, or because an earlier event of its order was set aside.
type SetAside struct {
	ID         int64 // its outbox id, which it keeps
	EventID    string
	OrderID    string // the message key
	EventType  string // the event_type header
	Bytes      int    // key, payload (before the 5-byte frame) and headers column
	Reason     string
	CreatedAt  time.Time // when order-api wrote it
	SetAsideAt time.Time
}

const listSetAsideSQL = `
SELECT id, event_id::text, message_key, COALESCE(headers->>'event_type', ''),
       octet_length(message_key) + octet_length(payload) + octet_length(headers::text), reason, created_at, set_aside_at
FROM outbox_set_aside ORDER BY id`

// ListSetAside returns every row set aside, in outbox id order. Errors
// are db's.
func ListSetAside(ctx context.Context, db *pgxpool.Pool) ([]SetAside, error) {
	rs, err := db.Query(ctx, listSetAsideSQL)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rs, func(row pgx.CollectableRow) (SetAside, error) {
		var (
			s   SetAside
			key []byte
		)
		err := row.Scan(&s.ID, &s.EventID, &key, &s.EventType, &s.Bytes, &s.Reason, &s.CreatedAt, &s.SetAsideAt)
		s.OrderID = string(key)
		return s, err
	})
}

// retrySQL moves the set-aside rows of order $1 (of every order when $1 is
// NULL) back to the outbox, with their ids: the relay reads by id, so each
// order's rows go out in their order, and before any later row of the
// order, which the relay set aside too.
const retrySQL = `WITH back AS (
    DELETE FROM outbox_set_aside WHERE $1::bytea IS NULL OR message_key = $1::bytea
    RETURNING id, event_id, topic, message_key, payload, schema_version, headers, created_at
)
INSERT INTO outbox (id, event_id, topic, message_key, payload, schema_version, headers, created_at)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at FROM back ORDER BY id`

// RetrySetAside moves the set-aside rows of the order orderID (of every order
// when orderID is empty) back to the outbox, for the relay to publish
// again, and wakes the relay. It returns how many rows it moved.
//
// It holds writes to the outbox (order changes, the relay's reads) for
// its own few milliseconds: a relay reading meanwhile could otherwise set
// aside again, as following the rows being moved, a later row of the order
// written just before. Errors are db's, a lock not granted within 10 s
// among them.
func RetrySetAside(ctx context.Context, db *pgxpool.Pool, orderID string) (int64, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		return 0, fmt.Errorf("lock the outbox: %w", err)
	}
	var key []byte
	if orderID != "" {
		key = []byte(orderID)
	}
	tag, err := tx.Exec(ctx, retrySQL, key)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	if tag.RowsAffected() > 0 {
		_, _ = db.Exec(ctx, "SELECT pg_notify($1, '')", Channel) // else the relay's poll finds them
	}
	return tag.RowsAffected(), nil
}
