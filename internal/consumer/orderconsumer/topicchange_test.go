package orderconsumer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
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

// addPartitions grows the topic to n partitions, as an operator does.
func (s *stack) addPartitions(n int) {
	s.t.Helper()
	resp, err := s.admin().CreatePartitions(context.Background(), &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: int32(n)}}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		s.t.Fatal(err)
	}
}

// recreateTopic deletes the topic and creates it again, empty, with 6
// partitions.
func (s *stack) recreateTopic() {
	s.t.Helper()
	ctx := context.Background()
	if _, err := s.admin().DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
		s.t.Fatal(err)
	}
	stacktest.WaitFor(s.t, "the topic created again", wait, func() bool {
		resp, err := s.admin().CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 6, ReplicationFactor: 1}}})
		return err == nil && resp.Errors[topic] == nil
	})
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

// parked returns how many events wait in parked_events.
func (s *stack) parked() int {
	s.t.Helper()
	var n int
	if err := s.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM parked_events WHERE leaving IS NULL`).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
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

	s.addPartitions(12)
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

	s.recreateTopic()
	fresh := placedOrders(t, 6)
	w := s.freshWriter()
	for _, h := range fresh {
		write(t, w, s.message(h[0]), s.message(h[1]))
	}
	for _, h := range fresh {
		s.waitVersion(h[0].Order.ID, 2)
	}
	s.noDeadLetters()
	// Either the watch saw the offsets past the new partitions' ends and
	// reset them, or it saw the topic missing and joined again when it
	// appeared, its offsets gone with it (kfake may drop them, as Kafka
	// does): read from the start either way.
	m := scrape(t, inst.url)
	reset := m["consumer_offset_resets_total{}"] >= 1 && m[`consumer_rejoins_total{reason="offset_reset"}`] >= 1
	appeared := m[`consumer_rejoins_total{reason="topic_appeared"}`] >= 1
	if !reset && !appeared {
		t.Errorf("consumer_offset_resets_total = %v, consumer_rejoins_total{reason=\"offset_reset\"} = %v, {reason=\"topic_appeared\"} = %v: want a reset or a rejoin",
			m["consumer_offset_resets_total{}"], m[`consumer_rejoins_total{reason="offset_reset"}`], m[`consumer_rejoins_total{reason="topic_appeared"}`])
	}
	if l := log.String(); reset && (!strings.Contains(l, "offset out of range; reset by CONSUMER_OFFSET_RESET") ||
		!strings.Contains(l, "policy=earliest") || !strings.Contains(l, "topic="+topic)) {
		t.Errorf("no warning naming the reset in the log:\n%s", l)
	}
}

// oldPartition is a balancer that still sees 6 partitions, as a relay whose
// metadata is not refreshed yet.
type oldPartition struct{}

func (oldPartition) Balance(msg kafka.Message, _ ...int) int {
	return kafkatest.JavaPartition(msg.Key, 6)
}

// Partitions added, and an order's later events published to the partition
// its key maps to now while its PLACED, published with the old count, is
// read after them: they are parked, then applied with the PLACED, in
// order, in every read model, and nothing is dead-lettered.
func TestEventsThatMovedPartitionAreParkedUntilTheirPredecessorComes(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	inst := s.start("CONSUMER_TOPIC_CHECK_INTERVAL", "200ms")
	s.addPartitions(12)
	moved := s.freshWriter()
	var hs [][]order.Event
	for len(hs) < 4 {
		h := history(t)
		if kafkatest.JavaPartition([]byte(h[0].Order.ID.String()), 12) < 6 {
			continue
		}
		write(t, moved, s.message(h[1]), s.message(h[2]))
		hs = append(hs, h)
	}
	stacktest.WaitFor(t, "the moved events parked", wait, func() bool { return s.parked() == 2*len(hs) })
	if m := scrape(t, inst.url); m["consumer_parked_events{}"] != float64(2*len(hs)) {
		t.Errorf("consumer_parked_events = %v, want %d", m["consumer_parked_events{}"], 2*len(hs))
	}
	old := s.freshWriter()
	old.Balancer = oldPartition{}
	for _, h := range hs {
		write(t, old, s.message(h[0]))
	}
	for _, h := range hs {
		s.waitVersion(h[0].Order.ID, 3)
	}
	if n := s.parked(); n != 0 {
		t.Errorf("%d events still parked", n)
	}
	l := s.ledger()
	for _, h := range hs {
		for _, ev := range h {
			if l[ev.ID.String()] != "applied/1" {
				t.Errorf("%s v%d: ledger %q, want applied/1", ev.Type, ev.Order.Version, l[ev.ID.String()])
			}
		}
	}
	var refunded int
	if err := s.db.Pool.QueryRow(context.Background(), `SELECT coalesce(sum(orders), 0) FROM customer_orders WHERE customer_id = 'c' AND status = 'refunded'`).Scan(&refunded); err != nil || refunded != len(hs) {
		t.Errorf("customer totals: %d refunded orders (%v), want %d", refunded, err, len(hs))
	}
	s.noDeadLetters()
}

// A parked event that turns out never to apply (a refund of an order then
// cancelled) is dead-lettered intact as out of sequence; one whose
// predecessor never comes, after CONSUMER_PARKED_MAX_AGE, as
// projection.ParkedTooLong, /readyz showing it degraded meanwhile, with one
// line logged when that starts and one when it ends.
func TestParkedEventsThatNeverApplyAreDeadLetteredIntact(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	log, logs := jsonLog(t, "info")
	inst := s.startWith(telemetry.Config{}, log, "CONSUMER_PARKED_MAX_AGE", "3s")
	a, b := history(t), history(t)
	refund, neverPlaced := s.message(a[2]), s.message(b[1])
	s.produce(refund, neverPlaced)
	stacktest.WaitFor(t, "both parked", wait, func() bool { return s.parked() == 2 })
	parked, err := orderconsumer.ListParked(context.Background(), s.cfg(), b[0].Order.ID)
	if err != nil || len(parked) != 1 || parked[0].EventID != b[1].ID || parked[0].Type != order.EventPaid {
		t.Fatalf("parked list of order b: %+v %v", parked, err)
	}
	placed := a[0].Order
	cancel, err := order.Standard.Apply(&placed, order.Change{Action: order.ActionCancel}, order.Now(), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	s.produce(s.message(a[0]), s.message(cancel))
	dead := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, 1, wait)
	if class, _ := kafkatest.Header(dead[0], deadletter.HeaderExceptionClass); class != "order.InvalidEvent.OutOfSequence" ||
		string(dead[0].Value) != string(refund.Value) || string(dead[0].Key) != string(refund.Key) {
		t.Errorf("dead letter %s class %q: want the REFUNDED intact, out of sequence", dead[0].Key, class)
	}
	stacktest.WaitFor(t, "/readyz showing the parked event", wait, func() bool {
		st, body := get(t, inst.url+"/readyz")
		checks, _ := body["checks"].(map[string]any)
		msg, _ := checks["parked_events"].(string)
		return st == 200 && strings.Contains(msg, b[0].Order.ID.String())
	})
	dead = kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, 2, wait)
	for _, d := range dead { // by DLQ partition, then offset
		if id, _ := kafkatest.Header(d, "event_id"); id != b[1].ID.String() {
			continue
		}
		if class, _ := kafkatest.Header(d, deadletter.HeaderExceptionClass); class != orderconsumer.ClassParkedTooLong ||
			string(d.Value) != string(neverPlaced.Value) {
			t.Errorf("dead letter %s class %q: want the PAID intact, parked too long", d.Key, class)
		}
	}
	if n := s.parked(); n != 0 {
		t.Errorf("%d still parked", n)
	}
	// Counted once the sweeper has deleted what it published.
	stacktest.WaitFor(t, "consumer_dlq_published_total{class=projection.ParkedTooLong} at 1", wait, func() bool {
		return scrape(t, inst.url)[`consumer_dlq_published_total{class="projection.ParkedTooLong"}`] == 1
	})
	if l := s.ledger(); l[a[2].ID.String()] != "" || l[b[1].ID.String()] != "" {
		t.Errorf("an event dead-lettered is in the ledger: %v", l)
	}
	stacktest.WaitFor(t, "/readyz with parked_events ok", wait, func() bool {
		_, body := get(t, inst.url+"/readyz")
		checks, _ := body["checks"].(map[string]any)
		return checks["parked_events"] == "ok"
	})
	if n, m := countLines(logs, "degraded", "parked_events"), countLines(logs, "no longer degraded", "parked_events"); n != 1 || m != 1 {
		t.Errorf("logged the parked event's wait starting %d times and ending %d times, want once each", n, m)
	}
}

// The whole pipeline, order-api's relay included, through the two topic
// changes operators make: partitions added while orders are paid (their
// PAIDs landing on partitions the consumer did not read before), then the
// topic deleted and created again. Every order reaches the projection at
// its API version, nothing is dead-lettered, nothing is restarted.
func TestThePipelineHealsWhenTheTopicChanges(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api := startOrderAPI(t, s)
	inst := s.start("CONSUMER_TOPIC_CHECK_INTERVAL", "200ms")
	place := func(n int) []string {
		ids := make([]string, n)
		for i := range ids {
			st, o := call(t, "POST", api+"/orders", fmt.Sprintf(`{"customer_id":"c-%d","currency":"EUR","items":[{"sku":"s","quantity":1,"unit_price_minor":100}]}`, i))
			if st != 201 {
				t.Fatalf("place: %d", st)
			}
			ids[i] = o.ID
		}
		return ids
	}
	converge := func(ids []string) {
		for _, id := range ids {
			_, want := call(t, "GET", api+"/orders/"+id, "")
			stacktest.WaitFor(t, fmt.Sprintf("order %s at the API's version %d", id, want.Version), wait, func() bool {
				st, got := call(t, "GET", inst.url+"/orders/"+id, "")
				return st == 200 && got.Version == want.Version && got.Status == want.Status
			})
		}
	}
	before := place(20)
	converge(before)

	s.addPartitions(12)
	onNew := func() bool {
		bounds, err := kafkalog.Offsets(context.Background(), s.admin(), topic)
		if err != nil {
			return false
		}
		for _, b := range bounds {
			if b.Partition >= 6 && b.Next > 0 {
				return true
			}
		}
		return false
	}
	// Orders placed until the relay writes to the new partitions (it
	// learns of them with its metadata, within seconds); then the orders
	// placed before are paid, and many PAIDs land on a new partition.
	var meanwhile []string
	stacktest.WaitFor(t, "an event on a new partition", wait, func() bool {
		meanwhile = append(meanwhile, place(1)...)
		return onNew()
	})
	for _, id := range before {
		if st, _ := call(t, "POST", api+"/orders/"+id+"/pay", ""); st != 200 {
			t.Fatalf("pay: %d", st)
		}
	}
	converge(meanwhile)
	converge(before)

	s.recreateTopic()
	after := place(10)
	for _, id := range after[:5] {
		call(t, "POST", api+"/orders/"+id+"/pay", "")
	}
	converge(after)
	s.noDeadLetters()
}
