package eventcodec_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/schematest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/schemas"
)

// The policy at work, with a scratch future version (a new state, SHIPPED,
// and a new optional field): the policy and the registry accept it; today's
// consumer reads what its producer writes — ignoring the new field, and
// parking an event in the new state as ErrUnknownSymbol instead of guessing;
// and a consumer of that version reads every golden event ever written.
func TestAFutureVersionIsReadBothWays(t *testing.T) {
	future := schematest.Future()
	if err := schemas.CheckPolicy(append(schemas.All(), future)); err != nil {
		t.Fatalf("the future version breaks the policy: %v", err)
	}
	url := registry(t)
	registerAll(t, url)
	futureID := schematest.Register(t, url, "order-events-value", future.Text)

	today, err := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	paid := goldenEvents(schemas.Latest().Version)["paid"]
	frame := func(record map[string]any) []byte {
		body, err := schematest.Encode(future, record)
		if err != nil {
			t.Fatal(err)
		}
		return schematest.Frame(futureID, body)
	}
	t.Run("today's consumer ignores a new field", func(t *testing.T) {
		got, err := today.Decode(ctx, frame(schematest.Record(paid, map[string]any{"tracking_number": "TRK-1"})))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, paid) {
			t.Fatalf("decoded %+v, want %+v", got, paid)
		}
	})
	for _, field := range []string{"status", "event_type"} {
		t.Run("today's consumer parks a new "+field, func(t *testing.T) {
			_, err := today.Decode(ctx, frame(schematest.Record(paid, map[string]any{field: schematest.Shipped})))
			if !errors.Is(err, eventcodec.ErrUnknownSymbol) {
				t.Fatalf("error %v, want ErrUnknownSymbol", err)
			}
			if class, permanent := eventcodec.Class(err); !permanent || class != "eventcodec.ErrUnknownSymbol" {
				t.Fatalf("class %q permanent %v", class, permanent)
			}
		})
	}
	t.Run("a consumer of the future version reads every golden event", func(t *testing.T) {
		next, err := eventcodec.NewDecoderReading(eventcodec.DecoderConfig{URL: url}, future.Text)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range schemas.All() {
			for _, name := range goldenFiles(t, s.Version) {
				value, want := readGolden(t, s.Version, name)
				got, err := next.Decode(ctx, value)
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("v%d/%s: %+v, %v", s.Version, name, got, err)
				}
			}
		}
	})
}
