package eventcodec_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/devkit/schematest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/schemas"
)

// addGolden writes the golden events of a version that has none; it never
// touches a file that exists.
var addGolden = flag.Bool("golden.add", false, "write the golden events of schema versions that have none (never overwrites)")

// goldenDir holds, per schema version, events as a producer of that version
// wrote them (NAME.bin: the Confluent frame with schema ID = the version, as a
// fresh registry numbers them, and the Avro body) and the domain event each
// must decode to (NAME.json).
const goldenDir = "testdata/golden"

// The golden events: every event ever written must decode, with the current
// decoder, to the same domain event, byte for byte as it was written then.
// A new schema version adds its files (go test -run TestGoldenEvents
// -golden.add); existing ones are never regenerated.
func TestGoldenEvents(t *testing.T) {
	if *addGolden {
		writeMissingGoldens(t)
	}
	url := registry(t)
	registerAll(t, url)
	dec, err := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range schemas.All() {
		files := goldenFiles(t, s.Version)
		if len(files) == 0 {
			t.Errorf("schema v%d has no golden events in %s/v%d: add them with go test -run TestGoldenEvents -golden.add", s.Version, goldenDir, s.Version)
		}
		for _, name := range files {
			t.Run(fmt.Sprintf("v%d/%s", s.Version, name), func(t *testing.T) {
				value, want := readGolden(t, s.Version, name)
				if id := binary.BigEndian.Uint32(value[1:5]); int(id) != s.Version {
					t.Fatalf("framed with schema ID %d, want %d", id, s.Version)
				}
				got, err := dec.Decode(context.Background(), value)
				if err != nil {
					t.Fatalf("the current decoder refuses an event of v%d: %v", s.Version, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("decoded\n %+v\nwant\n %+v", got, want)
				}
			})
		}
	}
}

// registerAll registers every version in order, as the relay does, and
// checks the IDs are the versions the golden frames carry.
func registerAll(t *testing.T, url string) {
	t.Helper()
	fr, err := eventcodec.NewFramer(eventcodec.FramerConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range schemas.All() {
		framed, err := fr.Frame(context.Background(), "order-events", s.Version, nil)
		if err != nil {
			t.Fatal(err)
		}
		if id := binary.BigEndian.Uint32(framed[1:5]); int(id) != s.Version {
			t.Fatalf("a fresh registry gave v%d the ID %d", s.Version, id)
		}
	}
}

func goldenFiles(t *testing.T, version int) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(goldenDir, fmt.Sprintf("v%d", version), "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".bin"))
	}
	return names
}

func readGolden(t *testing.T, version int, name string) ([]byte, order.Event) {
	t.Helper()
	base := filepath.Join(goldenDir, fmt.Sprintf("v%d", version), name)
	value, err := os.ReadFile(base + ".bin")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(base + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var want order.Event
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	return value, want
}

// goldenEvents are the events each version's golden files hold: fixed IDs
// and times, every detail a version can carry.
func goldenEvents(version int) map[string]order.Event {
	at := time.Date(2026, 11, 30, 9, 15, 0, 123456000, time.UTC)
	o := order.Order{ID: uuid.MustParse("01a2301d-f9fe-7796-acde-036b1a8b88cd"), CustomerID: "c-42", Currency: "EUR",
		Items:      []order.Item{{SKU: "BOOK-1", Quantity: 2, UnitPriceMinor: 1250}, {SKU: "PEN-7", Quantity: 1, UnitPriceMinor: 199}},
		TotalMinor: 2699, Status: order.StatusPlaced, Version: 1, CreatedAt: at, UpdatedAt: at}
	ev := func(id string, typ order.EventType, edit func(*order.Order)) order.Event {
		o := o
		edit(&o)
		return order.Event{ID: uuid.MustParse(id), Type: typ, Order: o, OccurredAt: o.UpdatedAt}
	}
	out := map[string]order.Event{
		"placed": ev("01a2301d-f9fe-7796-acde-000000000001", order.EventPlaced, func(*order.Order) {}),
		"paid": ev("01a2301d-f9fe-7796-acde-000000000002", order.EventPaid, func(o *order.Order) {
			o.Status, o.Version, o.PaymentReference, o.UpdatedAt = order.StatusPaid, 2, "psp-123", at.Add(time.Minute)
		}),
		"cancelled": ev("01a2301d-f9fe-7796-acde-000000000003", order.EventCancelled, func(o *order.Order) {
			o.Status, o.Version, o.UpdatedAt = order.StatusCancelled, 2, at.Add(time.Hour)
			if version >= 2 {
				o.CancelReason = "changed mind"
			}
		}),
	}
	if version >= 2 {
		out["refunded"] = ev("01a2301d-f9fe-7796-acde-000000000004", order.EventRefunded, func(o *order.Order) {
			o.Status, o.Version, o.PaymentReference, o.RefundReason, o.UpdatedAt = order.StatusRefunded, 3, "psp-123", "broken", at.Add(2*time.Hour)
		})
	}
	return out
}

// writeMissingGoldens writes the golden events of each version that has
// none: the newest with the producer's Encoder, older ones with their own
// schema (as their producer did).
func writeMissingGoldens(t *testing.T) {
	enc, err := eventcodec.NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range schemas.All() {
		dir := filepath.Join(goldenDir, fmt.Sprintf("v%d", s.Version))
		if _, err := os.Stat(dir); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, ev := range goldenEvents(s.Version) {
			var body []byte
			if s.Version == schemas.Latest().Version {
				body, _, err = enc.Encode(ev)
			} else {
				body, err = schematest.Encode(s, schematest.Record(ev, nil))
			}
			if err != nil {
				t.Fatal(err)
			}
			value := binary.BigEndian.AppendUint32([]byte{0}, uint32(s.Version))
			want, err := json.MarshalIndent(ev, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			for file, b := range map[string][]byte{name + ".bin": append(value, body...), name + ".json": append(want, '\n')} {
				if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		t.Logf("wrote the golden events of v%d to %s", s.Version, dir)
	}
}
