package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/producer/orderstore"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
	"github.com/ordersonkafka/orders/migrations"
)

const topic = "order-events"

type harness struct {
	t        testing.TB
	db       *pgtest.DB
	kafka    *devstack.Kafka
	registry *devstack.RegistryServer
	store    *orderstore.Store
	decoder  *eventcodec.Decoder
}

// wait bounds every stacktest.WaitFor of these tests.
const wait = 20 * time.Second

func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, db: pgtest.MustDB(t, migrations.Orders()),
		kafka: stacktest.Kafka(t, devstack.KafkaConfig{Topics: []string{topic}}), registry: stacktest.Registry(t)}
	enc, err := eventcodec.NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	n := outbox.NewNotifier(h.db.Pool, nil, stacktest.Logger(t), 0)
	nctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = n.Run(nctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	h.store = orderstore.New(h.db.Pool, enc, topic, n.Poke, 0)
	if h.decoder, err = eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: h.registry.URL()}); err != nil {
		t.Fatal(err)
	}
	return h
}

// relay starts a relay and returns a stop function that waits for Run to return.
func (h *harness) relay(mod ...func(*outbox.Config)) (*outbox.Relay, func()) {
	h.t.Helper()
	fr, err := eventcodec.NewFramer(eventcodec.FramerConfig{URL: h.registry.URL(), Timeout: time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := outbox.Config{
		DatabaseURL: h.db.URL, Pool: h.db.Pool, Brokers: h.kafka.Brokers(), Topic: topic, Framer: fr,
		BatchSize: 1000, PollInterval: 200 * time.Millisecond, LockRetryInterval: 100 * time.Millisecond, Retention: 24 * time.Hour,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, WriteTimeout: 3 * time.Second,
		Logger: stacktest.Logger(h.t),
	}
	for _, m := range mod {
		m(&cfg)
	}
	r, err := outbox.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					h.t.Errorf("relay Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				h.t.Error("relay did not stop within 15s")
			}
		})
	}
	h.t.Cleanup(stop)
	return r, stop
}

// orders places n orders and pays every other one; it returns the number of
// events written to the outbox.
func (h *harness) orders(n int) int {
	h.t.Helper()
	ctx := context.Background()
	events := 0
	for i := range n {
		o, ev, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR",
			Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 100}}}, order.Now(), order.Meta{Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", CorrelationID: "corr"})
		if err != nil {
			h.t.Fatal(err)
		}
		if _, _, err := h.store.Create(ctx, o, ev, nil); err != nil {
			h.t.Fatal(err)
		}
		events++
		if i%2 == 0 {
			_, err := h.store.Update(ctx, o.ID, nil, func(o *order.Order) (order.Event, error) {
				return order.Standard.Apply(o, order.Change{Action: order.ActionPay}, order.Now(), order.Meta{})
			})
			if err != nil {
				h.t.Fatal(err)
			}
			events++
		}
	}
	return events
}

func (h *harness) unpublished() int {
	h.t.Helper()
	return h.count("SELECT count(*) FROM outbox")
}

// count runs a SELECT count(*) … query.
func (h *harness) count(query string) int {
	h.t.Helper()
	var n int
	if err := h.db.Pool.QueryRow(context.Background(), query).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// counter is the value of the counter name{label="value"} on reg (0 if it
// has not counted yet).
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func (h *harness) waitAllPublished() {
	h.t.Helper()
	stacktest.WaitFor(h.t, "every outbox row to be published", wait, func() bool { return h.unpublished() == 0 })
}

type published struct {
	msg     kafka.Message
	eventID string
	version int64
}

// check reads the topic and verifies, for every message: key = order ID,
// partition = Java murmur2's, headers present, value decodable through the
// registry; and per order, versions in order (first occurrences, since
// duplicates are allowed). It returns the messages and the count per event_id.
func (h *harness) check(want int) ([]published, map[string]int) {
	h.t.Helper()
	msgs := kafkatest.WaitForCount(h.t, h.kafka.Brokers()[0], topic, want, 20*time.Second)
	var out []published
	seen := map[string]int{}
	lastVersion := map[string]int64{}
	for _, m := range msgs {
		ev, err := h.decoder.Decode(context.Background(), m.Value)
		if err != nil {
			h.t.Fatalf("message %d/%d does not decode: %v", m.Partition, m.Offset, err)
		}
		key := string(m.Key)
		if key != ev.Order.ID.String() {
			h.t.Errorf("key %q, order %s", key, ev.Order.ID)
		}
		if p := kafkatest.JavaPartition(m.Key, 6); p != m.Partition {
			h.t.Errorf("order %s on partition %d, Java's murmur2 says %d", key, m.Partition, p)
		}
		for _, name := range []string{"event_id", "event_type", "traceparent", "correlation_id"} {
			if _, ok := kafkatest.Header(m, name); !ok {
				h.t.Errorf("message %d/%d lacks header %s", m.Partition, m.Offset, name)
			}
		}
		id, _ := kafkatest.Header(m, "event_id")
		if id != ev.ID.String() {
			h.t.Errorf("event_id header %s, payload %s", id, ev.ID)
		}
		if typ, _ := kafkatest.Header(m, "event_type"); typ != string(ev.Type) {
			h.t.Errorf("event_type header %s, payload %s", typ, ev.Type)
		}
		seen[id]++
		if seen[id] == 1 { // first occurrence: must follow the previous version
			if ev.Order.Version != lastVersion[key]+1 {
				h.t.Errorf("order %s: version %d after %d", key, ev.Order.Version, lastVersion[key])
			}
			lastVersion[key] = ev.Order.Version
		}
		out = append(out, published{m, id, ev.Order.Version})
	}
	return out, seen
}

func TestRelayPublishesEveryRowInOrderAndMarksIt(t *testing.T) {
	h := newHarness(t)
	n := h.orders(15)
	r, _ := h.relay()
	h.waitAllPublished()
	_, seen := h.check(n)
	if len(seen) != n {
		t.Fatalf("%d distinct events on the topic, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("event %s published %d times without any fault", id, c)
		}
	}
	if !r.IsLeader() {
		t.Error("the only relay is not the leader")
	}
	// New rows are picked up promptly (NOTIFY), not only by polling.
	more := h.orders(3)
	h.waitAllPublished()
	h.check(n + more)
}

func TestBrokerRefusingProducesDelaysButLosesNothing(t *testing.T) {
	h := newHarness(t)
	n := h.orders(10)
	fault := h.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: 3})
	h.relay()
	h.waitAllPublished()
	if hits := fault.Hits(); hits != 3 {
		t.Errorf("fault answered %d produce requests, want 3", hits)
	}
	_, seen := h.check(n)
	if len(seen) != n {
		t.Fatalf("%d distinct events, want %d", len(seen), n)
	}
}

func TestProduceAppliedButTimedOutYieldsDuplicatesNotLoss(t *testing.T) {
	h := newHarness(t)
	n := h.orders(10)
	// kfake appends the records, then answers REQUEST_TIMED_OUT, as a broker
	// whose replication timed out does: the relay must retry.
	fault := h.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.RequestTimedOut, Count: 1})
	h.relay()
	h.waitAllPublished()
	if fault.Hits() != 1 {
		t.Fatalf("fault hits %d", fault.Hits())
	}
	msgs, seen := h.check(n)
	if len(seen) != n {
		t.Fatalf("%d distinct events, want %d", len(seen), n)
	}
	if len(msgs) <= n {
		t.Fatalf("%d messages for %d events: the timed-out produce was not applied and retried", len(msgs), n)
	}
}

func TestRelayKilledBetweenPublishAndMarkYieldsAtMostDuplicates(t *testing.T) {
	h := newHarness(t)
	n := h.orders(10)
	stopFirst := make(chan func(), 1)
	killed := make(chan struct{})
	// When the first produce reaches the broker, kill the relay and only then
	// let the broker apply it: the rows are on the topic but never marked.
	h.kafka.Cluster.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Cluster.DropControl()
		go func() { stop := <-stopFirst; stop(); close(killed) }()
		select {
		case <-killed:
		case <-time.After(5 * time.Second):
		}
		return nil, nil, false
	})
	_, stop := h.relay()
	stopFirst <- stop
	select {
	case <-killed:
	case <-time.After(20 * time.Second):
		t.Fatal("the relay never produced")
	}
	if got := h.unpublished(); got != n {
		t.Fatalf("%d rows unpublished after the kill, want all %d (nothing acknowledged was marked)", got, n)
	}
	h.relay() // the replacement
	h.waitAllPublished()
	msgs, seen := h.check(n)
	if len(seen) != n {
		t.Fatalf("%d distinct events, want %d", len(seen), n)
	}
	dups := 0
	for _, c := range seen {
		if c > 2 {
			t.Errorf("an event was published %d times", c)
		}
		dups += c - 1
	}
	if dups == 0 || len(msgs) != n+dups {
		t.Fatalf("%d messages, %d duplicates: the killed relay's produce did not land", len(msgs), dups)
	}
}

func TestStandbyTakesOverWhenTheLeaderStops(t *testing.T) {
	h := newHarness(t)
	a, stopA := h.relay()
	stacktest.WaitFor(t, "relay A to lead", wait, a.IsLeader)
	b, _ := h.relay()
	n := h.orders(6)
	h.waitAllPublished()
	if !a.IsLeader() || b.IsLeader() {
		t.Fatalf("leaders: a=%v b=%v, want only a", a.IsLeader(), b.IsLeader())
	}
	stopA()
	stacktest.WaitFor(t, "relay B to take over", wait, b.IsLeader)
	n += h.orders(6)
	h.waitAllPublished()
	_, seen := h.check(n)
	if len(seen) != n {
		t.Fatalf("%d distinct events, want %d", len(seen), n)
	}
}

func TestRegistryDownThenBrokerDownOnlyDelay(t *testing.T) {
	h := newHarness(t)
	h.registry.Stop()
	n := h.orders(5)
	reg := prometheus.NewRegistry()
	h.relay(func(c *outbox.Config) { c.Metrics = outbox.NewMetrics(reg) })
	stacktest.WaitFor(t, "three failed attempts to frame while the registry is down", wait, func() bool {
		return counter(t, reg, "outbox_step_failures_total", "step", "frame") >= 3
	})
	if got := h.unpublished(); got != n {
		t.Fatalf("%d unpublished while the registry is down, want %d", got, n)
	}
	if err := h.registry.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitAllPublished()
	h.check(n)

	fault := h.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	m := h.orders(5)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fault.Wait(ctx, 3); err != nil {
		t.Fatalf("the relay did not retry against the failing broker: %v", err)
	}
	if got := h.unpublished(); got != m {
		t.Fatalf("%d unpublished while the broker refuses, want %d", got, m)
	}
	fault.Remove()
	h.waitAllPublished()
	_, seen := h.check(n + m)
	if len(seen) != n+m {
		t.Fatalf("%d distinct events, want %d", len(seen), n+m)
	}
}

func TestPurgeDeletesOnlyOldPublishedRows(t *testing.T) {
	h := newHarness(t)
	n := h.orders(4) // 6 events
	h.relay(func(c *outbox.Config) { c.Retention = time.Hour; c.PurgeInterval = 50 * time.Millisecond })
	h.waitAllPublished()
	if kept := h.count("SELECT count(*) FROM outbox_published"); kept != n {
		t.Fatalf("%d published rows kept, want all %d (retention 1h)", kept, n)
	}
	ctx := context.Background()
	if _, err := h.db.Pool.Exec(ctx, `UPDATE outbox_published SET published_at = now() - interval '2 hours' WHERE id IN (SELECT id FROM outbox_published ORDER BY id LIMIT 3)`); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, "the purge", wait, func() bool { return h.count("SELECT count(*) FROM outbox_published") == n-3 })
	if old := h.count("SELECT count(*) FROM outbox_published WHERE published_at < now() - interval '1 hour'"); old != 0 {
		t.Fatalf("%d rows past retention remain", old)
	}
}

// With Retention 0 a row is deleted once Kafka acknowledged it, instead of
// marked: every event is on the topic, each order's in version order, and
// the outbox is empty.
func TestWithRetentionZeroPublishedRowsAreDeleted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	n := h.orders(20)
	h.relay(func(c *outbox.Config) { c.Retention = 0; c.BatchSize = 7 })
	stacktest.WaitFor(t, "the outbox to empty", wait, func() bool { return h.count("SELECT count(*) FROM outbox") == 0 })
	if _, seen := h.check(n); len(seen) != n {
		t.Fatalf("%d distinct events on the topic, want %d", len(seen), n)
	}
}

func TestConfigValidate(t *testing.T) {
	err := outbox.Config{}.Validate()
	for _, want := range []string{"DatabaseURL", "Pool", "Brokers", "Topic", "Framer", "BatchSize", "PollInterval", "backoff"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "Retention") {
		t.Errorf("Validate() = %v: a Retention of 0 (delete on publish) is valid", err)
	}
	if err := (outbox.Config{Retention: -time.Hour}).Validate(); err == nil || !strings.Contains(err.Error(), "Retention and LimitInterval must not be negative") {
		t.Errorf("Validate() with a negative Retention = %v", err)
	}
}

// TestByteCappedBatchesDrainWithoutWaitingForThePoll: when MaxBatchBytes cuts
// a batch short, the relay goes straight on with the rest instead of waiting
// for a notification or the poll interval.
func TestByteCappedBatchesDrainWithoutWaitingForThePoll(t *testing.T) {
	h := newHarness(t)
	n := h.orders(12)
	start := time.Now()
	// About 3 rows fit in 1 KiB; with a 1-minute poll, only draining
	// immediately can publish everything within the deadline.
	h.relay(func(c *outbox.Config) { c.MaxBatchBytes = 1024; c.PollInterval = time.Minute })
	h.waitAllPublished()
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Fatalf("took %s", elapsed)
	}
	_, seen := h.check(n)
	if len(seen) != n {
		t.Fatalf("%d distinct events, want %d", len(seen), n)
	}
}

// TestCommitsWakeTheRelay: with a poll interval far longer than the test,
// a committed order reaches the topic only if the commit woke the relay —
// by NOTIFY (the relay is in another process) or in process (the writer's
// own relay leads, and no NOTIFY is sent).
func TestCommitsWakeTheRelay(t *testing.T) {
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprintf("in process: %v", local), func(t *testing.T) {
			h := newHarness(t)
			logs := stacktest.NewLog(t)
			r, _ := h.relay(func(c *outbox.Config) {
				c.PollInterval = time.Hour
				c.Logger = logs.Logger
			})
			stacktest.WaitFor(t, "leadership", wait, r.IsLeader)
			h.orders(1) // placed and paid; the harness's notifier: NOTIFY
			kafkatest.WaitForCount(t, h.kafka.Brokers()[0], topic, 2, 10*time.Second)
			if local {
				// A store whose notifier knows the leading relay: no NOTIFY.
				n := outbox.NewNotifier(h.db.Pool, r, stacktest.Logger(t), 0)
				var pokes int
				enc, err := eventcodec.NewEncoder()
				if err != nil {
					t.Fatal(err)
				}
				h.store = orderstore.New(h.db.Pool, enc, topic, func() { pokes++; n.Poke() }, 0)
				// Nothing runs n: a NOTIFY would never be sent.
				h.orders(1)
				if pokes == 0 {
					t.Fatal("the store never poked")
				}
			} else {
				h.orders(1)
			}
			start := time.Now()
			kafkatest.WaitForCount(t, h.kafka.Brokers()[0], topic, 4, 10*time.Second)
			t.Logf("published %s after the commit", time.Since(start))
			// Ending a wait early must leave the lock connection usable:
			// leadership is never lost, so it is taken exactly once.
			if n := strings.Count(logs.String(), "relay is the leader"); n != 1 || strings.Contains(logs.String(), "lost leadership") {
				t.Errorf("leadership taken %d times:\n%s", n, logs.String())
			}
		})
	}
}

// The relay's batch read walks the outbox's primary key in id order,
// whatever PostgreSQL expects of the table. Expecting few rows, it plans a
// sequential scan and a sort (or, before migration 00004, a bitmap scan),
// which read every page, dead rows included, on every read; the ordered
// index scan stops at the LIMIT. The situation: most rows published
// (moved out) since they were inserted, the table analyzed then, and no
// vacuum since.
func TestTheBatchReadWalksTheQueueIndexInOrder(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// No autovacuum between the writes and the plans (this test's own
	// database).
	if _, err := h.db.Pool.Exec(ctx, `ALTER TABLE outbox SET (autovacuum_enabled = false)`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.Pool.Exec(ctx, `
INSERT INTO outbox (event_id, topic, message_key, payload, schema_version, headers)
SELECT gen_random_uuid(), 'order-events', convert_to(gen_random_uuid()::text, 'UTF8'), decode(repeat('ab', 150), 'hex'), 1,
       jsonb_build_object('event_id', gen_random_uuid()::text) FROM generate_series(1, 20000)`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.Pool.Exec(ctx, `DELETE FROM outbox WHERE id <= 19950`); err != nil { // published
		t.Fatal(err)
	}
	if _, err := h.db.Pool.Exec(ctx, `ANALYZE outbox`); err != nil {
		t.Fatal(err)
	}
	plan := func(prepare bool) string {
		t.Helper()
		conn, err := pgx.Connect(ctx, h.db.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if prepare {
			if err := outbox.PrepareSession(ctx, conn); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := conn.Query(ctx, "EXPLAIN "+outbox.SelectBatchSQL, 1000, []int64{}, []int64{})
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	// Without the relay's session, PostgreSQL 15 plans a sequential scan
	// and a sort here: the situation is reproduced.
	if p := plan(false); !strings.Contains(p, "Seq Scan on outbox") {
		t.Fatalf("without the relay's session the plan is no longer a sequential scan, so this test no longer shows anything:\n%s", p)
	}
	p := plan(true)
	if !strings.Contains(p, "Index Scan using outbox_pkey on outbox ") || strings.Contains(p, "Seq Scan on outbox") ||
		strings.Contains(p, "Bitmap") || strings.Contains(p, "Sort") {
		t.Fatalf("the relay's batch read is not an ordered scan of the outbox's primary key:\n%s", p)
	}
}

// countingFramer counts the rows framed and keeps the context of the last.
type countingFramer struct {
	outbox.Framer
	mu   sync.Mutex
	n    int
	last context.Context
}

func (f *countingFramer) Frame(ctx context.Context, topic string, version int, payload []byte) ([]byte, error) {
	f.mu.Lock()
	f.n++
	f.last = ctx
	f.mu.Unlock()
	return f.Framer.Frame(ctx, topic, version, payload)
}

// readAhead waits until the relay's first write is held at the broker and
// the batch after it was read ahead and framed; it returns the context of
// the last frame (the relay's).
func (f *countingFramer) readAhead(t *testing.T, held <-chan struct{}, batch int) context.Context {
	t.Helper()
	select {
	case <-held:
	case <-time.After(wait):
		t.Fatal("the relay never produced")
	}
	var ctx context.Context
	stacktest.WaitFor(t, "the next batch read ahead and framed", wait, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		ctx = f.last
		return f.n >= 2*batch
	})
	return ctx
}

// holdFirstProduce makes the broker hold the first produce request (one
// partition's share of the relay's first write, which holds the write) until
// release is closed, then answer it with err, or normally when err is nil.
// The returned channel closes when that request arrives.
func (h *harness) holdFirstProduce(release <-chan struct{}, err error) <-chan struct{} {
	held := make(chan struct{})
	var produces atomic.Int32
	h.kafka.Cluster.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Cluster.KeepControl()
		if produces.Add(1) != 1 {
			return nil, nil, false
		}
		close(held)
		select {
		case <-release:
		case <-time.After(wait):
		}
		return nil, err, err != nil
	})
	return held
}

// A relay stopping while a write is in flight finishes that write and marks
// its rows, but starts no other: the batch it read ahead meanwhile is left
// unmarked, for the next leader.
func TestAStoppingRelayStartsNoNewWrite(t *testing.T) {
	h := newHarness(t)
	h.orders(20) // 30 events: a backlog of 6 batches
	const batch = 5
	release := make(chan struct{})
	held := h.holdFirstProduce(release, nil)
	fr := &countingFramer{}
	_, stop := h.relay(func(c *outbox.Config) { c.BatchSize = batch; fr.Framer = c.Framer; c.Framer = fr })
	ctx := fr.readAhead(t, held, batch)
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	<-ctx.Done() // the stop has begun
	close(release)
	<-stopped
	if msgs := kafkatest.MustReadAll(t, h.kafka.Brokers()[0], topic); len(msgs) != batch {
		t.Fatalf("%d events on the topic, want the first batch's %d: the relay wrote the batch it read ahead after it was told to stop", len(msgs), batch)
	}
	if got := h.count("SELECT count(*) FROM outbox_published"); got != batch {
		t.Fatalf("%d rows marked published, want the %d of the acknowledged write", got, batch)
	}
}

// failingFramer fails every frame while failing is set.
type failingFramer struct {
	outbox.Framer
	failing atomic.Bool
}

func (f *failingFramer) Frame(ctx context.Context, topic string, version int, payload []byte) ([]byte, error) {
	if f.failing.Load() {
		return nil, errors.New("injected: the registry cannot be reached")
	}
	return f.Framer.Frame(ctx, topic, version, payload)
}

// When the registry fails while the next batch is framed, the batch written
// before it is still marked published during the outage (not held until the
// registry is back, to be published again if the relay dies meanwhile), and
// everything is published once the registry answers again.
func TestARegistryOutageDoesNotHoldTheLastBatchUnmarked(t *testing.T) {
	h := newHarness(t)
	n := h.orders(20) // 30 events: a backlog of 6 batches
	const batch = 5
	fr := &failingFramer{}
	h.relay(func(c *outbox.Config) {
		c.BatchSize = batch
		fr.Framer = c.Framer
		c.Framer = &onFrame{Framer: fr, at: batch + 1, do: func() { fr.failing.Store(true) }}
	})
	stacktest.WaitFor(t, "the first batch marked while the registry fails", wait, func() bool {
		return h.count("SELECT count(*) FROM outbox_published") == batch
	})
	if !fr.failing.Load() || h.unpublished() != n-batch {
		t.Fatalf("failing %v, %d rows unpublished: want the registry failing and all but the first batch unpublished", fr.failing.Load(), h.unpublished())
	}
	fr.failing.Store(false)
	h.waitAllPublished()
	if _, seen := h.check(n); len(seen) != n {
		t.Fatalf("%d distinct events, want %d", len(seen), n)
	}
}

// onFrame calls do once, just before the at-th row is framed.
type onFrame struct {
	outbox.Framer
	at    int32
	calls atomic.Int32
	do    func()
}

func (f *onFrame) Frame(ctx context.Context, topic string, version int, payload []byte) ([]byte, error) {
	if f.calls.Add(1) == f.at {
		f.do()
	}
	return f.Framer.Frame(ctx, topic, version, payload)
}

// An archived row with the id of a row still to publish (the outbox's
// sequence reset by hand, as TRUNCATE … RESTART IDENTITY does) does not
// stop the relay: the row is published and replaces it in the archive.
func TestAnArchivedIDDoesNotStopTheRelay(t *testing.T) {
	h := newHarness(t)
	if _, err := h.db.Pool.Exec(context.Background(), `
INSERT INTO outbox_published (id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at)
VALUES (1, gen_random_uuid(), 'order-events', 'old', '\x00', 1, '{}', now() - interval '1 day', now() - interval '1 day')`); err != nil {
		t.Fatal(err)
	}
	n := h.orders(2) // 3 events, ids 1 to 3
	h.relay()
	h.waitAllPublished()
	if _, seen := h.check(n); len(seen) != n {
		t.Fatalf("%d distinct events, want %d", len(seen), n)
	}
	if kept := h.count("SELECT count(*) FROM outbox_published WHERE message_key <> 'old'"); kept != n {
		t.Fatalf("%d rows archived, want all %d, the old row with id 1 replaced", kept, n)
	}
}

// The relay's database connection dying while a batch is at the broker and
// the next was read ahead (a database restart, a killed backend), and that
// batch's write then failing, loses nothing: leadership ends with neither
// batch marked, the relay connects again, takes the lock back and
// publishes everything; the price is at most duplicates.
func TestTheDatabaseConnectionDyingMidPipelineLosesNothing(t *testing.T) {
	h := newHarness(t)
	n := h.orders(20) // 30 events: a backlog of 6 batches
	const batch = 5
	release := make(chan struct{})
	held := h.holdFirstProduce(release, errors.New("injected: the held produce fails"))
	fr := &countingFramer{}
	h.relay(func(c *outbox.Config) { c.BatchSize = batch; fr.Framer = c.Framer; c.Framer = fr })
	fr.readAhead(t, held, batch)
	// The backend holding the relay's advisory lock is the relay's connection.
	if got := h.count(`SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); got != 1 {
		t.Fatalf("terminated %d relay connections, want 1", got)
	}
	close(release)
	h.waitAllPublished()
	if _, seen := h.check(n); len(seen) != n {
		t.Fatalf("%d distinct events, want %d", len(seen), n)
	}
}
