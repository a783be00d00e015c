package outbox_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/event/envelope"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
	"github.com/ordersonkafka/orders/migrations"
)

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func event(t *testing.T, meta order.Meta) order.Event {
	t.Helper()
	_, ev, err := order.Place(order.NewOrder{CustomerID: "c-1", Currency: "EUR",
		Items: []order.Item{{SKU: "A", Quantity: 1, UnitPriceMinor: 100}}}, order.Now(), meta)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// readHeaders returns the headers column of the outbox row of eventID, as
// the relay reads it.
func readHeaders(t *testing.T, db *pgtest.DB, ev order.Event) []byte {
	t.Helper()
	var b []byte
	if err := db.Pool.QueryRow(context.Background(), "SELECT headers FROM outbox WHERE event_id = $1", ev.ID).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

// An event's headers go through the outbox row PostgreSQL stores (jsonb,
// which reorders keys) to the Kafka headers the relay publishes, in the
// documented names and order, and back to the consumer's Meta.
func TestHeadersRoundTripThroughTheOutbox(t *testing.T) {
	db := pgtest.MustDB(t, migrations.Orders())
	ctx := context.Background()
	for name, meta := range map[string]order.Meta{
		"both set":               {Traceparent: traceparent, CorrelationID: "corr-1"},
		"no traceparent":         {CorrelationID: "corr-2"},
		"correlation ID of 128":  {Traceparent: traceparent, CorrelationID: strings.Repeat("c", 128)},
		"non-ASCII text is kept": {CorrelationID: "café-☕"},
	} {
		t.Run(name, func(t *testing.T) {
			ev := event(t, meta)
			row, err := outbox.NewRow("order-events", ev, []byte{0x02}, 2)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := outbox.Insert(ctx, db.Pool, outbox.InsertSQL, row); err != nil || n != 1 {
				t.Fatalf("insert: %d rows, %v", n, err)
			}
			var (
				key, payload []byte
				topic        string
				version      int
			)
			if err := db.Pool.QueryRow(ctx, "SELECT topic, message_key, payload, schema_version FROM outbox WHERE event_id = $1", ev.ID).
				Scan(&topic, &key, &payload, &version); err != nil {
				t.Fatal(err)
			}
			if topic != "order-events" || string(key) != ev.Order.ID.String() || string(payload) != "\x02" || version != 2 {
				t.Errorf("row: topic %q key %q payload % x version %d", topic, key, payload, version)
			}
			headers, err := outbox.KafkaHeaders(readHeaders(t, db, ev))
			if err != nil {
				t.Fatal(err)
			}
			want := []kafka.Header{
				{Key: "event_id", Value: []byte(ev.ID.String())},
				{Key: "event_type", Value: []byte("PLACED")},
				{Key: "traceparent", Value: []byte(meta.Traceparent)},
				{Key: "correlation_id", Value: []byte(meta.CorrelationID)},
			}
			if !reflect.DeepEqual(headers, want) {
				t.Errorf("Kafka headers\n got %s\nwant %s", show(headers), show(want))
			}
			tp, corr := envelope.TraceHeaders(headers)
			if tp != meta.Traceparent || corr != meta.CorrelationID {
				t.Errorf("parsed back traceparent %q correlation_id %q, want %q %q", tp, corr, meta.Traceparent, meta.CorrelationID)
			}
		})
	}
}

// The headers column is exactly what order-api has always written: the
// four names, as a JSON object (stored as jsonb).
func TestNewRowWritesTheDocumentedHeaders(t *testing.T) {
	ev := event(t, order.Meta{Traceparent: traceparent, CorrelationID: "corr"})
	row, err := outbox.NewRow("t", ev, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"correlation_id":"corr","event_id":"%s","event_type":"PLACED","traceparent":"%s"}`, ev.ID, traceparent)
	if string(row.Headers) != want {
		t.Errorf("headers %s\nwant    %s", row.Headers, want)
	}
	if row.EventID != ev.ID || string(row.Key) != ev.Order.ID.String() {
		t.Errorf("row %+v", row)
	}
}

// InsertSQL ends a longer statement: after a WITH whose parameters start at
// $7, followed by FROM u it writes the row only when u has one.
func TestInsertEndsAStatementBuiltAroundIt(t *testing.T) {
	db := pgtest.MustDB(t, migrations.Orders())
	ctx := context.Background()
	const stmt = `WITH u AS (SELECT 1 WHERE $7::bool)` + outbox.InsertSQL + ` FROM u`
	for _, write := range []bool{false, true} {
		ev := event(t, order.Meta{})
		row, err := outbox.NewRow("order-events", ev, []byte{1}, 2)
		if err != nil {
			t.Fatal(err)
		}
		n, err := outbox.Insert(ctx, db.Pool, stmt, row, write)
		if err != nil {
			t.Fatal(err)
		}
		var count int
		if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE event_id = $1", ev.ID).Scan(&count); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 0, true: 1}[write]; n != int64(want) || count != want {
			t.Errorf("u has a row: %v: Insert says %d rows, the outbox has %d, want %d", write, n, count, want)
		}
	}
	if _, err := outbox.Insert(ctx, db.Pool, "INSERT INTO outbox DEFAULT VALUES", outbox.Row{}); err == nil {
		t.Error("a statement without InsertSQL was run")
	}
}

func show(hs []kafka.Header) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "%s=%q ", h.Key, h.Value)
	}
	return b.String()
}
