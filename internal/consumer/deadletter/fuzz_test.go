package deadletter

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// FuzzDeadLetterHeaders feeds what an operator's tools read from the DLQ —
// EntryOf's header parsing, the table and JSON listings — and what the
// publisher writes — fit — arbitrary keys, values and headers. Nothing may
// panic; a listing always encodes; a letter cut to a budget is within it
// whenever the headers of ours and a cut key can be.
func FuzzDeadLetterHeaders(f *testing.F) {
	full := Message(DeadLetter{Msg: kafka.Message{Topic: "order-events", Partition: 3, Offset: 7, Time: time.Now(),
		Key: []byte("k"), Value: []byte("v")}, Class: "eventcodec.ErrNotFramed", Err: io.EOF}, "g")
	var names, values []byte
	for _, h := range full.Headers {
		names = append(names, h.Key...)
		names = append(names, 0)
		values = binary.AppendUvarint(values, uint64(len(h.Value)))
		values = append(values, h.Value...)
	}
	f.Add([]byte("k"), []byte("v"), names, values, 4096)
	f.Add([]byte{}, []byte{}, []byte(HeaderOriginalPartition+"\x00"+HeaderOriginalOffset+"\x00"), []byte{3, 1, 2, 3, 200, 1}, 0)
	f.Add([]byte{0xff, 0xfe}, make([]byte, 10000), []byte(HeaderTruncatedFrom+"\x00h\x00"), []byte{2, '9', '9', 0}, 5000)
	f.Add([]byte(strings.Repeat("k", 5000)), []byte("x"), []byte("a\x00b\x00c\x00"), []byte{}, 4096)
	f.Add([]byte("k"), []byte("x"), []byte("dlq_evil"), append(binary.AppendUvarint(nil, 9000), make([]byte, 9000)...), 4096) // a header named like ours
	f.Fuzz(func(t *testing.T, key, value, names, values []byte, budget int) {
		m := kafka.Message{Topic: "order-events.dlq", Partition: 1, Offset: 2, Key: key, Value: value}
		for _, name := range strings.Split(string(names), "\x00") {
			n, used := binary.Uvarint(values)
			if used <= 0 || n > uint64(len(values)-used) {
				n, used = 0, 0
			}
			m.Headers = append(m.Headers, kafka.Header{Key: name, Value: values[used : used+int(n)]})
			values = values[used+int(n):]
		}
		e := EntryOf(m)
		if _, err := json.Marshal([]Entry{e}); err != nil {
			t.Fatalf("entry does not encode: %v", err)
		}
		if err := WriteTable(io.Discard, []Entry{e}); err != nil {
			t.Fatal(err)
		}
		letter := Message(DeadLetter{Msg: m, Class: "c", Err: io.ErrUnexpectedEOF}, "g")
		budget = minBudget + abs(budget)%(2<<20)
		out := fit(letter, budget)
		// Only what Message wrote (kafka_dlt-*) and the marks may stay whole.
		ours := 3 * 48
		for _, h := range letter.Headers {
			if strings.HasPrefix(h.Key, dltPrefix) {
				ours += len(h.Key) + len(h.Value) + 10
			}
		}
		if size(out) > budget && ours+maxKeptKey+64 < budget {
			t.Fatalf("cut to %d bytes for a budget of %d", size(out), budget)
		}
		if len(out.Value) > len(letter.Value) || (letter.Value == nil) != (out.Value == nil) {
			t.Fatalf("fit changed a %d-byte value (null %v) into %d bytes (null %v)", len(letter.Value), letter.Value == nil, len(out.Value), out.Value == nil)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -(n + 1)
	}
	return n
}
