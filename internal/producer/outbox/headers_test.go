package outbox_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/event/envelope"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
)

// The relay refuses a headers column that is not a JSON object of strings,
// and publishes only the names it knows, in order.
func TestKafkaHeadersKeepsTheOrderAndOnlyOurNames(t *testing.T) {
	got, err := outbox.KafkaHeaders([]byte(`{"x":"1","correlation_id":"c","event_id":"e"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []kafka.Header{{Key: "event_id", Value: []byte("e")}, {Key: "correlation_id", Value: []byte("c")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %s, want %s", show(got), show(want))
	}
	for _, bad := range []string{``, `[]`, `{"event_id":1}`} {
		if _, err := outbox.KafkaHeaders([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// kafkaHeadersByMap is KafkaHeaders as it was before its fast path: the
// reference the fast path must agree with.
func kafkaHeadersByMap(headers []byte) (out []kafka.Header, err error) {
	var m map[string]string
	if err = json.Unmarshal(headers, &m); err != nil {
		return nil, err
	}
	for i := range envelope.HeaderOrder {
		name := envelope.HeaderOrder[i]
		value, found := m[name]
		if !found {
			continue
		}
		out = append(out, kafka.Header{Key: name, Value: []byte(value)})
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
		got, err := outbox.KafkaHeaders(headers)
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
			if _, err := outbox.KafkaHeaders(row); err != nil {
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
