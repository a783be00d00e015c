package orderconsumer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/kafkalog"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// admin is a client of the stack's broker for what an operator does to a
// topic.
func (s *stack) admin() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(s.kafka.Brokers()...), Timeout: 10 * time.Second}
}

// freshWriter is a writer that knows the topic's partitions as they are
// now (the stack's own, and kafka-go's DefaultTransport, cache them).
func (s *stack) freshWriter() *kafka.Writer {
	w := &kafka.Writer{Addr: kafka.TCP(s.kafka.Brokers()...), Transport: &kafka.Transport{}, Topic: topic, RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Murmur2Balancer{Consistent: true}, BatchTimeout: time.Millisecond}
	s.t.Cleanup(func() { w.Close() })
	return w
}

// placedOrders returns n orders' histories (placed, paid, refunded).
func placedOrders(t *testing.T, n int) [][]order.Event {
	hs := make([][]order.Event, n)
	for i := range hs {
		hs[i] = history(t)
	}
	return hs
}

// write writes msgs with w, failing the test on error.
func write(t *testing.T, w *kafka.Writer, msgs ...kafka.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// noDeadLetters fails t if the DLQ holds anything.
func (s *stack) noDeadLetters() {
	s.t.Helper()
	if dl := kafkatest.MustReadAll(s.t, s.kafka.Brokers()[0], dlqTopic); len(dl) != 0 {
		s.t.Fatalf("%d dead letters, want none; first: %s", len(dl), dl[0].Headers)
	}
}

// Partitions added to the topic while the consumer runs: it reads them
// within the topic check interval, without a restart, and the orders whose
// keys now map to a new partition are applied.
func TestPartitionsAddedAreReadWithoutARestart(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	inst := s.start("CONSUMER_TOPIC_CHECK_INTERVAL", "200ms")
	before := history(t)
	s.produce(s.message(before[0]))
	s.waitVersion(before[0].Order.ID, 1)

	resp, err := s.admin().CreatePartitions(context.Background(), &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: 12}}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		t.Fatal(err)
	}
	w := s.freshWriter()
	// Orders placed now, until enough of them land on the new partitions.
	var moved []uuid.UUID
	for len(moved) < 5 {
		h := history(t)
		if kafkatest.JavaPartition([]byte(h[0].Order.ID.String()), 12) < 6 {
			continue
		}
		write(t, w, s.message(h[0]), s.message(h[1]))
		moved = append(moved, h[0].Order.ID)
	}
	for _, id := range moved {
		s.waitVersion(id, 2)
	}
	s.noDeadLetters()
	if m := scrape(t, inst.url); m[`consumer_rejoins_total{reason="partitions_added"}`] < 1 {
		t.Errorf("consumer_rejoins_total{reason=\"partitions_added\"} = %v, want at least 1", m[`consumer_rejoins_total{reason="partitions_added"}`])
	}
}

// The topic deleted and created again under the consumer (its committed
// offsets now past the new partitions' ends): it resets them to the start,
// says so, and applies what the new topic receives, without a restart.
func TestATopicCreatedAgainIsReadFromItsStart(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	log := stacktest.NewLog(t)
	inst := s.startWith(telemetry.Config{}, log.Logger, "CONSUMER_TOPIC_CHECK_INTERVAL", "200ms")
	// Enough events on every partition that the committed offsets lie
	// past what the new topic will hold.
	var msgs []kafka.Message
	var last []order.Event
	for _, h := range placedOrders(t, 30) {
		msgs = append(msgs, s.message(h[0]), s.message(h[1]), s.message(h[2]))
		last = h
	}
	s.produce(msgs...)
	s.waitVersion(last[0].Order.ID, 3)
	stacktest.WaitFor(t, "every offset committed", wait, func() bool {
		bounds, err := kafkalog.Offsets(context.Background(), s.admin(), topic)
		if err != nil {
			return false
		}
		for _, b := range bounds {
			if c := s.committed(b.Partition); c != b.Next && (b.Next > 0 || c >= 0) {
				return false
			}
		}
		return true
	})

	ctx := context.Background()
	if _, err := s.admin().DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, "the topic created again", wait, func() bool {
		resp, err := s.admin().CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 6, ReplicationFactor: 1}}})
		return err == nil && resp.Errors[topic] == nil
	})
	fresh := placedOrders(t, 6)
	w := s.freshWriter()
	for _, h := range fresh {
		write(t, w, s.message(h[0]), s.message(h[1]))
	}
	for _, h := range fresh {
		s.waitVersion(h[0].Order.ID, 2)
	}
	s.noDeadLetters()
	m := scrape(t, inst.url)
	if m["consumer_offset_resets_total{}"] < 1 || m[`consumer_rejoins_total{reason="offset_reset"}`] < 1 {
		t.Errorf("consumer_offset_resets_total = %v, consumer_rejoins_total{reason=\"offset_reset\"} = %v; want both at least 1",
			m["consumer_offset_resets_total{}"], m[`consumer_rejoins_total{reason="offset_reset"}`])
	}
	if l := log.String(); !strings.Contains(l, "offset out of range; reset by CONSUMER_OFFSET_RESET") ||
		!strings.Contains(l, "policy=earliest") || !strings.Contains(l, "topic="+topic) {
		t.Errorf("no warning naming the reset in the log:\n%s", l)
	}
}
