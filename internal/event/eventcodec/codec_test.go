package eventcodec_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/ordersonkafka/orders/internal/devkit/schemaregistry"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/schemas"
)

func events(t testing.TB) []order.Event {
	t.Helper()
	now := order.Now()
	o, placed, err := order.Place(order.NewOrder{CustomerID: "c-1", Currency: "EUR",
		Items: []order.Item{{SKU: "A", Quantity: 2, UnitPriceMinor: 150}, {SKU: "B", Quantity: 1, UnitPriceMinor: 99}}}, now, order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	paid, _ := order.Standard.Apply(&o, order.Change{Action: order.ActionPay, PaymentReference: "psp-9"}, now.Add(time.Second), order.Meta{})
	refunded, _ := order.Standard.Apply(&o, order.Change{Action: order.ActionRefund, Reason: "broken"}, now.Add(2*time.Second), order.Meta{})
	o2, placed2, _ := order.Place(order.NewOrder{CustomerID: "c-2", Currency: "USD", Items: []order.Item{{SKU: "C", Quantity: 1, UnitPriceMinor: 5}}}, now, order.Meta{})
	cancelled, _ := order.Standard.Apply(&o2, order.Change{Action: order.ActionCancel, Reason: "changed mind"}, now.Add(time.Second), order.Meta{})
	return []order.Event{placed, paid, refunded, placed2, cancelled}
}

func registry(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(schemaregistry.New())
	t.Cleanup(s.Close)
	return s.URL
}

func TestRoundTripEveryEventType(t *testing.T) {
	url := registry(t)
	enc, _ := eventcodec.NewEncoder()
	fr, _ := eventcodec.NewFramer(eventcodec.FramerConfig{URL: url})
	dec, _ := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: url})
	ctx := context.Background()
	for _, ev := range events(t) {
		payload, v, err := enc.Encode(ev)
		if err != nil || v != schemas.Latest().Version {
			t.Fatalf("encode: v%d %v", v, err)
		}
		framed, err := fr.Frame(ctx, "order-events", v, payload)
		if err != nil {
			t.Fatal(err)
		}
		if framed[0] != 0 || !bytes.Equal(framed[5:], payload) {
			t.Fatalf("frame % x… is not magic 0 + id + payload", framed[:5])
		}
		got, err := dec.Decode(ctx, framed)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Fatalf("%s round trip:\n got %+v\nwant %+v", ev.Type, got, ev)
		}
	}
}

func TestFramerSetsPolicyAndRegistersUnderTheTopicSubject(t *testing.T) {
	url := registry(t)
	fr, _ := eventcodec.NewFramer(eventcodec.FramerConfig{URL: url})
	framed, err := fr.Frame(context.Background(), "order-events", 2, []byte{1})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ CompatibilityLevel string }
	getJSON(t, url+"/config/order-events-value", &cfg)
	if cfg.CompatibilityLevel != schemas.Compatibility {
		t.Errorf("subject level %q, want %q", cfg.CompatibilityLevel, schemas.Compatibility)
	}
	var latest struct {
		ID     uint32
		Schema string
	}
	getJSON(t, url+"/subjects/order-events-value/versions/latest", &latest)
	if got := binary.BigEndian.Uint32(framed[1:5]); got != latest.ID {
		t.Errorf("framed id %d, registry id %d", got, latest.ID)
	}
	// The same schema, whatever whitespace the client sent it with.
	s2, _ := schemas.ByVersion(2)
	got, err := avro.Parse(latest.Schema)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint() != avro.MustParse(s2.Text).Fingerprint() {
		t.Errorf("registered schema is not schemas/ v2")
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(b, v) != nil {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
}

// An event written by a v1 producer decodes with the v2 reader; the fields
// v2 added take their defaults.
func TestV1EventDecodesWithTheLatestReader(t *testing.T) {
	url := registry(t)
	v1, _ := schemas.ByVersion(1)
	ev := events(t)[4] // cancelled, with a reason v1 cannot carry
	w := map[string]any{
		"event_id": ev.ID.String(), "event_type": "CANCELLED", "order_id": ev.Order.ID.String(), "version": ev.Order.Version,
		"status": "CANCELLED", "occurred_at": ev.OccurredAt, "customer_id": ev.Order.CustomerID, "currency": ev.Order.Currency,
		"items":       []map[string]any{{"sku": "C", "quantity": 1, "unit_price_minor": int64(5)}},
		"total_minor": ev.Order.TotalMinor, "created_at": ev.Order.CreatedAt, "updated_at": ev.Order.UpdatedAt,
		"payment_reference": nil,
	}
	payload, err := avro.Marshal(avro.MustParse(v1.Text), w)
	if err != nil {
		t.Fatal(err)
	}
	fr, _ := eventcodec.NewFramer(eventcodec.FramerConfig{URL: url})
	framed, err := fr.Frame(context.Background(), "order-events", 1, payload)
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: url})
	got, err := dec.Decode(context.Background(), framed)
	if err != nil {
		t.Fatal(err)
	}
	want := ev
	want.Order.CancelReason = "" // not in v1
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestPermanentErrors(t *testing.T) {
	url := registry(t)
	ctx := context.Background()
	enc, _ := eventcodec.NewEncoder()
	fr, _ := eventcodec.NewFramer(eventcodec.FramerConfig{URL: url})
	dec, _ := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: url})
	payload, v, _ := enc.Encode(events(t)[0])
	good, err := fr.Frame(ctx, "order-events", v, payload)
	if err != nil {
		t.Fatal(err)
	}
	// A schema the reader cannot resolve: registered under another subject.
	alien := `{"type":"record","name":"OrderEvent","namespace":"com.ordersonkafka.orders","fields":[{"name":"event_id","type":"long"}]}`
	resp, err := http.Post(url+"/subjects/other-value/versions", "application/json", strings.NewReader(`{"schema":`+quote(alien)+`}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct{ ID uint32 }
	_ = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	alienFrame := append([]byte{0, 0, 0, 0, 0}, 0x02)
	binary.BigEndian.PutUint32(alienFrame[1:5], reg.ID)

	unknownID := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(unknownID[1:5], 4242)
	wrongMagic := append([]byte(nil), good...)
	wrongMagic[0] = 1
	truncated := good[:len(good)-3]
	trailing := append(append([]byte(nil), good...), 0x00)
	badUUID := reencode(t, enc, events(t)[0], func(m map[string]any) { m["event_id"] = "not-a-uuid" })

	for _, tc := range []struct {
		name  string
		value []byte
		want  error
	}{
		{"random bytes", []byte("hello, world"), eventcodec.ErrNotFramed},
		{"too short", []byte{0, 1}, eventcodec.ErrNotFramed},
		{"wrong magic byte", wrongMagic, eventcodec.ErrNotFramed},
		{"unknown schema id", unknownID, eventcodec.ErrUnknownSchema},
		{"unresolvable writer schema", alienFrame, eventcodec.ErrIncompatibleSchema},
		{"truncated body", truncated, eventcodec.ErrUndecodable},
		{"trailing bytes", trailing, eventcodec.ErrUndecodable},
		{"over the size limit", append(append([]byte(nil), good[:5]...), make([]byte, eventcodec.MaxValueBytes)...), eventcodec.ErrUndecodable},
		{"invalid uuid", frame(good, badUUID), eventcodec.ErrInvalidEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dec.Decode(ctx, tc.value)
			if !errors.Is(err, tc.want) || !eventcodec.Permanent(err) {
				t.Fatalf("err %v, want %v (permanent)", err, tc.want)
			}
		})
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func frame(like, payload []byte) []byte { return append(append([]byte(nil), like[:5]...), payload...) }

// reencode writes ev with the latest schema after edit changed its fields,
// to make events that are valid Avro but invalid order events.
func reencode(t *testing.T, enc *eventcodec.Encoder, ev order.Event, edit func(map[string]any)) []byte {
	t.Helper()
	s := avro.MustParse(schemas.Latest().Text)
	payload, _, _ := enc.Encode(ev)
	var m map[string]any
	if err := avro.Unmarshal(s, payload, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := avro.Marshal(s, m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A registry outage is transient: Frame and Decode fail without the
// permanent marker, and work once it is back.
func TestRegistryOutageIsTransient(t *testing.T) {
	reg := stacktest.Registry(t)
	ctx := context.Background()
	enc, _ := eventcodec.NewEncoder()
	fr, _ := eventcodec.NewFramer(eventcodec.FramerConfig{URL: reg.URL(), Timeout: time.Second})
	dec, _ := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: reg.URL(), Timeout: time.Second})
	payload, v, _ := enc.Encode(events(t)[0])

	reg.Stop()
	if _, err := fr.Frame(ctx, "order-events", v, payload); err == nil || eventcodec.Permanent(err) {
		t.Fatalf("Frame with the registry down: %v", err)
	}
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	framed, err := fr.Frame(ctx, "order-events", v, payload)
	if err != nil {
		t.Fatalf("Frame after the registry came back: %v", err)
	}
	reg.Stop()
	if _, err := dec.Decode(ctx, framed); err == nil || eventcodec.Permanent(err) {
		t.Fatalf("Decode with the registry down: %v", err)
	}
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Decode(ctx, framed); err != nil {
		t.Fatalf("Decode after the registry came back: %v", err)
	}
}

func BenchmarkEncode(b *testing.B) {
	enc, _ := eventcodec.NewEncoder()
	ev := events(b)[1]
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := enc.Encode(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFrame(b *testing.B) {
	fr, _ := eventcodec.NewFramer(eventcodec.FramerConfig{URL: registry(b)})
	enc, _ := eventcodec.NewEncoder()
	payload, v, _ := enc.Encode(events(b)[1])
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fr.Frame(ctx, "order-events", v, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	url := registry(b)
	fr, _ := eventcodec.NewFramer(eventcodec.FramerConfig{URL: url})
	dec, _ := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: url})
	enc, _ := eventcodec.NewEncoder()
	payload, v, _ := enc.Encode(events(b)[1])
	framed, _ := fr.Frame(context.Background(), "order-events", v, payload)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decode(ctx, framed); err != nil {
			b.Fatal(err)
		}
	}
}
