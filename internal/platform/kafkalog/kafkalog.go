// Package kafkalog reads what a topic holds, partition by partition, from its
// first offset to the end offsets at the time of the call, without a consumer
// group: nothing is committed and nothing waits for new messages. Operator
// commands (dlq list, dlq replay, rebuild, events tail, which calls Range
// again to follow), the dead-letter publisher and tests read topics
// through it.
//
// It reads with kafka-go's protocol-level client, which keeps what kafka-go's
// Reader and Conn lose: a null key or value is nil in the messages it
// returns, an empty one is a non-nil empty slice. A dead letter and its
// replay need that distinction to be byte for byte.
package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// MaxFetchBytes bounds one fetch; a record batch larger than this is still
// returned whole by the broker.
const MaxFetchBytes = 16 << 20

// Partitions returns the partition IDs of topic, sorted, or an error if the
// topic does not exist.
func Partitions(ctx context.Context, c *kafka.Client, topic string) ([]int, error) {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if len(md.Topics) != 1 {
		return nil, fmt.Errorf("metadata of %s: %d topics in the answer", topic, len(md.Topics))
	}
	if err := md.Topics[0].Error; err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	ids := make([]int, 0, len(md.Topics[0].Partitions))
	for _, p := range md.Topics[0].Partitions {
		ids = append(ids, p.ID)
	}
	sort.Ints(ids)
	return ids, nil
}

// Bounds is where a partition starts and ends: its first offset (after
// retention and deletions) and the offset the next message will get.
type Bounds struct {
	Partition   int
	First, Next int64
}

// Offsets returns the bounds of every partition of topic, by partition.
func Offsets(ctx context.Context, c *kafka.Client, topic string) ([]Bounds, error) {
	parts, err := Partitions(ctx, c, topic)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	out := make([]Bounds, 0, len(parts))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out = append(out, Bounds{Partition: po.Partition, First: po.FirstOffset, Next: po.LastOffset})
	}
	if len(out) != len(parts) {
		return nil, fmt.Errorf("offsets of %s: %d partitions answered of %d", topic, len(out), len(parts))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

// ReadAll returns every message topic holds now, by partition then offset.
func ReadAll(ctx context.Context, c *kafka.Client, topic string) ([]kafka.Message, error) {
	var all []kafka.Message
	err := Each(ctx, c, topic, func(m kafka.Message) error {
		all = append(all, m)
		return nil
	})
	return all, err
}

// Each calls fn for every message topic holds now, by partition then offset,
// and stops at fn's first error.
func Each(ctx context.Context, c *kafka.Client, topic string, fn func(kafka.Message) error) error {
	bounds, err := Offsets(ctx, c, topic)
	if err != nil {
		return err
	}
	for _, b := range bounds {
		if err := Range(ctx, c, topic, b.Partition, b.First, b.Next, fn); err != nil {
			return err
		}
	}
	return nil
}

// Range calls fn for each message of topic's partition from offset from up
// to (not including) to, in offset order, and stops at fn's first error.
// Offsets the partition no longer holds are skipped.
func Range(ctx context.Context, c *kafka.Client, topic string, partition int, from, to int64, fn func(kafka.Message) error) error {
	for off := from; off < to; {
		resp, err := c.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: partition, Offset: off,
			MinBytes: 1, MaxBytes: MaxFetchBytes, MaxWait: 100 * time.Millisecond})
		if err != nil {
			return fmt.Errorf("read %s/%d@%d: %w", topic, partition, off, err)
		}
		if errors.Is(resp.Error, kafka.OffsetOutOfRange) && resp.LogStartOffset > off {
			off = resp.LogStartOffset // deleted meanwhile (retention)
			continue
		}
		if resp.Error != nil {
			return fmt.Errorf("read %s/%d@%d: %w", topic, partition, off, resp.Error)
		}
		start := off
		for off < to {
			r, err := resp.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read %s/%d@%d: %w", topic, partition, off, err)
			}
			if r.Offset < off {
				continue // a batch may start before the offset asked for
			}
			if r.Offset >= to {
				off = to
				break
			}
			m, err := message(topic, partition, r)
			if err != nil {
				return fmt.Errorf("read %s/%d@%d: %w", topic, partition, r.Offset, err)
			}
			off = r.Offset + 1
			if err := fn(m); err != nil {
				return err
			}
		}
		if off == start {
			if resp.HighWatermark <= off {
				return nil // the partition ends before to (truncated meanwhile)
			}
			return fmt.Errorf("read %s/%d: no progress at offset %d of %d", topic, partition, off, to)
		}
	}
	return nil
}

// message copies r out of the fetch buffer, keeping null apart from empty.
func message(topic string, partition int, r *kafka.Record) (kafka.Message, error) {
	key, err := protocol.ReadAll(r.Key)
	if err != nil {
		return kafka.Message{}, err
	}
	value, err := protocol.ReadAll(r.Value)
	if err != nil {
		return kafka.Message{}, err
	}
	headers := make([]kafka.Header, len(r.Headers))
	for i, h := range r.Headers {
		headers[i] = kafka.Header{Key: h.Key, Value: append([]byte(nil), h.Value...)}
	}
	return kafka.Message{Topic: topic, Partition: partition, Offset: r.Offset, Key: key, Value: value,
		Headers: headers, Time: r.Time.UTC()}, nil
}
