// Package kafkalog reads what a topic holds, partition by partition, from its
// first offset to the end offsets at the time of the call, without a consumer
// group: nothing is committed and nothing waits for new messages. Operator
// commands (dlq list, dlq replay) and tests read topics through it.
package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Partitions returns the partitions of topic, sorted by ID.
func Partitions(ctx context.Context, broker, topic string) ([]kafka.Partition, error) {
	conn, err := kafka.DialContext(ctx, "tcp", broker)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", broker, err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].ID < parts[j].ID })
	return parts, nil
}

// ReadAll returns every message topic holds now, by partition then offset.
func ReadAll(ctx context.Context, broker, topic string) ([]kafka.Message, error) {
	var all []kafka.Message
	err := Each(ctx, broker, topic, func(m kafka.Message) error {
		all = append(all, m)
		return nil
	})
	return all, err
}

// Each calls fn for every message topic holds now, by partition then offset,
// and stops at fn's first error.
func Each(ctx context.Context, broker, topic string, fn func(kafka.Message) error) error {
	parts, err := Partitions(ctx, broker, topic)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if err := eachInPartition(ctx, p, topic, fn); err != nil {
			return err
		}
	}
	return nil
}

func eachInPartition(ctx context.Context, p kafka.Partition, topic string, fn func(kafka.Message) error) error {
	addr := net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))
	conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, p.ID)
	if err != nil {
		return fmt.Errorf("dial leader of %s/%d: %w", topic, p.ID, err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return fmt.Errorf("offsets of %s/%d: %w", topic, p.ID, err)
	}
	for off := first; off < last; {
		if _, err := conn.Seek(off, kafka.SeekAbsolute); err != nil {
			return fmt.Errorf("seek %s/%d@%d: %w", topic, p.ID, off, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		_ = conn.SetReadDeadline(deadline)
		batch := conn.ReadBatch(1, 16<<20)
		n := 0
		for off < last {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			m.Topic, m.Partition = topic, p.ID
			off = m.Offset + 1
			n++
			if err := fn(m); err != nil {
				batch.Close()
				return err
			}
		}
		if err := batch.Close(); err != nil && !errors.Is(err, kafka.RequestTimedOut) {
			return fmt.Errorf("read %s/%d@%d: %w", topic, p.ID, off, err)
		}
		if n == 0 {
			return fmt.Errorf("read %s/%d: no progress at offset %d of %d", topic, p.ID, off, last)
		}
	}
	return nil
}
