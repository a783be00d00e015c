package orderconsumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/consumer/projector"
	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/order"
)

// deleteBefore deletes partition's records before offset, as retention does.
func deleteBefore(t *testing.T, s *stack, partition int32, offset int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = partition, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err == nil {
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			err = errors.New(kmsg.NameForKey(req.Key()) + " failed")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (s *stack) projectedOrders() int {
	s.t.Helper()
	var n int
	if err := s.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM order_projection").Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// A rebuild from a topic that no longer holds its beginning would replace
// every projected order by the few the topic still has (185,440 by 108
// once). It refuses, naming the partitions and offsets, and changes nothing;
// with -allow-partial it rebuilds without the lost orders, and remembers
// where it started, so the next rebuild passes.
func TestRebuildRefusesATopicThatLostItsBeginning(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.start()
	var all [][]order.Event
	for range 12 {
		h := history(t)
		all = append(all, h)
		s.produce(s.message(h[0]), s.message(h[1]))
	}
	for _, h := range all {
		s.waitVersion(h[0].Order.ID, 2)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	lost := all[0]
	part := int32(kafkatest.JavaPartition([]byte(lost[0].Order.ID.String()), 6))
	msgs, err := kafkatest.ReadAll(context.Background(), s.kafka.Brokers()[0], topic)
	if err != nil {
		t.Fatal(err)
	}
	var end int64
	gone := map[string]bool{}
	for _, m := range msgs {
		if int32(m.Partition) == part {
			end = m.Offset + 1
			gone[string(m.Key)] = true
		}
	}
	deleteBefore(t, s, part, end) // the whole partition's history, as retention would
	before := snapshot(t, s)

	_, err = orderconsumer.Rebuild(context.Background(), s.cfg(), stacktest.Logger(t), false)
	var partial *projector.PartialTopicError
	if !errors.As(err, &partial) || len(partial.Lost) != 1 || int32(partial.Lost[0].Partition) != part || partial.Lost[0].First != end {
		t.Fatalf("rebuild of a topic missing partition %d's first %d offsets: %v", part, end, err)
	}
	if want := fmt.Sprintf("partition %d starts at offset %d", part, end); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if after := snapshot(t, s); after != before {
		t.Fatal("a refused rebuild changed the projection")
	}

	res, err := orderconsumer.Rebuild(context.Background(), s.cfg(), stacktest.Logger(t), true)
	if err != nil || len(res.Partial) != 1 {
		t.Fatalf("rebuild -allow-partial: %+v %v", res, err)
	}
	if n := s.projectedOrders(); n != len(all)-len(gone) {
		t.Errorf("%d orders after a partial rebuild, want %d", n, len(all)-len(gone))
	}
	for _, h := range all {
		_, ok := s.projection(h[0].Order.ID)
		if ok == gone[h[0].Order.ID.String()] {
			t.Errorf("order %s: projected %v, its events gone %v", h[0].Order.ID, ok, gone[h[0].Order.ID.String()])
		}
	}
	// The projection now starts where the topic does: a rebuild passes.
	if _, err := orderconsumer.Rebuild(context.Background(), s.cfg(), stacktest.Logger(t), false); err != nil {
		t.Fatalf("rebuild after a partial one: %v", err)
	}
}

// A rebuild that fails part way (here the registry stays down until the
// operator gives up) leaves the projection as it was, and no scratch tables.
func TestAFailedRebuildLeavesTheProjectionAsItWas(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.start()
	h := history(t)
	s.produce(s.message(h[0]), s.message(h[1]), s.message(h[2]))
	s.waitVersion(h[0].Order.ID, 3)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	s.registry.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := orderconsumer.Rebuild(ctx, s.cfg(), stacktest.Logger(t), false); err == nil {
		t.Fatal("rebuild without a registry succeeded")
	}
	if after := snapshot(t, s); after != before {
		t.Fatal("a failed rebuild changed the projection")
	}
	var scratch int
	if err := s.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'projection_rebuild'").Scan(&scratch); err != nil || scratch != 0 {
		t.Errorf("scratch schema left behind: %d (%v)", scratch, err)
	}
	if err := s.registry.Start(); err != nil {
		t.Fatal(err)
	}
	if res, err := orderconsumer.Rebuild(context.Background(), s.cfg(), stacktest.Logger(t), false); err != nil || res.Applied != 3 {
		t.Fatalf("rebuild once the registry is back: %+v %v", res, err)
	}
	if after := snapshot(t, s); after != before {
		t.Fatalf("rebuilt projection differs:\n%s\n%s", after, before)
	}
}

// A new cluster starts its offsets at 0 again, so the offset check passes;
// the rebuilt projection would lack every order of the old cluster (the
// playground, restarted, is such a cluster). It is refused before the swap.
func TestRebuildFromANewClusterIsRefused(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.start()
	old := history(t)
	s.produce(s.message(old[0]), s.message(old[1]))
	s.waitVersion(old[0].Order.ID, 2)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	fresh := stacktest.Kafka(t, devstack.KafkaConfig{})
	cfg := s.cfg("KAFKA_BROKERS", fresh.Brokers()[0])
	w := &kafka.Writer{Addr: kafka.TCP(fresh.Brokers()...), Topic: topic, RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Murmur2Balancer{Consistent: true}, BatchTimeout: time.Millisecond}
	defer w.Close()
	other := history(t)
	if err := w.WriteMessages(context.Background(), s.message(other[0])); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	_, err := orderconsumer.Rebuild(context.Background(), cfg, stacktest.Logger(t), false)
	var loss *projector.LossError
	if !errors.As(err, &loss) || loss.Missing != 1 || len(loss.Examples) != 1 || loss.Examples[0] != old[0].Order.ID.String() {
		t.Fatalf("rebuild from a new cluster: %v", err)
	}
	if after := snapshot(t, s); after != before {
		t.Fatal("a refused rebuild changed the projection")
	}
	if _, err := orderconsumer.Rebuild(context.Background(), cfg, stacktest.Logger(t), true); err != nil {
		t.Fatalf("rebuild -allow-partial: %v", err)
	}
	if _, ok := s.projection(old[0].Order.ID); ok {
		t.Error("the old cluster's order survived a partial rebuild")
	}
	if p, ok := s.projection(other[0].Order.ID); !ok || p.version != 1 {
		t.Errorf("the new cluster's order: %+v %v", p, ok)
	}
}
