package eventcodec_test

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/schemas"
)

// Every status and every event type of the domain survives the trip to the
// topic and back, in every combination (whether a combination makes sense
// is order.Machine.CheckEvent's business, not the codec's).
func TestRoundTripEveryStatusAndEventType(t *testing.T) {
	url := registry(t)
	enc, err := eventcodec.NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	fr, _ := eventcodec.NewFramer(eventcodec.FramerConfig{URL: url})
	dec, _ := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: url})
	ctx := context.Background()
	base := events(t)[0]
	for _, typ := range order.Standard.EventTypes() {
		for _, status := range order.Standard.Statuses() {
			ev := base
			ev.Type, ev.Order.Status = typ, status
			payload, v, err := enc.Encode(ev)
			if err != nil {
				t.Fatalf("encode %s with status %s: %v", typ, status, err)
			}
			framed, err := fr.Frame(ctx, "order-events", v, payload)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dec.Decode(ctx, framed)
			if err != nil {
				t.Fatalf("decode %s with status %s: %v", typ, status, err)
			}
			if !reflect.DeepEqual(got, ev) {
				t.Fatalf("%s with status %s round trip:\n got %+v\nwant %+v", typ, status, got, ev)
			}
		}
	}
}

// A status or event type the domain does not list has no symbol: encoding
// it is an error, never a guess.
func TestEncodingAnUnknownStatusOrEventTypeFails(t *testing.T) {
	enc, _ := eventcodec.NewEncoder()
	for name, edit := range map[string]func(*order.Event){
		"unknown status":     func(ev *order.Event) { ev.Order.Status = "no-such-status" },
		"upper-case status":  func(ev *order.Event) { ev.Order.Status = "PLACED" },
		"unknown event type": func(ev *order.Event) { ev.Type = "NO_SUCH_TYPE" },
		"empty event type":   func(ev *order.Event) { ev.Type = "" },
	} {
		t.Run(name, func(t *testing.T) {
			ev := events(t)[0]
			edit(&ev)
			if payload, _, err := enc.Encode(ev); err == nil {
				t.Fatalf("encoded % x", payload)
			}
		})
	}
}

// The enums of the schema events are written with are exactly the domain's
// lists, each value in upper case as the codec maps it. Compared as sets:
// a symbol's index in the schema is fixed by the schemas published before,
// the lists are in lifecycle order.
func TestSchemaEnumsAreTheDomainLists(t *testing.T) {
	latest := schemas.Latest()
	s, err := avro.ParseWithCache(latest.Text, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := s.(*avro.RecordSchema)
	if !ok {
		t.Fatalf("order_event.v%d.avsc is a %s, not a record", latest.Version, s.Type())
	}
	var statuses, types []string
	for _, st := range order.Standard.Statuses() {
		sym, ok := eventcodec.StatusSymbol(st)
		if !ok {
			t.Fatalf("the codec has no symbol for status %s", st)
		}
		statuses = append(statuses, sym)
	}
	for _, et := range order.Standard.EventTypes() {
		sym, ok := eventcodec.EventTypeSymbol(et)
		if !ok {
			t.Fatalf("the codec has no symbol for event type %s", et)
		}
		types = append(types, sym)
	}
	if latest.Version >= schemas.FullFrom { // and the default that stands for a symbol a reader lacks
		statuses, types = append(statuses, schemas.UnknownSymbol), append(types, schemas.UnknownSymbol)
	}
	for field, want := range map[string][]string{"status": statuses, "event_type": types} {
		got := enumSymbols(t, rec, field)
		if !sameSet(got, want) {
			t.Errorf("order_event.v%d.avsc %s symbols %v, the domain's %v", latest.Version, field, got, want)
		}
	}
}

func enumSymbols(t *testing.T, rec *avro.RecordSchema, field string) []string {
	t.Helper()
	for _, f := range rec.Fields() {
		if f.Name() == field {
			e, ok := f.Type().(*avro.EnumSchema)
			if !ok {
				t.Fatalf("field %s is a %s, not an enum", field, f.Type().Type())
			}
			return e.Symbols()
		}
	}
	t.Fatalf("the schema has no field %s", field)
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b) && len(slices.Compact(a)) == len(b)
}
