// Package kafkatest reads topics back for tests: every message a topic holds,
// with its partition, offset, key, value and headers, over the Kafka protocol
// (kafka-go), as any consumer would see it. It also computes, independently of
// kafka-go, the partition Java's default partitioner picks for a key.
package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/kafkalog"
)

// ReadAll returns every message topic holds now, ordered by partition then
// offset.
func ReadAll(ctx context.Context, broker, topic string) ([]kafka.Message, error) {
	return kafkalog.ReadAll(ctx, kafkaconn.Plaintext.Client([]string{broker}, 10*time.Second), topic)
}

// MustReadAll is ReadAll within 10 seconds, failing tb if it cannot read
// topic: an empty answer then always means an empty topic.
func MustReadAll(tb testing.TB, broker, topic string) []kafka.Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := ReadAll(ctx, broker, topic)
	if err != nil {
		tb.Fatalf("kafkatest: read %s: %v", topic, err)
	}
	return msgs
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
