package eventcodec_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/schematest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/schemas"
)

// FuzzDecodeEvent feeds the consumer's first steps — Decode from the
// Confluent frame, then order.Machine.CheckEvent with the message key — arbitrary
// bytes, under every schema version in the registry. Whatever comes in, the
// answer is an event or a permanent error (never a panic, never a transient
// error with the registry up), and no input makes the decoder allocate much
// more than it holds. The seeds are hostile messages (huge or negative
// claimed lengths, no frame, an unknown schema ID, truncated, an overlong
// varint) and valid events of each schema version. `make fuzz` runs it for a while;
// `make test` runs the seeds.
func FuzzDecodeEvent(f *testing.F) {
	url := registry(f)
	ctx := context.Background()
	enc, _ := eventcodec.NewEncoder()
	fr, _ := eventcodec.NewFramer(eventcodec.FramerConfig{URL: url})
	dec, err := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: url})
	if err != nil {
		f.Fatal(err)
	}
	latest := schemas.Latest().Version
	var framed [][]byte
	for _, ev := range events(f) {
		payload, v, _ := enc.Encode(ev)
		value, err := fr.Frame(ctx, "order-events", v, payload)
		if err != nil {
			f.Fatal(err)
		}
		framed = append(framed, value)
		f.Add(value, []byte(ev.Order.ID.String()))
		f.Add(value, []byte("another-key"))
	}
	// Every older schema version is registered and has a valid event.
	for _, s := range schemas.All() {
		if s.Version == latest {
			continue
		}
		ev := events(f)[0]
		payload, err := schematest.Encode(s, schematest.Record(ev, nil))
		if err != nil {
			f.Fatal(err)
		}
		value, err := fr.Frame(ctx, "order-events", s.Version, payload)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(value, []byte(ev.Order.ID.String()))
	}
	prefix := framed[0][:5]
	for _, count := range []int64{1 << 40, 20_000_000, -(1 << 40), math.MaxInt64, math.MinInt64} {
		f.Add(append(append([]byte(nil), prefix...), hostileOrder(count)...), []byte("k"))
	}
	unknown := append([]byte(nil), framed[0]...)
	binary.BigEndian.PutUint32(unknown[1:5], 4242)
	for _, v := range [][]byte{
		nil, {}, {0}, {0, 0, 0, 0}, []byte("not avro at all"),
		append([]byte{1}, framed[0][1:]...), // wrong magic byte
		unknown,
		framed[0][:len(framed[0])-1], // truncated
		append(framed[0][:5:5], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), // an 11-byte varint
	} {
		f.Add(v, []byte("k"))
	}
	f.Fuzz(func(t *testing.T, value, key []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ev, err := dec.Decode(ctx, value)
		if err == nil {
			err = order.Standard.CheckEvent(ev, key, time.Now())
		}
		runtime.ReadMemStats(&after)
		var ee *order.EventError
		if err != nil && !eventcodec.Permanent(err) && !errors.As(err, &ee) {
			t.Fatalf("a %d-byte value gave a transient error: %v", len(value), err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20+64*uint64(len(value)) {
			t.Fatalf("a %d-byte value made the decoder allocate %d bytes", len(value), grew)
		}
	})
}
