package deadletter

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/kafkalog"
)

// Filter selects dead letters. Zero values select everything. Offsets are
// positions in one DLQ partition, so FromOffset and ToOffset need Partition.
type Filter struct {
	Partition  *int   // DLQ partition
	FromOffset *int64 // DLQ offset, inclusive
	ToOffset   *int64 // DLQ offset, inclusive
	Key        string // exact message key
}

// check refuses a selection that cannot mean what it says, given the DLQ
// topic's partitions: a partition it does not have, a negative offset, an
// empty range, offsets without a partition.
func (f Filter) check(dlqTopic string, partitions []int) error {
	var errs []error
	if f.Partition != nil && !slices.Contains(partitions, *f.Partition) {
		errs = append(errs, fmt.Errorf("partition %d does not exist in %s (partitions 0 to %d)", *f.Partition, dlqTopic, len(partitions)-1))
	}
	if f.FromOffset != nil && *f.FromOffset < 0 {
		errs = append(errs, fmt.Errorf("from offset %d is negative", *f.FromOffset))
	}
	if f.ToOffset != nil && *f.ToOffset < 0 {
		errs = append(errs, fmt.Errorf("to offset %d is negative", *f.ToOffset))
	}
	if f.FromOffset != nil && f.ToOffset != nil && *f.FromOffset > *f.ToOffset {
		errs = append(errs, fmt.Errorf("from offset %d is after to offset %d", *f.FromOffset, *f.ToOffset))
	}
	if (f.FromOffset != nil || f.ToOffset != nil) && f.Partition == nil {
		errs = append(errs, errors.New("offsets are positions in one partition: select the partition too"))
	}
	return errors.Join(errs...)
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
	ValueNull         bool      `json:"value_null,omitempty"`    // a null value (tombstone), not an empty one
	Truncated         bool      `json:"truncated,omitempty"`     // cut to fit the DLQ: cannot be replayed
	ReplayedFrom      string    `json:"replayed_from,omitempty"` // set when this message was itself replayed before
	msg               kafka.Message
}

// EntryOf decodes the dead-letter headers of m.
func EntryOf(m kafka.Message) Entry {
	e := Entry{Partition: m.Partition, Offset: m.Offset, Key: printable(m.Key), Time: m.Time.UTC(),
		ValueBytes: len(m.Value), ValueNull: m.Value == nil, Truncated: Truncated(m), msg: m}
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
// no consumer group) and returns the entries f selects. It refuses a
// selection that names a partition the topic does not have, or a bad range.
func List(ctx context.Context, brokers []string, sec *kafkaconn.Security, dlqTopic string, f Filter) ([]Entry, error) {
	client := sec.Client(brokers, sec.Timeout())
	parts, err := kafkalog.Partitions(ctx, client, dlqTopic)
	if err != nil {
		return nil, err
	}
	if err := f.check(dlqTopic, parts); err != nil {
		return nil, fmt.Errorf("invalid selection: %w", err)
	}
	var out []Entry
	err = kafkalog.Each(ctx, client, dlqTopic, func(m kafka.Message) error {
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

// Position is where a dead letter is in the DLQ topic.
type Position struct {
	Partition int
	Offset    int64
}

func (p Position) String() string { return fmt.Sprintf("%d@%d", p.Partition, p.Offset) }

// ReplayLog remembers which dead letters were replayed, so a second replay
// of the same selection does not put them back again. The projection's
// database keeps it (projectionstore.Store, adapted by orderconsumer).
type ReplayLog interface {
	// Replayed returns those of positions of dlqTopic replayed before.
	Replayed(ctx context.Context, dlqTopic string, positions []Position) (map[Position]bool, error)
	// RecordReplayed notes positions of dlqTopic as replayed now.
	RecordReplayed(ctx context.Context, dlqTopic string, positions []Position) error
}

// ReplayOptions says how Replay treats letters replayed before.
type ReplayOptions struct {
	Log   ReplayLog // required
	Force bool      // replay letters the log says were replayed already
}

// ReplayResult counts what Replay did.
type ReplayResult struct {
	Replayed int            `json:"replayed"`
	ByTopic  map[string]int `json:"by_topic"`
	// SkippedReplayed counts letters replayed before (see ReplayOptions.Force).
	SkippedReplayed int `json:"skipped_already_replayed"`
	// SkippedTruncated counts letters cut to fit the DLQ: what they hold is
	// no longer the original, and would only be refused again.
	SkippedTruncated int `json:"skipped_truncated"`
}

// Replay republishes the dead letters f selects to their original topics and
// partitions, in DLQ order, with their key, value and original headers, marked
// with where they were replayed from, and notes them in opts.Log. Letters
// replayed before (unless opts.Force) and letters cut to fit are skipped and
// counted. The consumer then applies what it can: a stale event is ignored by
// version, one that follows an event replayed before it now applies.
// Nothing is written if the selection is invalid or a letter cannot go back
// where it came from (no original topic, a partition the topic no longer
// has).
func Replay(ctx context.Context, brokers []string, sec *kafkaconn.Security, dlqTopic string, f Filter, opts ReplayOptions) (ReplayResult, error) {
	if opts.Log == nil {
		return ReplayResult{}, errors.New("replay: a ReplayLog is required")
	}
	entries, err := List(ctx, brokers, sec, dlqTopic, f)
	if err != nil {
		return ReplayResult{}, err
	}
	res := ReplayResult{ByTopic: map[string]int{}}
	if len(entries) == 0 {
		return res, nil
	}
	positions := make([]Position, len(entries))
	for i, e := range entries {
		positions[i] = Position{e.Partition, e.Offset}
	}
	done, err := opts.Log.Replayed(ctx, dlqTopic, positions)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay: read the replay log: %w", err)
	}
	client := sec.Client(brokers, sec.Timeout())
	targets := map[string][]int{} // original topic → its partitions
	now := time.Now().UTC().Format(time.RFC3339)
	var (
		msgs     []kafka.Message
		replayed []Position
	)
	for i, e := range entries {
		switch {
		case done[positions[i]] && !opts.Force:
			res.SkippedReplayed++
			continue
		case e.Truncated:
			res.SkippedTruncated++
			continue
		case e.OriginalTopic == "":
			return ReplayResult{}, fmt.Errorf("dead letter %s/%s has no %s header: not replayed", dlqTopic, positions[i], HeaderOriginalTopic)
		case e.OriginalTopic == dlqTopic:
			return ReplayResult{}, errors.New("refusing to replay a dead letter onto the dead-letter topic")
		}
		parts, ok := targets[e.OriginalTopic]
		if !ok {
			if parts, err = kafkalog.Partitions(ctx, client, e.OriginalTopic); err != nil {
				return ReplayResult{}, fmt.Errorf("replay %s/%s: %w", dlqTopic, positions[i], err)
			}
			targets[e.OriginalTopic] = parts
		}
		if !slices.Contains(parts, e.OriginalPartition) {
			return ReplayResult{}, fmt.Errorf("dead letter %s/%s came from %s/%d, which no longer exists: not replayed",
				dlqTopic, positions[i], e.OriginalTopic, e.OriginalPartition)
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
		msgs = append(msgs, kafka.Message{Topic: e.OriginalTopic, Partition: e.OriginalPartition,
			Key: e.msg.Key, Value: e.msg.Value, Headers: headers})
		replayed = append(replayed, positions[i])
		res.ByTopic[e.OriginalTopic]++
	}
	if len(msgs) == 0 {
		return res, nil
	}
	// To the original partition (samePartition), in DLQ order: one call,
	// one batch per partition, so each partition keeps the letters' order.
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Transport: sec.Transport(), RequiredAcks: kafka.RequireAll,
		Balancer: samePartition{}, BatchTimeout: 2 * time.Millisecond, BatchSize: len(msgs), MaxAttempts: 1,
		WriteTimeout: sec.Timeout()}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return ReplayResult{}, fmt.Errorf("replay %d messages (none noted as replayed; running it again may duplicate some, which the consumer ignores): %w", len(msgs), err)
	}
	res.Replayed = len(msgs)
	if err := opts.Log.RecordReplayed(ctx, dlqTopic, replayed); err != nil {
		return res, fmt.Errorf("replayed %d messages but could not note them as replayed (a second replay would put them back again): %w", len(msgs), err)
	}
	return res, nil
}
