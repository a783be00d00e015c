package orderconsumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/order"
)

// committed returns the group's committed offset of partition p (-1: none).
func (s *stack) committed(p int) int64 {
	s.t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(s.kafka.Brokers()...)}
	resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: "order-projector",
		Topics: map[string][]int{topic: {p}}})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, po := range resp.Topics[topic] {
		if po.Partition == p {
			return po.CommittedOffset
		}
	}
	return -1
}

// A consumer that applied a batch but could not commit it, then stopped:
// the next one gets the batch again and changes nothing.
func TestStoppedAfterApplyBeforeCommitRedeliveryChangesNothing(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	h := history(t)
	s.produce(s.message(h[0]), s.message(h[1]), s.message(h[2]))
	fault := s.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.CoordinatorLoadInProgress, Count: -1})
	first := s.start()
	s.waitVersion(h[0].Order.ID, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fault.Wait(ctx, 1); err != nil {
		t.Fatal("the consumer never tried to commit")
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	fault.Remove()
	if got := s.committed(kafkatest.JavaPartition([]byte(h[0].Order.ID.String()), 6)); got > 0 {
		t.Fatalf("offset %d committed despite the fault", got)
	}
	before := s.ledger()

	second := s.start()
	stacktest.WaitFor(t, "the redelivered batch", wait, func() bool { return second.svc.Consumer().Stats().Duplicate == 3 })
	if st := second.svc.Consumer().Stats(); st.Applied != 0 || st.Stale != 0 {
		t.Fatalf("redelivery changed something: %+v", st)
	}
	if p, _ := s.projection(h[0].Order.ID); p.version != 3 || p.status != "refunded" {
		t.Fatalf("projection %+v", p)
	}
	after := s.ledger()
	for id, b := range before {
		if after[id] != "applied/2" || b != "applied/1" {
			t.Errorf("event %s: ledger %s → %s, want applied/1 → applied/2", id, b, after[id])
		}
	}
	stacktest.WaitFor(t, "the commit", wait, func() bool { return s.committed(kafkatest.JavaPartition([]byte(h[0].Order.ID.String()), 6)) == 3 })
}

// The database refusing connections for a while: nothing goes to the DLQ,
// /readyz says not ready, and everything is applied once it is back.
func TestDatabaseOutagePausesWithoutDeadLettering(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.start()
	h := history(t)
	s.produce(s.message(h[0]))
	s.waitVersion(h[0].Order.ID, 1)

	restart := s.db.Stop(t)
	s.produce(s.message(h[1]), s.message(h[2]))
	stacktest.WaitFor(t, "the consumer to report the database", wait, func() bool { return c.svc.Consumer().Ready() != nil })
	if st, body := get(t, c.url+"/readyz"); st != 503 {
		t.Errorf("/readyz during the outage: %d %v", st, body)
	}
	retried := c.svc.Consumer().Stats().Retries
	stacktest.WaitFor(t, "three more retries while the database is down", wait, func() bool {
		return c.svc.Consumer().Stats().Retries >= retried+3
	})
	if msgs := kafkatest.MustReadAll(t, s.kafka.Brokers()[0], dlqTopic); len(msgs) != 0 {
		t.Fatalf("%d messages dead-lettered while the database was down", len(msgs))
	}
	restart()
	s.waitVersion(h[0].Order.ID, 3)
	stacktest.WaitFor(t, "ready again", wait, func() bool { return c.svc.Consumer().Ready() == nil })
	if st, _ := get(t, c.url+"/readyz"); st != 200 {
		t.Errorf("/readyz after the outage: %d", st)
	}
	if msgs := kafkatest.MustReadAll(t, s.kafka.Brokers()[0], dlqTopic); len(msgs) != 0 {
		t.Fatalf("%d messages dead-lettered by a transient failure", len(msgs))
	}
	if st := c.svc.Consumer().Stats(); st.Retries == 0 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The DLQ topic failing: the poison message is not committed past, and
// reaches the DLQ once the fault clears.
func TestDLQFailureHoldsTheCommit(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	h := history(t)
	key := []byte(h[0].Order.ID.String())
	part := kafkatest.JavaPartition(key, 6)
	fault := s.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: dlqTopic, Err: kerr.NotEnoughReplicas, Count: -1})
	s.produce(s.message(h[0]), kafka.Message{Key: key, Value: []byte("poison")}, s.message(h[1]))
	c := s.start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fault.Wait(ctx, 3); err != nil {
		t.Fatal("the consumer did not keep trying the DLQ")
	}
	if got := s.committed(part); got > 1 {
		t.Fatalf("committed offset %d: past the poison message at 1 while its DLQ copy failed", got)
	}
	if c.svc.Consumer().Ready() == nil {
		t.Error("ready while the DLQ is failing")
	}
	fault.Remove()
	dead := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, 1, 20*time.Second)
	if len(dead) != 1 || string(dead[0].Value) != "poison" {
		t.Fatalf("dead letters %v", dead)
	}
	stacktest.WaitFor(t, "the commit past the batch", wait, func() bool { return s.committed(part) == 3 })
	s.waitVersion(h[0].Order.ID, 2)
}

// Two instances share the partitions; one stops mid-stream; every event is
// applied, none twice.
func TestTwoInstancesOneStoppedMidStream(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	a := s.start()
	b := s.start()
	var all []order.Event
	for i := 0; i < 40; i++ {
		all = append(all, history(t)...)
	}
	var first, second []kafka.Message
	for i, ev := range all {
		if i < len(all)/2 {
			first = append(first, s.message(ev))
		} else {
			second = append(second, s.message(ev))
		}
	}
	s.produce(first...)
	stacktest.WaitFor(t, "some progress", wait, func() bool { return a.svc.Consumer().Stats().Applied+b.svc.Consumer().Stats().Applied > 0 })
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	s.produce(second...)
	for _, ev := range all {
		if ev.Type == order.EventRefunded {
			s.waitVersion(ev.Order.ID, 3)
		}
	}
	l := s.ledger()
	if len(l) != len(all) {
		t.Fatalf("%d ledger rows for %d events", len(l), len(all))
	}
	for _, ev := range all {
		if got := l[ev.ID.String()]; got[:8] != "applied/" {
			t.Errorf("event %s v%d: %s", ev.ID, ev.Order.Version, got)
		}
	}
}

// dlq replay puts dead letters back on the topic: an event parked because
// the one it follows sits in the DLQ applies once that one is replayed and
// applied. rebuild reproduces the same projection from the topic.
func TestReplayAndRebuild(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	h := history(t)
	// v2 lands in the DLQ (simulated by publishing it there as the consumer would).
	pub, err := deadletter.NewPublisher(deadletter.PublisherConfig{Topic: "order-events.dlq", Brokers: s.kafka.Brokers(), Group: "order-projector", Logger: stacktest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	v2 := s.message(h[1])
	v2.Topic, v2.Partition, v2.Offset, v2.Time = topic, kafkatest.JavaPartition(v2.Key, 6), 41, time.Now()
	if err := pub.Publish(context.Background(), []deadletter.DeadLetter{{Msg: v2, Class: "transient.Example", Err: fmt.Errorf("registry was down")}}); err != nil {
		t.Fatal(err)
	}
	c := s.start()
	s.produce(s.message(h[0]), s.message(h[2])) // v1 and v3: a gap
	s.waitVersion(h[0].Order.ID, 1)
	stacktest.WaitFor(t, "v3 parked", wait, func() bool { return s.parked() == 1 }) // v3 follows v2, which is in the DLQ

	res, err := orderconsumer.ReplayDLQ(context.Background(), s.cfg(), deadletter.Filter{Key: string(v2.Key)}, false)
	if err != nil || res.Replayed != 1 || res.ByTopic[topic] != 1 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	s.waitVersion(h[0].Order.ID, 3)
	if l := s.ledger(); l[h[1].ID.String()] != "applied/1" || l[h[2].ID.String()] != "applied/1" {
		t.Fatalf("replayed v2 and parked v3: %q %q, want applied/1", l[h[1].ID.String()], l[h[2].ID.String()])
	}
	if n := s.parked(); n != 0 {
		t.Fatalf("%d events still parked", n)
	}
	msgs := kafkatest.MustReadAll(t, s.kafka.Brokers()[0], topic)
	if len(msgs) != 3 {
		t.Fatalf("%d messages on %s, want v1, v3 and the replayed v2", len(msgs), topic)
	}
	last := msgs[len(msgs)-1]
	if from, _ := kafkatest.Header(last, deadletter.HeaderReplayedFrom); from != dlqTopic+fmt.Sprintf("/%d@0", kafkatest.JavaPartition(v2.Key, 6)) {
		t.Errorf("replayed message: %s header %q", deadletter.HeaderReplayedFrom, from)
	}
	if id, _ := kafkatest.Header(last, "event_id"); id != h[1].ID.String() {
		t.Errorf("replayed message lost its headers: %v", last.Headers)
	}

	before := snapshot(t, s)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	rb, err := orderconsumer.Rebuild(context.Background(), s.cfg(), stacktest.Logger(t), false)
	if err != nil {
		t.Fatal(err)
	}
	// v1, v3 (parked), then the replayed v2, and v3 with it.
	if rb.Read != 3 || rb.Applied+rb.Parked != 3 || rb.Skipped != 0 {
		t.Errorf("rebuild result %+v, want 3 read, 3 applied or parked, none skipped", rb)
	}
	if after := snapshot(t, s); after != before {
		t.Fatalf("rebuilt projection differs:\n%s\n%s", after, before)
	}
}

// snapshot is the business state of the consumer's database (not when
// things were applied): what it holds of each order, and both read models.
func snapshot(t *testing.T, s *stack) string {
	t.Helper()
	var out string
	err := s.db.Pool.QueryRow(context.Background(), `
SELECT concat_ws(E'\n--\n',
    (SELECT string_agg(format('%s %s %s', order_id, status, version), E'\n' ORDER BY order_id) FROM order_versions),
    (SELECT string_agg(format('%s %s %s %s %s %s', id, status, version, total_minor, last_event_id, updated_at), E'\n' ORDER BY id)
     FROM order_projection),
    (SELECT string_agg(format('%s %s %s %s %s', customer_id, status, currency, orders, total_minor), E'\n'
                       ORDER BY customer_id, status, currency)
     FROM customer_orders WHERE orders <> 0))`).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Shutdown finishes the batch in hand: the database is down while a batch is
// retried, shutdown begins, the database returns within SHUTDOWN_TIMEOUT, and
// the batch is applied and committed before the service stops.
func TestShutdownFinishesAndCommitsTheBatchInHand(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.start("SHUTDOWN_TIMEOUT", "10s")
	h := history(t)
	s.produce(s.message(h[0]))
	s.waitVersion(h[0].Order.ID, 1)

	restart := s.db.Stop(t)
	s.produce(s.message(h[1]))
	stacktest.WaitFor(t, "the batch to be retried", wait, func() bool { return c.svc.Consumer().Ready() != nil })

	stopped := make(chan error, 1)
	go func() { stopped <- c.stop() }()
	// The read API's listener closes as the shutdown begins; the batch in
	// hand is then still retried.
	stacktest.WaitFor(t, "the shutdown to close the read API's listener", wait, func() bool { return !stacktest.Listening(c.url) })
	retried := c.svc.Consumer().Stats().Retries
	stacktest.WaitFor(t, "the batch to be retried during the shutdown", wait, func() bool {
		return c.svc.Consumer().Stats().Retries > retried
	})
	select {
	case err := <-stopped:
		t.Fatalf("the service stopped (%v) with its batch still failing, before SHUTDOWN_TIMEOUT", err)
	default:
	}
	restart()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	// The service has stopped: nothing can change the projection any more,
	// so waiting only rides out the test pool's own terminated connections.
	s.waitVersion(h[0].Order.ID, 2)
	if got := s.committed(kafkatest.JavaPartition([]byte(h[0].Order.ID.String()), 6)); got != 2 {
		t.Fatalf("committed offset %d after shutdown, want 2", got)
	}
}
