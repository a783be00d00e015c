package orderconsumer_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/schemas"
)

// What a hostile or buggy producer can put on order-events, and what the
// consumer must do with it: dead-letter it with a class naming what is wrong,
// keep consuming, and keep its projection to states the API could have had.

// zz appends n as an Avro long (zig-zag varint).
func zz(b []byte, n int64) []byte {
	u := uint64(n<<1) ^ uint64(n>>63)
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

func avroString(b []byte, s string) []byte { return append(zz(b, int64(len(s))), s...) }

// claimingItems is the crafted message: an order event body, valid up
// to its items array, which claims count entries and holds one.
func (s *stack) claimingItems(count int64) kafka.Message {
	s.t.Helper()
	id := uuid.NewString()
	b := avroString(nil, id)          // event_id
	b = zz(b, 0)                      // event_type PLACED
	b = avroString(b, id)             // order_id
	b = zz(b, 1)                      // version
	b = zz(b, 0)                      // status PLACED
	b = zz(b, time.Now().UnixMicro()) // occurred_at
	b = avroString(b, "x")
	b = avroString(b, "EUR")
	b = zz(b, count)
	value, err := s.framer.Frame(context.Background(), topic, schemas.Latest().Version, b)
	if err != nil {
		s.t.Fatal(err)
	}
	return kafka.Message{Key: []byte(id), Value: value}
}

// A 95-byte message claiming 2^40 items must not crash the consumer out of
// memory (on every restart), nor one claiming 20M make it allocate ~650 MB
// (docs/design.md, invariant 8). Both are dead-lettered as undecodable with
// memory flat, and an order placed through order-api after them is projected.
func TestHugeClaimedLengthsCannotCrashOrStallTheConsumer(t *testing.T) {
	s := newStack(t)
	api := startOrderAPI(t, s)
	c := s.start()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	poison := []kafka.Message{s.claimingItems(1 << 40), s.claimingItems(20_000_000), s.claimingItems(-(1 << 40))}
	for _, p := range poison {
		if len(p.Value) > 120 {
			t.Fatalf("the crafted message is %d bytes", len(p.Value))
		}
	}
	s.produce(poison...)
	st, o := call(t, "POST", api+"/orders", `{"customer_id":"c-1","currency":"EUR","items":[{"sku":"s","quantity":1,"unit_price_minor":100}]}`)
	if st != 201 {
		t.Fatalf("place: %d", st)
	}
	s.waitVersion(uuid.MustParse(o.ID), 1)
	dead := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, len(poison), 20*time.Second)
	runtime.ReadMemStats(&after)
	for _, d := range dead {
		if class, _ := kafkatest.Header(d, deadletter.HeaderExceptionClass); class != "eventcodec.ErrUndecodable" {
			t.Errorf("class %q, want eventcodec.ErrUndecodable", class)
		}
		if msg, _ := kafkatest.Header(d, deadletter.HeaderExceptionMessage); !strings.Contains(msg, "items") {
			t.Errorf("the error does not name the field: %q", msg)
		}
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
		t.Errorf("the process allocated %d MB while the poison went through", grew>>20)
	}
	if err := c.svc.Consumer().Ready(); err != nil {
		t.Errorf("not ready after the poison: %v", err)
	}
}

// A value just under the broker's limit is accepted on order-events, but its
// dead letter (the same bytes plus ~400 B of headers) would be refused as
// MESSAGE_TOO_LARGE and retried for ever, stopping all partitions. It is
// dead-lettered cut to fit, and the consumer moves on: a dead letter always
// fits its topic (docs/design.md, invariant 8).
func TestAValueJustUnderTheBrokerLimitIsDeadLetteredCutToFit(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.start()
	const size = 1048400
	big := kafka.Message{Key: []byte("big"), Value: bytes.Repeat([]byte("x"), size)}
	h := history(t)
	s.produce(big)
	s.produce(s.message(h[0]))
	s.waitVersion(h[0].Order.ID, 1)
	dead := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, 1, 20*time.Second)
	if from, _ := kafkatest.Header(dead[0], deadletter.HeaderTruncatedFrom); from != fmt.Sprint(size) {
		t.Errorf("%s = %q, want %d", deadletter.HeaderTruncatedFrom, from, size)
	}
	if class, _ := kafkatest.Header(dead[0], deadletter.HeaderExceptionClass); class != "eventcodec.ErrNotFramed" {
		t.Errorf("class %q", class)
	}
	stacktest.WaitFor(t, "ready", wait, func() bool { return c.svc.Consumer().Ready() == nil })
}

// Valid Avro that the API could never have written, refused as
// docs/design.md, invariant 8 asks. Each is dead-lettered with the rule it
// breaks, the projection keeps to what the API wrote, and the real events of
// the order still apply after.
func TestEventsTheAPICouldNotHaveWrittenAreDeadLettered(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.start()
	ctx := context.Background()
	other := history(t)
	edit := func(ev order.Event, f func(*order.Event)) order.Event {
		ev.Order.Items = append([]order.Item(nil), ev.Order.Items...)
		f(&ev)
		return ev
	}
	type poison struct {
		name  string
		msg   kafka.Message
		class string
	}
	var cases []poison
	add := func(name, rule string, msg kafka.Message) {
		cases = append(cases, poison{name, msg, "order.InvalidEvent." + rule})
	}
	var real [][]order.Event
	for i, tc := range []struct {
		name, rule string
		spoil      func(h []order.Event) kafka.Message
	}{
		{"keyed A, order_id B", "KeyMismatch", func(h []order.Event) kafka.Message {
			m := s.message(edit(other[1], func(e *order.Event) { e.Type, e.Order.Status = order.EventCancelled, order.StatusCancelled }))
			m.Value = s.message(edit(h[1], func(e *order.Event) {
				e.Type, e.Order.Status, e.Order.CustomerID, e.Order.PaymentReference = order.EventCancelled, order.StatusCancelled, "intruder", ""
			})).Value
			m.Key = []byte(other[0].Order.ID.String()) // the key of another order
			return m
		}},
		{"version MaxInt64", "VersionStatusMismatch", func(h []order.Event) kafka.Message {
			return s.message(edit(h[1], func(e *order.Event) { e.Order.Version = math.MaxInt64 }))
		}},
		{"PLACED with status refunded", "TypeStatusMismatch", func(h []order.Event) kafka.Message {
			return s.message(edit(h[0], func(e *order.Event) { e.Order.Status = order.StatusRefunded }))
		}},
		{"PAID with status cancelled", "TypeStatusMismatch", func(h []order.Event) kafka.Message {
			return s.message(edit(h[1], func(e *order.Event) { e.Order.Status = order.StatusCancelled; e.Order.PaymentReference = "" }))
		}},
		{"negative quantity and price", "InvalidOrder", func(h []order.Event) kafka.Message {
			return s.message(edit(h[1], func(e *order.Event) {
				e.Order.Items[0].Quantity, e.Order.Items[0].UnitPriceMinor, e.Order.TotalMinor = -1, -100, 100
			}))
		}},
		{"a total that is not the items'", "TotalMismatch", func(h []order.Event) kafka.Message {
			return s.message(edit(h[1], func(e *order.Event) { e.Order.TotalMinor = 1 }))
		}},
		{"currency €", "InvalidOrder", func(h []order.Event) kafka.Message {
			return s.message(edit(h[1], func(e *order.Event) { e.Order.Currency = "€" }))
		}},
		{"an empty SKU", "InvalidOrder", func(h []order.Event) kafka.Message {
			return s.message(edit(h[1], func(e *order.Event) { e.Order.Items[0].SKU = "" }))
		}},
		{"occurred_at in 1970", "ImplausibleTime", func(h []order.Event) kafka.Message {
			return s.message(edit(h[1], func(e *order.Event) { e.OccurredAt = time.Unix(0, 0).UTC() }))
		}},
		{"PAID claiming another customer", "TermsChanged", func(h []order.Event) kafka.Message {
			return s.message(edit(h[1], func(e *order.Event) { e.Order.CustomerID = "intruder" }))
		}},
		{"PAID in another currency", "TermsChanged", func(h []order.Event) kafka.Message {
			return s.message(edit(h[1], func(e *order.Event) {
				e.Order.Currency = map[bool]string{true: "USD", false: "EUR"}[e.Order.Currency == "EUR"]
			}))
		}},
		{"PAID for more items", "TermsChanged", func(h []order.Event) kafka.Message {
			return s.message(edit(h[1], func(e *order.Event) {
				e.Order.Items = append(e.Order.Items, order.Item{SKU: "extra", Quantity: 1, UnitPriceMinor: 1})
				e.Order.TotalMinor++
			}))
		}},
		{"PAID claiming an earlier creation", "TermsChanged", func(h []order.Event) kafka.Message {
			return s.message(edit(h[1], func(e *order.Event) { e.Order.CreatedAt = e.Order.CreatedAt.Add(-time.Hour) }))
		}},
	} {
		h := history(t)
		real = append(real, h)
		add(fmt.Sprintf("%d %s", i, tc.name), tc.rule, tc.spoil(h))
	}
	// Each order: placed, the poison, then its real PAID.
	s.produce(s.message(other[0]))
	for i, p := range cases {
		s.produce(s.message(real[i][0]), p.msg, s.message(real[i][1]))
	}
	s.produce(s.message(other[1]))
	s.waitVersion(other[0].Order.ID, 2)
	for _, h := range real {
		s.waitVersion(h[0].Order.ID, 2)
	}
	dead := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, len(cases), 20*time.Second)
	byKey := map[string]kafka.Message{}
	for _, d := range dead {
		byKey[string(d.Key)+"/"+string(d.Value[len(d.Value)-8:])] = d
	}
	for _, p := range cases {
		d, ok := byKey[string(p.msg.Key)+"/"+string(p.msg.Value[len(p.msg.Value)-8:])]
		if !ok {
			t.Errorf("%s: not in the DLQ", p.name)
			continue
		}
		if class, _ := kafkatest.Header(d, deadletter.HeaderExceptionClass); class != p.class {
			t.Errorf("%s: class %q, want %q", p.name, class, p.class)
		}
		if !bytes.Equal(d.Value, p.msg.Value) {
			t.Errorf("%s: not byte for byte", p.name)
		}
	}
	// The projection holds what the API wrote: each order paid at v2, with its
	// own customer, and a wait for a version the API never reached waits.
	for _, h := range append(real, other) {
		p, ok := s.projection(h[0].Order.ID)
		if !ok || p.status != "paid" || p.version != 2 {
			t.Errorf("order %s: %+v", h[0].Order.ID, p)
		}
	}
	var customer string
	if err := s.db.Pool.QueryRow(ctx, "SELECT customer_id FROM order_projection WHERE id = $1", other[0].Order.ID).Scan(&customer); err != nil || customer != "c" {
		t.Errorf("order keyed by the intruder: customer %q (%v)", customer, err)
	}
	// and the terms each was placed with, in the projection and in the
	// customers' totals: one paid order each, nothing else.
	for _, h := range real {
		var (
			currency string
			total    int64
			created  time.Time
		)
		o := h[0].Order
		err := s.db.Pool.QueryRow(ctx, "SELECT customer_id, currency, total_minor, created_at FROM order_projection WHERE id = $1", o.ID).
			Scan(&customer, &currency, &total, &created)
		if err != nil || customer != o.CustomerID || currency != o.Currency || total != o.TotalMinor || !created.Equal(o.CreatedAt) {
			t.Errorf("order %s holds %s %s %d %s (%v), want the terms it was placed with", o.ID, customer, currency, total, created, err)
		}
	}
	var totals string
	if err := s.db.Pool.QueryRow(ctx, `SELECT string_agg(format('%s %s %s %s', customer_id, status, orders, total_minor), '; ' ORDER BY 1)
FROM customer_orders WHERE orders <> 0 OR total_minor <> 0`).Scan(&totals); err != nil {
		t.Fatal(err)
	}
	n, sum := 0, int64(0)
	for _, h := range append(real, other) {
		if h[0].Order.CustomerID != "c" {
			t.Fatalf("the histories are of customer c; %s", h[0].Order.CustomerID)
		}
		n, sum = n+1, sum+h[0].Order.TotalMinor
	}
	if want := fmt.Sprintf("c paid %d %d", n, sum); totals != want {
		t.Errorf("customer totals %q, want %q", totals, want)
	}
	start := time.Now()
	if st, body := get(t, fmt.Sprintf("%s/orders/%s?min_version=3&wait=300ms", c.url, real[1][0].Order.ID)); st != 200 || body["version"] != 2.0 {
		t.Errorf("min_version=3 wait: %d %v", st, body)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("a wait for version 3 answered after %s: something claimed version 3", waited)
	}
	// The 1970 event never reached the latency histogram.
	if sum := scrape(t, c.url)["consumer_end_to_end_latency_seconds_sum{}"]; sum > 3600 {
		t.Errorf("consumer_end_to_end_latency_seconds_sum = %v", sum)
	}
}

// A 0-byte value is not a null (a tombstone): both are dead-lettered and
// replayed as they were, the empty one empty and the null null, each on its
// original partition rather than the key's (docs/design.md, invariant 6:
// byte for byte).
func TestEmptyAndNullValuesStayWhatTheyWere(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.start()
	key := []byte("some-order")
	part := (kafkatest.JavaPartition(key, 6) + 1) % 6 // not the key's murmur2 partition
	w := &kafka.Writer{Addr: kafka.TCP(s.kafka.Brokers()...), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return part })}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: key, Value: []byte{}}, kafka.Message{Key: key}); err != nil {
		t.Fatal(err)
	}
	dead := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, 2, 20*time.Second)
	if dead[0].Value == nil || len(dead[0].Value) != 0 || dead[1].Value != nil {
		t.Fatalf("dead letters: %#v and %#v, want empty and null", dead[0].Value, dead[1].Value)
	}
	if dead[0].Partition != part {
		t.Errorf("dead letter on partition %d, original on %d", dead[0].Partition, part)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	p := part
	if _, err := replay(t, s, deadletter.Filter{Partition: &p}); err != nil {
		t.Fatal(err)
	}
	msgs := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], topic, 4, 10*time.Second)
	for _, m := range msgs[2:] {
		if m.Partition != part {
			t.Errorf("replayed to partition %d, original %d", m.Partition, part)
		}
	}
	if v := msgs[2].Value; v == nil || len(v) != 0 {
		t.Errorf("the empty value was replayed as %#v", v)
	}
	if msgs[3].Value != nil {
		t.Errorf("the null value was replayed as %#v", msgs[3].Value)
	}
}

func replay(t *testing.T, s *stack, f deadletter.Filter) (deadletter.ReplayResult, error) {
	t.Helper()
	return orderconsumer.ReplayDLQ(context.Background(), s.cfg(), f, false)
}

// With ORDER_EVENTS_TOPIC misspelled the consumer must not look healthy and
// stay silent (kafka-go logs the error at debug). Its read API still serves
// what the projection holds, so it stays ready, but /readyz lists the
// consumer as degraded, naming the topic, and it says so at warn; once the
// topic exists it consumes (docs/design.md, invariant 9).
func TestAMissingTopicIsDegradedAndSaysSo(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	log, logs := jsonLog(t, "info")
	const misspelled = "order-evnts"
	c := s.startWith(telemetry.Config{}, log, "ORDER_EVENTS_TOPIC", misspelled)
	stacktest.WaitFor(t, "/readyz 200 with the consumer degraded, naming the topic", wait, func() bool {
		st, body := get(t, c.url+"/readyz")
		degraded, _ := body["degraded"].(map[string]any)
		reason, _ := degraded["consumer"].(string)
		return st == 200 && strings.Contains(reason, misspelled)
	})
	warned := false
	for _, l := range jsonLines(logs) {
		if l["level"] == "WARN" && strings.Contains(fmt.Sprint(l), misspelled) {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning names %s in the log", misspelled)
	}
	// Created later (a deploy order mistake), the topic is consumed.
	resp, err := kafkaconn.Plaintext.Client(s.kafka.Brokers(), 5*time.Second).CreateTopics(context.Background(),
		&kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: misspelled, NumPartitions: 2, ReplicationFactor: 1}}})
	if err == nil {
		err = resp.Errors[misspelled]
	}
	if err != nil {
		t.Fatal(err)
	}
	h := history(t)
	m := s.message(h[0])
	m.Topic = misspelled
	w := &kafka.Writer{Addr: kafka.TCP(s.kafka.Brokers()...), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	s.waitVersion(h[0].Order.ID, 1)
	stacktest.WaitFor(t, "the consumer no longer degraded", wait, func() bool { return consumerOK(t, c.url) })
}

// countLines counts log's JSON lines whose msg is msg and check is check.
func countLines(log *stacktest.Log, msg, check string) int {
	n := 0
	for _, l := range jsonLines(log) {
		if l["msg"] == msg && l["check"] == check {
			n++
		}
	}
	return n
}

// consumerOK reports whether the order-consumer at base is ready with its
// consumer check ok.
func consumerOK(t *testing.T, base string) bool {
	st, body := get(t, base+"/readyz")
	checks, _ := body["checks"].(map[string]any)
	return st == 200 && checks["consumer"] == "ok"
}

// `dlq replay -all` run again must not replay what it replayed before, which
// the consumer would dead-letter again, doubling the DLQ each time. Letters
// replayed once are skipped: each run puts back only the newest copy of a
// poison message.
func TestReplayingTheDLQAgainSkipsWhatWasReplayed(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.start()
	s.produce(kafka.Message{Key: []byte("poison-1"), Value: []byte("garbage")}, kafka.Message{Key: []byte("poison-2"), Value: []byte("junk")})
	kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, 2, 20*time.Second)
	for round, want := range []int{4, 6} {
		res, err := replay(t, s, deadletter.Filter{})
		if err != nil || res.Replayed != 2 || res.SkippedReplayed != round*2 {
			t.Fatalf("replay %d: %+v %v", round+1, res, err)
		}
		kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, want, 20*time.Second)
	}
	if msgs := kafkatest.MustReadAll(t, s.kafka.Brokers()[0], dlqTopic); len(msgs) != 6 {
		t.Errorf("after two replays the DLQ holds %d letters, want 6 (not 8)", len(msgs))
	}
}

// The same finding's other half: a group that cannot join (here the broker
// refuses it) makes the consumer degraded, saying why, the read API still
// ready, and the consumer ok again once it has joined, even with no message
// to consume; one line is logged when it starts failing and one when it
// recovers, however often it retries.
func TestAGroupThatCannotJoinIsDegraded(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	fault := s.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.JoinGroup}, Err: kerr.GroupAuthorizationFailed, Count: -1})
	log, logs := jsonLog(t, "info")
	c := s.startWith(telemetry.Config{}, log)
	stacktest.WaitFor(t, "/readyz 200 with the consumer degraded, naming kafka", wait, func() bool {
		st, body := get(t, c.url+"/readyz")
		degraded, _ := body["degraded"].(map[string]any)
		reason, _ := degraded["consumer"].(string)
		return st == 200 && strings.Contains(reason, "kafka") && strings.Contains(strings.ToLower(reason), "authorization")
	})
	warned := false
	for _, l := range jsonLines(logs) {
		if l["level"] == "WARN" && strings.Contains(strings.ToLower(fmt.Sprint(l)), "authorization") {
			warned = true
		}
	}
	if !warned {
		t.Error("no warning says why the group cannot join")
	}
	fault.Remove()
	stacktest.WaitFor(t, "the consumer ok once the group joined", wait, func() bool { return consumerOK(t, c.url) })
	if n, m := countLines(logs, "degraded", "consumer"), countLines(logs, "no longer degraded", "consumer"); n != 1 || m != 1 {
		t.Errorf("logged the consumer failing %d times and recovering %d times, want once each", n, m)
	}
}

// Headers and times that are not plausible are not believed: a
// correlation_id that is long or not text does not reach the log lines, and
// a valid event that occurred more than a week ago (a replay, an old
// backlog) is applied but not observed as end-to-end latency.
func TestImplausibleHeadersAndOldEventsAreNotBelieved(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	log, logs := jsonLog(t, "debug")
	c := s.startWith(telemetry.Config{}, log)
	withCorrelation := func(m kafka.Message, id string) kafka.Message {
		for i := range m.Headers {
			if m.Headers[i].Key == "correlation_id" {
				m.Headers[i].Value = []byte(id)
			}
		}
		return m
	}
	long, bad, good := history(t), history(t), history(t)
	s.produce(withCorrelation(s.message(long[0]), strings.Repeat("x", 300)),
		withCorrelation(s.message(bad[0]), "ab\xffcd"), withCorrelation(s.message(good[0]), "corr-ok"))
	// The counters, metrics and log lines of a batch follow its commit.
	stacktest.WaitFor(t, "3 events applied", wait, func() bool { return c.svc.Consumer().Stats().Applied == 3 })
	ids := map[string]string{}
	for _, l := range jsonLines(logs) {
		if l["msg"] == "event processed" {
			id, _ := l["correlation_id"].(string)
			ids[fmt.Sprint(l["order_id"])] = id
		}
	}
	if got := ids[good[0].Order.ID.String()]; got != "corr-ok" {
		t.Errorf("a plausible correlation_id reached the log as %q", got)
	}
	for _, h := range [][]order.Event{long, bad} {
		if got := ids[h[0].Order.ID.String()]; got != "" {
			t.Errorf("order %s: an implausible correlation_id reached the log as %q", h[0].Order.ID, got)
		}
	}

	observed := scrape(t, c.url)["consumer_end_to_end_latency_seconds_count{}"]
	o, old, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 1}}},
		order.Now().AddDate(0, 0, -8), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	s.produce(s.message(old))
	s.waitVersion(o.ID, 1)
	stacktest.WaitFor(t, "4 events applied", wait, func() bool { return c.svc.Consumer().Stats().Applied == 4 })
	if after := scrape(t, c.url)["consumer_end_to_end_latency_seconds_count{}"]; after != observed {
		t.Errorf("an 8-day-old event was observed: count %v → %v", observed, after)
	}
}

// A record larger than what one fetch asks for (1 MiB a partition) still
// comes, alone, as brokers send the first record batch whatever the fetch
// size: a 3 MiB value on a broker that takes 8 MiB records is read,
// dead-lettered (cut to fit, saying how long it was), and the event after
// it applies. A consumer that could not read it would stop at its offset
// for good.
func TestARecordLargerThanAFetchIsReadAndDeadLettered(t *testing.T) {
	t.Parallel()
	s := newStackWith(t, devstack.KafkaConfig{Opts: []kfake.Opt{kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608"})}}, kafkaconn.Plaintext)
	s.writer.BatchBytes = 8 << 20
	c := s.start()
	const size = 3 << 20
	h := history(t)
	key := []byte(h[0].Order.ID.String()) // the same partition as the event after it
	s.produce(kafka.Message{Key: key, Value: bytes.Repeat([]byte("x"), size)})
	s.produce(s.message(h[0]))
	s.waitVersion(h[0].Order.ID, 1)
	dead := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, 1, 20*time.Second)
	if from, _ := kafkatest.Header(dead[0], deadletter.HeaderTruncatedFrom); from != fmt.Sprint(size) {
		t.Errorf("%s = %q, want %d", deadletter.HeaderTruncatedFrom, from, size)
	}
	if class, _ := kafkatest.Header(dead[0], deadletter.HeaderExceptionClass); class != "eventcodec.ErrNotFramed" {
		t.Errorf("class %q", class)
	}
	stacktest.WaitFor(t, "ready", wait, func() bool { return c.svc.Consumer().Ready() == nil })
}
