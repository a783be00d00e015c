package deadletter_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
)

// The header names as Spring for Apache Kafka spells them
// (org.springframework.kafka.support.KafkaHeaders.DLT_*), written out here
// rather than taken from the package, so that renaming a constant fails.
const (
	springTopic         = "kafka_dlt-original-topic"
	springPartition     = "kafka_dlt-original-partition"
	springOffset        = "kafka_dlt-original-offset"
	springTimestamp     = "kafka_dlt-original-timestamp"
	springTimestampType = "kafka_dlt-original-timestamp-type"
	springGroup         = "kafka_dlt-original-consumer-group"
	springFQCN          = "kafka_dlt-exception-fqcn"
	springMessage       = "kafka_dlt-exception-message"
	springCauseFQCN     = "kafka_dlt-exception-cause-fqcn" // Spring writes it; we do not
	springStacktrace    = "kafka_dlt-exception-stacktrace" // likewise
)

// javaInt and javaLong are what Java's ByteBuffer.putInt and putLong write
// (big-endian, two's complement), as DeadLetterPublishingRecoverer does.
func javaInt(v int32) []byte { return java(int64(v), 4) }

func javaLong(v int64) []byte { return java(v, 8) }

func java(v int64, size int) []byte {
	b := make([]byte, size)
	for i := size - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

// headerValues returns every value of each header of m, in order.
func headerValues(m kafka.Message) map[string][][]byte {
	out := map[string][][]byte{}
	for _, h := range m.Headers {
		out[h.Key] = append(out[h.Key], h.Value)
	}
	return out
}

// TestDeadLetterHeadersRoundTrip: the headers Message writes are Spring's
// names with Spring's encodings, byte for byte; the original's key, value
// and headers are kept as they were; and EntryOf, which dlq list reads the
// topic with, gives back everything that was written.
func TestDeadLetterHeadersRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 987_654_321, time.UTC) // sub-millisecond part: Spring keeps milliseconds
	tests := []struct {
		name  string
		dl    deadletter.DeadLetter
		group string
		// wantMessage is kafka_dlt-exception-message; "" means dl.Err's text.
		wantMessage string
	}{
		{
			name: "a poison message",
			dl: deadletter.DeadLetter{
				Msg: kafka.Message{Topic: "order-events", Partition: 3, Offset: 7, Time: at, Key: []byte("order-1"), Value: []byte("not avro"),
					Headers: []kafka.Header{{Key: "event_id", Value: []byte("e-1")}, {Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}}},
				Class: "eventcodec.ErrNotFramed", Err: errors.New("not in the Confluent wire format"),
			},
			group: "order-projector",
		},
		{
			name: "extremes of Java's int and long",
			dl: deadletter.DeadLetter{
				Msg:   kafka.Message{Topic: "t", Partition: math.MaxInt32, Offset: math.MaxInt64, Time: time.UnixMilli(math.MaxInt64 / 1_000_000).UTC(), Key: []byte{0xff, 0x00}, Value: []byte{}},
				Class: "order.InvalidEvent.OutOfSequence", Err: errors.New("version 3 does not follow 1"),
			},
			group: "g",
		},
		{
			name: "partition and offset zero, a time before 1970, a null key and value",
			dl: deadletter.DeadLetter{
				Msg:   kafka.Message{Topic: "order-events", Partition: 0, Offset: 0, Time: time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)},
				Class: "eventcodec.ErrUndecodable", Err: errors.New("short buffer"),
			},
			group: "",
		},
		{
			name: "a letter dead-lettered again gets fresh Spring headers, not a second set",
			dl: deadletter.DeadLetter{
				Msg: kafka.Message{Topic: "order-events", Partition: 1, Offset: 41, Time: at, Key: []byte("k"), Value: []byte("v"),
					Headers: []kafka.Header{
						{Key: "event_id", Value: []byte("e-2")},
						{Key: springTopic, Value: []byte("older-topic")},
						{Key: springPartition, Value: javaInt(5)},
						{Key: springStacktrace, Value: []byte("at com.example.Old")},
						{Key: "dlq_replayed_from", Value: []byte("order-events.dlq/1@0")},
					}},
				Class: "eventcodec.ErrUnknownSchema", Err: errors.New("schema 9999 is not registered"),
			},
			group: "order-projector",
		},
		{
			name: "no error is an unknown error",
			dl: deadletter.DeadLetter{
				Msg:   kafka.Message{Topic: "order-events", Partition: 2, Offset: 3, Time: at, Key: []byte("k"), Value: []byte("v")},
				Class: "transient",
			},
			group:       "order-projector",
			wantMessage: "unknown error",
		},
		{
			name: "a long error message is cut on a character boundary",
			dl: deadletter.DeadLetter{
				Msg:   kafka.Message{Topic: "order-events", Partition: 2, Offset: 4, Time: at, Key: []byte("k"), Value: []byte("v")},
				Class: "eventcodec.ErrInvalidEvent", Err: errors.New(strings.Repeat("é", deadletter.MaxErrorMessage)),
			},
			group:       "order-projector",
			wantMessage: strings.Repeat("é", (deadletter.MaxErrorMessage-len("…"))/2) + "…",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := tc.dl.Msg
			m := deadletter.Message(tc.dl, tc.group)

			// The original, untouched: key and value byte for byte (null
			// kept null, empty kept empty), its own headers in order, those
			// named like Spring's left out.
			if !bytes.Equal(m.Key, orig.Key) || (m.Key == nil) != (orig.Key == nil) ||
				!bytes.Equal(m.Value, orig.Value) || (m.Value == nil) != (orig.Value == nil) {
				t.Errorf("key %q value %q, want %q %q", m.Key, m.Value, orig.Key, orig.Value)
			}
			if m.Partition != orig.Partition {
				t.Errorf("dead letter for partition %d, original on %d", m.Partition, orig.Partition)
			}
			var kept, wantKept []kafka.Header
			for _, h := range orig.Headers {
				if !strings.HasPrefix(h.Key, "kafka_dlt-") {
					wantKept = append(wantKept, h)
				}
			}
			for _, h := range m.Headers {
				if !strings.HasPrefix(h.Key, "kafka_dlt-") {
					kept = append(kept, h)
				}
			}
			if len(kept) != len(wantKept) {
				t.Errorf("original headers %v, want %v", kept, wantKept)
			}
			for i := range min(len(kept), len(wantKept)) {
				if kept[i].Key != wantKept[i].Key || !bytes.Equal(kept[i].Value, wantKept[i].Value) {
					t.Errorf("original header %d: %s=%q, want %s=%q", i, kept[i].Key, kept[i].Value, wantKept[i].Key, wantKept[i].Value)
				}
			}

			// Spring's headers, each once, encoded as Spring encodes them.
			wantMessage := tc.wantMessage
			if wantMessage == "" {
				wantMessage = tc.dl.Err.Error()
			}
			want := map[string][]byte{
				springTopic:         []byte(orig.Topic),
				springPartition:     javaInt(int32(orig.Partition)),
				springOffset:        javaLong(orig.Offset),
				springTimestamp:     javaLong(orig.Time.UnixMilli()),
				springTimestampType: []byte("CreateTime"),
				springGroup:         []byte(tc.group),
				springFQCN:          []byte(tc.dl.Class),
				springMessage:       []byte(wantMessage),
			}
			got := headerValues(m)
			for name, w := range want {
				if vs := got[name]; len(vs) != 1 || !bytes.Equal(vs[0], w) {
					t.Errorf("%s: % x, want once % x", name, vs, w)
				}
			}
			for name := range got {
				if _, ok := want[name]; strings.HasPrefix(name, "kafka_dlt-") && !ok {
					t.Errorf("header %s is not one we write (an original's, left in)", name)
				}
			}
			if msg := got[springMessage]; len(msg) == 1 && (len(msg[0]) > deadletter.MaxErrorMessage || !utf8.Valid(msg[0])) {
				t.Errorf("exception message of %d bytes, valid UTF-8 %v", len(msg[0]), utf8.Valid(msg[0]))
			}

			// Read back as dlq list reads the topic.
			m.Offset, m.Time = 12, at.Add(time.Minute)
			e := deadletter.EntryOf(m)
			replayedFrom := "" // an original replayed from the DLQ before says so
			for _, h := range orig.Headers {
				if h.Key == deadletter.HeaderReplayedFrom {
					replayedFrom = string(h.Value)
				}
			}
			wantEntry := map[string]any{
				"partition": orig.Partition, "offset": int64(12), "time": at.Add(time.Minute),
				"original_topic": orig.Topic, "original_partition": orig.Partition, "original_offset": orig.Offset,
				"original_time": time.UnixMilli(orig.Time.UnixMilli()).UTC(), "consumer_group": tc.group,
				"error_class": tc.dl.Class, "error_message": wantMessage, "value_bytes": len(orig.Value),
				"value_null": orig.Value == nil, "truncated": false, "replayed_from": replayedFrom,
			}
			gotEntry := map[string]any{
				"partition": e.Partition, "offset": e.Offset, "time": e.Time,
				"original_topic": e.OriginalTopic, "original_partition": e.OriginalPartition, "original_offset": e.OriginalOffset,
				"original_time": e.OriginalTime, "consumer_group": e.Group,
				"error_class": e.ErrorClass, "error_message": e.ErrorMessage, "value_bytes": e.ValueBytes,
				"value_null": e.ValueNull, "truncated": e.Truncated, "replayed_from": e.ReplayedFrom,
			}
			for k, w := range wantEntry {
				if g := gotEntry[k]; g != w {
					if gt, ok := g.(time.Time); !ok || !gt.Equal(w.(time.Time)) {
						t.Errorf("entry %s = %v, want %v", k, g, w)
					}
				}
			}

			// And through dlq list -json.
			var out bytes.Buffer
			if err := deadletter.WriteJSON(&out, []deadletter.Entry{e}); err != nil {
				t.Fatal(err)
			}
			var listed []deadletter.Entry
			if err := json.Unmarshal(out.Bytes(), &listed); err != nil {
				t.Fatalf("dlq list -json: %v\n%s", err, out.Bytes())
			}
			again, err := json.Marshal(listed)
			if err != nil {
				t.Fatal(err)
			}
			first, err := json.Marshal([]deadletter.Entry{e})
			if err != nil {
				t.Fatal(err)
			}
			if len(listed) != 1 || !bytes.Equal(again, first) {
				t.Errorf("dlq list -json does not read back:\n%s\nwant\n%s", again, first)
			}
		})
	}
}

// TestEntryOfReadsWhatSpringWrote: a dead letter written by a Spring Kafka
// application (headers built here as DeadLetterPublishingRecoverer builds
// them, Java class names and its cause and stack-trace headers included) is
// listed with its origin and error.
func TestEntryOfReadsWhatSpringWrote(t *testing.T) {
	const fqcn = "org.springframework.kafka.listener.ListenerExecutionFailedException"
	m := kafka.Message{Topic: "orders.DLT", Partition: 0, Offset: 5, Time: time.Now(), Key: []byte("order-9"), Value: []byte("{}"),
		Headers: []kafka.Header{
			{Key: "__TypeId__", Value: []byte("com.example.Order")},
			{Key: springTopic, Value: []byte("orders")},
			{Key: springPartition, Value: javaInt(17)},
			{Key: springOffset, Value: javaLong(1 << 40)},
			{Key: springTimestamp, Value: javaLong(1_767_225_600_123)},
			{Key: springTimestampType, Value: []byte("CreateTime")},
			{Key: springGroup, Value: []byte("billing")},
			{Key: springFQCN, Value: []byte(fqcn)},
			{Key: springCauseFQCN, Value: []byte("java.lang.IllegalStateException")},
			{Key: springMessage, Value: []byte("Listener method threw: no such order")},
			{Key: springStacktrace, Value: []byte("java.lang.IllegalStateException: no such order\n\tat com.example.Billing.on(Billing.java:42)")},
		}}
	e := deadletter.EntryOf(m)
	if e.OriginalTopic != "orders" || e.OriginalPartition != 17 || e.OriginalOffset != 1<<40 ||
		!e.OriginalTime.Equal(time.UnixMilli(1_767_225_600_123)) || e.Group != "billing" ||
		e.ErrorClass != fqcn || e.ErrorMessage != "Listener method threw: no such order" || e.Truncated || e.Key != "order-9" {
		t.Errorf("entry %+v", e)
	}
}

// TestEntryOfIgnoresMisencodedNumbers: a partition, offset or timestamp
// header of another length than Spring writes is not read at all, rather
// than read as some other number.
func TestEntryOfIgnoresMisencodedNumbers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"empty", []byte{}},
		{"a byte short", []byte{0, 0, 1}},
		{"decimal text", []byte("17")},
		{"an int where a long belongs, and a long where an int does", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			part, off, ts := tc.value, tc.value, tc.value
			if tc.value == nil {
				part, off, ts = javaLong(17), javaInt(5), javaInt(5)
			}
			e := deadletter.EntryOf(kafka.Message{Headers: []kafka.Header{
				{Key: springPartition, Value: part}, {Key: springOffset, Value: off}, {Key: springTimestamp, Value: ts},
			}})
			if e.OriginalPartition != 0 || e.OriginalOffset != 0 || !e.OriginalTime.IsZero() {
				t.Errorf("read partition %d, offset %d, time %s from % x / % x / % x", e.OriginalPartition, e.OriginalOffset, e.OriginalTime, part, off, ts)
			}
		})
	}
}

// javaInt and javaLong are written from Java's definition, not with
// encoding/binary; check them against it once.
func TestJavaEncodingsAreBigEndian(t *testing.T) {
	if got := javaInt(-2); !bytes.Equal(got, []byte{0xff, 0xff, 0xff, 0xfe}) || binary.BigEndian.Uint32(javaInt(17)) != 17 {
		t.Errorf("javaInt(-2) = % x", got)
	}
	if got := javaLong(1 << 40); !bytes.Equal(got, []byte{0, 0, 1, 0, 0, 0, 0, 0}) {
		t.Errorf("javaLong(1<<40) = % x", got)
	}
}
