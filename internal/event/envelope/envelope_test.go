package envelope_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/event/envelope"
	"github.com/ordersonkafka/orders/internal/order"
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
			row, err := envelope.NewRow("order-events", ev, []byte{0x02}, 2)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := envelope.Insert(ctx, db.Pool, envelope.InsertSQL, row); err != nil || n != 1 {
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
			headers, err := envelope.KafkaHeaders(readHeaders(t, db, ev))
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
	row, err := envelope.NewRow("t", ev, nil, 1)
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
	const stmt = `WITH u AS (SELECT 1 WHERE $7::bool)` + envelope.InsertSQL + ` FROM u`
	for _, write := range []bool{false, true} {
		ev := event(t, order.Meta{})
		row, err := envelope.NewRow("order-events", ev, []byte{1}, 2)
		if err != nil {
			t.Fatal(err)
		}
		n, err := envelope.Insert(ctx, db.Pool, stmt, row, write)
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
	if _, err := envelope.Insert(ctx, db.Pool, "INSERT INTO outbox DEFAULT VALUES", envelope.Row{}); err == nil {
		t.Error("a statement without InsertSQL was run")
	}
}

// The relay refuses a headers column that is not a JSON object of strings,
// and publishes only the names it knows, in order.
func TestKafkaHeadersKeepsTheOrderAndOnlyOurNames(t *testing.T) {
	got, err := envelope.KafkaHeaders([]byte(`{"x":"1","correlation_id":"c","event_id":"e"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []kafka.Header{{Key: "event_id", Value: []byte("e")}, {Key: "correlation_id", Value: []byte("c")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %s, want %s", show(got), show(want))
	}
	for _, bad := range []string{``, `[]`, `{"event_id":1}`} {
		if _, err := envelope.KafkaHeaders([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The consumer believes a traceparent or correlation_id only if it is at
// most MaxTraceHeader bytes of valid text; anything else is ignored, as are
// other headers.
func TestTraceHeadersBounds(t *testing.T) {
	at := strings.Repeat("a", envelope.MaxTraceHeader)
	over := at + "a"
	for _, tc := range []struct {
		name     string
		headers  []kafka.Header
		tp, corr string
	}{
		{"none", nil, "", ""},
		{"both", []kafka.Header{{Key: "traceparent", Value: []byte(traceparent)}, {Key: "correlation_id", Value: []byte("c")}}, traceparent, "c"},
		{"at the bound", []kafka.Header{{Key: "traceparent", Value: []byte(at)}, {Key: "correlation_id", Value: []byte(at)}}, at, at},
		{"over the bound", []kafka.Header{{Key: "traceparent", Value: []byte(over)}, {Key: "correlation_id", Value: []byte(over)}}, "", ""},
		{"invalid UTF-8", []kafka.Header{{Key: "correlation_id", Value: []byte("c\xff")}}, "", ""},
		{"NUL", []kafka.Header{{Key: "traceparent", Value: []byte("00-\x00")}}, "", ""},
		{"names are case-sensitive", []kafka.Header{{Key: "Traceparent", Value: []byte(traceparent)}, {Key: "CORRELATION_ID", Value: []byte("c")}}, "", ""},
		{"other headers are ignored", []kafka.Header{{Key: "event_id", Value: []byte("e")}, {Key: "dlq_original_topic", Value: []byte("t")}}, "", ""},
		{"the last believable one wins", []kafka.Header{{Key: "correlation_id", Value: []byte("a")}, {Key: "correlation_id", Value: []byte("b")}, {Key: "correlation_id", Value: []byte(over)}}, "", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, corr := envelope.TraceHeaders(tc.headers)
			if tp != tc.tp || corr != tc.corr {
				t.Errorf("got %.20q %.20q, want %.20q %.20q", tp, corr, tc.tp, tc.corr)
			}
		})
	}
}

func show(hs []kafka.Header) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "%s=%q ", h.Key, h.Value)
	}
	return b.String()
}

// kafkaHeadersByMap is KafkaHeaders as it was before its fast path: the
// reference the fast path must agree with.
func kafkaHeadersByMap(headers []byte) ([]kafka.Header, error) {
	var m map[string]string
	if err := json.Unmarshal(headers, &m); err != nil {
		return nil, err
	}
	var out []kafka.Header
	for _, k := range envelope.HeaderOrder {
		if v, ok := m[k]; ok {
			out = append(out, kafka.Header{Key: k, Value: []byte(v)})
		}
	}
	return out, nil
}

// FuzzKafkaHeaders: KafkaHeaders reads every headers column exactly as
// json.Unmarshal into a map did — the same headers, in the same order, and
// an error for the same inputs — whether or not its fast path takes it.
func FuzzKafkaHeaders(f *testing.F) {
	for _, seed := range []string{
		`{"event_id": "e", "event_type": "PAID", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "correlation_id": "c"}`,
		`{"x":"1","correlation_id":"c","event_id":"e"}`,
		` { } `, `{}`, ``, `[]`, `null`, `{"event_id":1}`, `{"event_id":null}`, `{"event_id":"a","event_id":"b"}`,
		`{"event_id":"a\"b"}`, `{"event_id":"\u00e9"}`, "{\"event_id\":\"\xff\"}", "{\"event_id\":\"a\tb\"}",
		`{"event_id":"a"`, `{"event_id":"a",}`, `{"event_id":"a"} x`, `{"event_id" "a"}`, `{"event_\u0069d":"a"}`,
		`{"event_id":"a","x":{"y":"z"}}`, `{"event_id":"a","x":[1]}`, "{\"event_id\":\"é\"}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, headers []byte) {
		got, err := envelope.KafkaHeaders(headers)
		want, wantErr := kafkaHeadersByMap(headers)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: error %v, the map's %v", headers, err, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %s, the map's %s", headers, show(got), show(want))
		}
		for i := range got {
			if got[i].Key != want[i].Key || !bytes.Equal(got[i].Value, want[i].Value) {
				t.Fatalf("%q: %s, the map's %s", headers, show(got), show(want))
			}
		}
	})
}

// BenchmarkKafkaHeaders: the relay's per-row header parse, on a row as
// PostgreSQL prints it.
func BenchmarkKafkaHeaders(b *testing.B) {
	row := []byte(`{"event_id": "01a23167-c15b-7903-af16-0cfd5fa8fd3f", "event_type": "PLACED", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "correlation_id": "01a23167-c15b-78f4-80a8-7ead813a91d1"}`)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := envelope.KafkaHeaders(row); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			if _, err := kafkaHeadersByMap(row); err != nil {
				b.Fatal(err)
			}
		}
	})
}
