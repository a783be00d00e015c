// Package kafkatest reads topics back for tests: every message a topic holds,
// with its partition, offset, key, value and headers, over the Kafka protocol
// (kafka-go), as any consumer would see it. It also computes, independently of
// kafka-go, the partition Java's default partitioner picks for a key.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReadAll returns every message topic holds now, ordered by partition then
// offset.
func ReadAll(ctx context.Context, broker, topic string) ([]kafka.Message, error) {
	conn, err := kafka.DialContext(ctx, "tcp", broker)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", broker, err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].ID < parts[j].ID })
	var all []kafka.Message
	for _, p := range parts {
		msgs, err := readPartition(ctx, p, topic)
		if err != nil {
			return nil, err
		}
		all = append(all, msgs...)
	}
	return all, nil
}

func readPartition(ctx context.Context, p kafka.Partition, topic string) ([]kafka.Message, error) {
	addr := net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))
	conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, p.ID)
	if err != nil {
		return nil, fmt.Errorf("dial leader of %s/%d: %w", topic, p.ID, err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return nil, fmt.Errorf("offsets of %s/%d: %w", topic, p.ID, err)
	}
	var msgs []kafka.Message
	for off := first; off < last; {
		if _, err := conn.Seek(off, kafka.SeekAbsolute); err != nil {
			return nil, fmt.Errorf("seek %s/%d@%d: %w", topic, p.ID, off, err)
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetReadDeadline(dl)
		} else {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		}
		batch := conn.ReadBatch(1, 16<<20)
		n := 0
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			m.Topic, m.Partition = topic, p.ID
			msgs = append(msgs, m)
			off = m.Offset + 1
			n++
		}
		if err := batch.Close(); err != nil && !errors.Is(err, kafka.RequestTimedOut) {
			return nil, fmt.Errorf("read %s/%d@%d: %w", topic, p.ID, off, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("read %s/%d: no progress at offset %d of %d", topic, p.ID, off, last)
		}
	}
	return msgs, nil
}

// WaitForCount polls topic until it holds at least n messages and returns them
// all, failing tb when timeout passes first.
func WaitForCount(tb testing.TB, broker, topic string, n int, timeout time.Duration) []kafka.Message {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var (
		msgs []kafka.Message
		err  error
	)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		msgs, err = ReadAll(ctx, broker, topic)
		cancel()
		if err == nil && len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kafkatest: %s holds %d messages after %s, want at least %d (last error: %v)", topic, len(msgs), timeout, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Header returns the value of header key of m, and whether it is there.
func Header(m kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// JavaPartition is the partition the Java client's default partitioner picks
// for a non-null key: toPositive(murmur2(key)) % partitions. Written from the
// Java source (org.apache.kafka.common.utils.Utils.murmur2), not from kafka-go,
// so tests check kafka-go's Murmur2Balancer against the reference.
func JavaPartition(key []byte, partitions int) int {
	return int(int32(murmur2(key))&0x7fffffff) % partitions
}

func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	rest := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[rest+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[rest+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[rest])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
