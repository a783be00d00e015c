package eventcodec_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"

	"github.com/ordersonkafka/orders/internal/event/eventcodec"
)

// zz appends n as an Avro long (zig-zag varint).
func zz(b []byte, n int64) []byte {
	u := uint64(n<<1) ^ uint64(n>>63)
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

func str(b []byte, s string) []byte { return append(zz(b, int64(len(s))), s...) }

// hostileOrder is an order event body, written by hand, that is valid up to
// its items array, which claims count elements and holds one.
func hostileOrder(count int64) []byte {
	id := uuid.NewString()
	b := str(nil, id)          // event_id
	b = zz(b, 0)               // event_type PLACED
	b = str(b, id)             // order_id
	b = zz(b, 1)               // version
	b = zz(b, 0)               // status PLACED
	b = zz(b, 1_700_000_000e6) // occurred_at
	b = str(b, "c")            // customer_id
	b = str(b, "EUR")          // currency
	b = zz(b, count)           // items: one block claiming count
	b = str(b, "x")
	b = zz(b, 1)
	b = zz(b, 100)
	return b
}

// The 95-byte message of the issue claims 2^40 items; the 102-byte one 20M.
// Neither may make the decoder allocate in proportion to the claim: both are
// permanent decode errors, found with a few kilobytes allocated.
func TestClaimedLengthsAreBoundedBeforeAllocation(t *testing.T) {
	url := registry(t)
	dec, _ := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: url})
	ctx := context.Background()
	good := frameLatest(t, url)
	if _, err := dec.Decode(ctx, good); err != nil { // warms the schema cache
		t.Fatal(err)
	}
	for _, count := range []int64{1 << 40, 20_000_000, 1000, -(1 << 40)} {
		value := append(append([]byte(nil), good[:5]...), hostileOrder(count)...)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := dec.Decode(ctx, value)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, eventcodec.ErrUndecodable) || !eventcodec.Permanent(err) {
			t.Fatalf("items claiming %d: err %v, want ErrUndecodable", count, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("items claiming %d: decoding allocated %d bytes", count, alloc)
		}
		if !strings.Contains(err.Error(), "items") {
			t.Errorf("error does not name the field: %v", err)
		}
	}
}

// Every length a body can claim is checked, under any schema: strings,
// bytes, maps, nested and zero-size arrays, negative block counts with
// sizes, enum and union indexes, varints and recursion.
func TestCheckBoundsRefusesEveryOverlongClaim(t *testing.T) {
	parse := func(s string) avro.Schema { return avro.MustParse(s) }
	rec := `{"type":"record","name":"R","fields":[{"name":"f","type":%s}]}`
	schema := func(field string) avro.Schema { return parse(strings.Replace(rec, "%s", field, 1)) }
	list := parse(`{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}`)

	deep := []byte{}
	for range 100 {
		deep = zz(deep, 1) // union branch Node, again and again
	}
	deep = zz(deep, 0)

	for _, tc := range []struct {
		name   string
		schema avro.Schema
		body   []byte
		ok     bool
	}{
		{"string within the body", schema(`"string"`), str(nil, "abc"), true},
		{"string claiming 2^40 bytes", schema(`"string"`), append(zz(nil, 1<<40), 'a'), false},
		{"negative string length", schema(`"string"`), zz(nil, -3), false},
		{"bytes claiming 1 MiB", schema(`"bytes"`), append(zz(nil, 1<<20), 1, 2), false},
		{"map claiming 2^40 entries", schema(`{"type":"map","values":"long"}`), zz(zz(zz(nil, 1<<40), 1), 1), false},
		{"map key longer than the body", schema(`{"type":"map","values":"long"}`), zz(zz(nil, 1), 1<<30), false},
		{"array of nulls claiming 2^40", schema(`{"type":"array","items":"null"}`), zz(zz(nil, 1<<40), 0), false},
		{"array of nulls within budget", schema(`{"type":"array","items":"null"}`), zz(zz(nil, 2), 0), true},
		{"nested arrays of nulls", schema(`{"type":"array","items":{"type":"array","items":"null"}}`),
			zz(zz(zz(zz(zz(zz(nil, 3), 3), 0), 3), 0), 3), false},
		{"negative block count with a lying size", schema(`{"type":"array","items":"long"}`), zz(zz(nil, -2), 1<<30), false},
		{"negative block count", schema(`{"type":"array","items":"long"}`), zz(zz(zz(zz(zz(nil, -2), 2), 1), 1), 0), true},
		{"doubles claiming more than remain", schema(`{"type":"array","items":"double"}`), append(zz(nil, 4), make([]byte, 16)...), false},
		{"enum index out of range", schema(`{"type":"enum","name":"E","symbols":["A","B"]}`), zz(nil, 7), false},
		{"union index out of range", schema(`["null","long"]`), zz(nil, 5), false},
		{"int out of range", schema(`"int"`), zz(nil, 1<<40), false},
		{"varint past the end", schema(`"long"`), []byte{0x80, 0x80}, false},
		{"varint of 11 bytes", schema(`"long"`), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, false},
		{"fixed longer than the body", schema(`{"type":"fixed","name":"F","size":16}`), []byte{1, 2}, false},
		{"trailing bytes", schema(`"long"`), []byte{2, 0}, false},
		{"recursion deeper than the limit", list, deep, false},
		{"recursion within the limit", list, zz(zz(zz(nil, 1), 1), 0), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := eventcodec.CheckBounds(tc.schema, tc.body)
			if tc.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !tc.ok {
				// The same bytes through hamba/avro must not be accepted either
				// when they are over-long (they are only refused earlier here).
				t.Logf("refused: %v", err)
			}
		})
	}
}

// frameLatest returns a good framed event of the latest schema.
func frameLatest(t *testing.T, url string) []byte {
	t.Helper()
	enc, _ := eventcodec.NewEncoder()
	fr, _ := eventcodec.NewFramer(eventcodec.FramerConfig{URL: url})
	payload, v, _ := enc.Encode(events(t)[0])
	framed, err := fr.Frame(context.Background(), "order-events", v, payload)
	if err != nil {
		t.Fatal(err)
	}
	return framed
}
