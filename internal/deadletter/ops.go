package deadletter

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/kafkalog"
)

// Filter selects dead letters. Zero values select everything.
type Filter struct {
	Partition  *int   // DLQ partition
	FromOffset *int64 // DLQ offset, inclusive
	ToOffset   *int64 // DLQ offset, inclusive
	Key        string // exact message key
}

func (f Filter) match(m kafka.Message) bool {
	switch {
	case f.Partition != nil && m.Partition != *f.Partition,
		f.FromOffset != nil && m.Offset < *f.FromOffset,
		f.ToOffset != nil && m.Offset > *f.ToOffset,
		f.Key != "" && string(m.Key) != f.Key:
		return false
	}
	return true
}

// Entry is one dead letter as an operator reads it.
type Entry struct {
	Partition         int       `json:"partition"`
	Offset            int64     `json:"offset"`
	Key               string    `json:"key"`
	Time              time.Time `json:"time"`
	OriginalTopic     string    `json:"original_topic"`
	OriginalPartition int       `json:"original_partition"`
	OriginalOffset    int64     `json:"original_offset"`
	OriginalTime      time.Time `json:"original_time"`
	Group             string    `json:"consumer_group"`
	ErrorClass        string    `json:"error_class"`
	ErrorMessage      string    `json:"error_message"`
	ValueBytes        int       `json:"value_bytes"`
	ReplayedFrom      string    `json:"replayed_from,omitempty"` // set when this message was itself replayed before
	msg               kafka.Message
}

// EntryOf decodes the dead-letter headers of m.
func EntryOf(m kafka.Message) Entry {
	e := Entry{Partition: m.Partition, Offset: m.Offset, Key: printable(m.Key), Time: m.Time.UTC(), ValueBytes: len(m.Value), msg: m}
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderOriginalTopic:
			e.OriginalTopic = string(h.Value)
		case HeaderOriginalPartition:
			if len(h.Value) == 4 {
				e.OriginalPartition = int(int32(binary.BigEndian.Uint32(h.Value)))
			}
		case HeaderOriginalOffset:
			if len(h.Value) == 8 {
				e.OriginalOffset = int64(binary.BigEndian.Uint64(h.Value))
			}
		case HeaderOriginalTimestamp:
			if len(h.Value) == 8 {
				e.OriginalTime = time.UnixMilli(int64(binary.BigEndian.Uint64(h.Value))).UTC()
			}
		case HeaderOriginalGroup:
			e.Group = string(h.Value)
		case HeaderExceptionClass:
			e.ErrorClass = string(h.Value)
		case HeaderExceptionMessage:
			e.ErrorMessage = string(h.Value)
		case HeaderReplayedFrom:
			e.ReplayedFrom = string(h.Value)
		}
	}
	return e
}

func printable(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return fmt.Sprintf("0x%x", b)
}

// List reads the whole dead-letter topic (from the start to the current end,
// no consumer group) and returns the entries f selects.
func List(ctx context.Context, broker, dlqTopic string, f Filter) ([]Entry, error) {
	var out []Entry
	err := kafkalog.Each(ctx, broker, dlqTopic, func(m kafka.Message) error {
		if f.match(m) {
			out = append(out, EntryOf(m))
		}
		return nil
	})
	return out, err
}

// WriteTable prints entries for a terminal.
func WriteTable(w io.Writer, entries []Entry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tOFFSET\tKEY\tORIGINAL\tDEAD-LETTERED\tERROR")
	for _, e := range entries {
		msg := e.ErrorMessage
		if len(msg) > 80 {
			msg = msg[:77] + "..."
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s/%d@%d\t%s\t%s: %s\n", e.Partition, e.Offset, e.Key,
			e.OriginalTopic, e.OriginalPartition, e.OriginalOffset, e.Time.Format(time.RFC3339), e.ErrorClass, msg)
	}
	fmt.Fprintf(tw, "%d dead letters\n", len(entries))
	return tw.Flush()
}

// WriteJSON prints entries as one JSON array.
func WriteJSON(w io.Writer, entries []Entry) error {
	if entries == nil {
		entries = []Entry{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(entries)
}

// ReplayResult counts what Replay did.
type ReplayResult struct {
	Replayed int            `json:"replayed"`
	ByTopic  map[string]int `json:"by_topic"`
}

// Replay republishes the dead letters f selects to their original topics,
// with their key, value and original headers, marked with where they were
// replayed from. The consumer then applies them, or ignores them by version
// if they are stale by now. Messages without an original topic are refused.
func Replay(ctx context.Context, brokers []string, dlqTopic string, f Filter) (ReplayResult, error) {
	entries, err := List(ctx, brokers[0], dlqTopic, f)
	if err != nil {
		return ReplayResult{}, err
	}
	res := ReplayResult{ByTopic: map[string]int{}}
	if len(entries) == 0 {
		return res, nil
	}
	now := time.Now().UTC().Format(time.RFC3339)
	msgs := make([]kafka.Message, 0, len(entries))
	for _, e := range entries {
		if e.OriginalTopic == "" {
			return ReplayResult{}, fmt.Errorf("dead letter %s/%d@%d has no %s header: not replayed", dlqTopic, e.Partition, e.Offset, HeaderOriginalTopic)
		}
		if e.OriginalTopic == dlqTopic {
			return ReplayResult{}, errors.New("refusing to replay a dead letter onto the dead-letter topic")
		}
		var headers []kafka.Header
		for _, h := range e.msg.Headers {
			if !strings.HasPrefix(h.Key, dltPrefix) && h.Key != HeaderReplayedFrom && h.Key != HeaderReplayedAt {
				headers = append(headers, h)
			}
		}
		headers = append(headers,
			kafka.Header{Key: HeaderReplayedFrom, Value: fmt.Appendf(nil, "%s/%d@%d", dlqTopic, e.Partition, e.Offset)},
			kafka.Header{Key: HeaderReplayedAt, Value: []byte(now)})
		msgs = append(msgs, kafka.Message{Topic: e.OriginalTopic, Key: e.msg.Key, Value: e.msg.Value, Headers: headers})
		res.ByTopic[e.OriginalTopic]++
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Murmur2Balancer{Consistent: true}, BatchTimeout: 2 * time.Millisecond,
		BatchSize: len(msgs)}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return ReplayResult{}, fmt.Errorf("replay %d messages: %w", len(msgs), err)
	}
	res.Replayed = len(msgs)
	return res, nil
}
