package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/event/envelope"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
)

// `order-consumer events tail` as an operator runs it, over events the
// relay's encoder and framer wrote: every record of the topic from the
// beginning, in partition then offset order, decoded with its position,
// time, key, headers and schema ID; a record that does not decode and one
// whose key is not its order's printed with their error; -order selecting
// by key and by the decoded order; -n counting back from each partition's
// end; and the consumer group's committed offsets untouched, no group
// joined.
func TestEventsTailCommand(t *testing.T) {
	k, getenv := tailEnv(t)
	pub := newPublisher(t, k, getenv("SCHEMA_REGISTRY_URL"))
	a := history(t, "customer-a", order.ActionPay)
	b := history(t, "customer-b")
	pub.events(t, a[0].Order.ID.String(), a...)
	pub.events(t, b[0].Order.ID.String(), b...)
	pub.events(t, "not-the-order", a[0])                                                                      // breaks KeyMismatch
	pub.raw(t, kafka.Message{Key: []byte(b[0].Order.ID.String()), Value: []byte(`{"not": "an Avro event"}`)}) // poison
	events := map[string]order.Event{}
	for _, ev := range append(a, b...) {
		events[ev.ID.String()] = ev
	}
	msgs := kafkatest.MustReadAll(t, k.Brokers()[0], "order-events")
	if len(msgs) != 5 {
		t.Fatalf("the topic holds %d messages, want 5", len(msgs))
	}
	// The consumer group has read a's PLACED; the command must leave that so.
	groupAt := msgs[slices.IndexFunc(msgs, func(m kafka.Message) bool { return string(m.Key) == a[0].Order.ID.String() })]
	client := kafkaconn.Plaintext.Client(k.Brokers(), 10*time.Second)
	commit(t, client, groupAt.Partition, groupAt.Offset+1)

	lines := tail(t, getenv, "-from-beginning")
	if len(lines) != len(msgs) {
		t.Fatalf("-from-beginning printed %d lines for %d records", len(lines), len(msgs))
	}
	for i, m := range msgs {
		l, where := lines[i], fmt.Sprintf("line %d (%d@%d)", i, m.Partition, m.Offset)
		if l.Partition != m.Partition || l.Offset != m.Offset || !l.Timestamp.Equal(m.Time) || l.Key != string(m.Key) || l.ValueBytes != len(m.Value) {
			t.Errorf("%s: at %d@%d, %s, key %q, %d bytes; the record: %s, key %q, %d bytes", where,
				l.Partition, l.Offset, l.Timestamp, l.Key, l.ValueBytes, m.Time, m.Key, len(m.Value))
		}
		id, _ := kafkatest.Header(m, envelope.HeaderEventID)
		ev, isEvent := events[id]
		if !isEvent { // the poison
			if l.Event != nil || l.SchemaID != nil || l.ErrorClass != "eventcodec.ErrNotFramed" || !strings.Contains(l.Error, "not in the Confluent wire format") ||
				l.ValuePrefix != fmt.Sprintf("0x%x", m.Value[:16]) {
				t.Errorf("%s, a value that is not Avro: %+v", where, l)
			}
			continue
		}
		if l.SchemaID == nil || *l.SchemaID != binary.BigEndian.Uint32(m.Value[1:5]) {
			t.Errorf("%s: schema_id %v, the value is framed with %d", where, l.SchemaID, binary.BigEndian.Uint32(m.Value[1:5]))
		}
		wantHeaders := map[string]string{envelope.HeaderEventID: ev.ID.String(), envelope.HeaderEventType: string(ev.Type),
			envelope.HeaderTraceparent: ev.Meta.Traceparent, envelope.HeaderCorrelationID: ev.Meta.CorrelationID}
		if fmt.Sprint(l.Headers) != fmt.Sprint(wantHeaders) {
			t.Errorf("%s: headers %v, want %v", where, l.Headers, wantHeaders)
		}
		o, e := ev.Order, l.Event
		if e == nil || e.EventID != ev.ID.String() || e.EventType != string(ev.Type) || e.OrderID != o.ID.String() || e.Version != o.Version ||
			e.Status != string(o.Status) || e.CustomerID != o.CustomerID || e.Currency != o.Currency || e.TotalMinor != o.TotalMinor ||
			!e.OccurredAt.Equal(ev.OccurredAt) || fmt.Sprint(e.Items) != fmt.Sprint(o.Items) {
			t.Errorf("%s: event %+v, want %+v", where, e, ev)
		}
		if wrongKey := string(m.Key) != o.ID.String(); wrongKey != (l.ErrorClass == "order.InvalidEvent.KeyMismatch") || !wrongKey && l.Error != "" {
			t.Errorf("%s, keyed %q: error %s %q", where, m.Key, l.ErrorClass, l.Error)
		}
	}

	selected := func(lines []tailLine) (got []string) {
		for _, l := range lines {
			got = append(got, fmt.Sprintf("%d@%d", l.Partition, l.Offset))
		}
		return got
	}
	positions := func(keep func(kafka.Message) bool) (want []string) {
		for _, m := range msgs {
			if keep(m) {
				want = append(want, fmt.Sprintf("%d@%d", m.Partition, m.Offset))
			}
		}
		return want
	}
	// -order: a's two events by key, and the one keyed otherwise that names a.
	aID, bID := a[0].Order.ID.String(), b[0].Order.ID.String()
	if got, want := selected(tail(t, getenv, "-from-beginning", "-order", aID)), positions(func(m kafka.Message) bool {
		return string(m.Key) == aID || string(m.Key) == "not-the-order"
	}); !slices.Equal(got, want) || len(got) != 3 {
		t.Errorf("-order a printed %v, want %v", got, want)
	}
	// The poison is b's by its key alone.
	if got, want := selected(tail(t, getenv, "-order", bID)), positions(func(m kafka.Message) bool { return string(m.Key) == bID }); !slices.Equal(got, want) || len(got) != 2 {
		t.Errorf("-order b printed %v, want %v", got, want)
	}
	// -n 1: the last record of each partition; the default, 20, all of them.
	last := map[int]kafka.Message{}
	for _, m := range msgs {
		last[m.Partition] = m
	}
	if got, want := selected(tail(t, getenv, "-n", "1")), positions(func(m kafka.Message) bool { return last[m.Partition].Offset == m.Offset }); !slices.Equal(got, want) {
		t.Errorf("-n 1 printed %v, want %v", got, want)
	}
	if got := tail(t, getenv); len(got) != len(msgs) {
		t.Errorf("without flags: %d lines, want %d", len(got), len(msgs))
	}
	if got := tail(t, getenv, "-n", "0"); len(got) != 0 {
		t.Errorf("-n 0 printed %v", selected(got))
	}

	for _, c := range []struct{ args, refusal string }{
		{"-order nope", `-order "nope" is not an order ID`},
		{"-n -1", "-n -1: want 0 or more"},
		{"-n 5 -from-beginning", "-from-beginning or -n, not both"},
		{"extra", "unexpected arguments"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"events", "tail"}, strings.Fields(c.args)...), getenv, &out, &out); err == nil || !strings.Contains(err.Error(), c.refusal) {
			t.Errorf("events tail %s: %v, want it refused: %s", c.args, err, c.refusal)
		}
	}

	// Nothing above touched the consumer group.
	resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: "order-projector", Topics: map[string][]int{"order-events": {0, 1, 2, 3, 4, 5}}})
	if err != nil || resp.Error != nil {
		t.Fatalf("offsets of order-projector: %v %v", err, resp.Error)
	}
	for _, p := range resp.Topics["order-events"] {
		want := int64(-1)
		if p.Partition == groupAt.Partition {
			want = groupAt.Offset + 1
		}
		if p.CommittedOffset != want {
			t.Errorf("order-projector's offset of partition %d is %d after events tail, was %d", p.Partition, p.CommittedOffset, want)
		}
	}
	groups, err := client.ListGroups(context.Background(), &kafka.ListGroupsRequest{})
	if err != nil || groups.Error != nil {
		t.Fatalf("list groups: %v %v", err, groups.Error)
	}
	if len(groups.Groups) != 1 || groups.Groups[0].GroupID != "order-projector" || groups.Groups[0].ProtocolType != "" {
		t.Errorf("groups after events tail: %+v, want only order-projector, never joined", groups.Groups)
	}
}

// -follow prints what was there, then what arrives, each record once, until
// the operator interrupts it, which is a success.
func TestEventsTailFollow(t *testing.T) {
	k, getenv := tailEnv(t)
	pub := newPublisher(t, k, getenv("SCHEMA_REGISTRY_URL"))
	first, second := history(t, "c1"), history(t, "c2")
	pub.events(t, first[0].Order.ID.String(), first...)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"events", "tail", "-follow", "-from-beginning"}, getenv, out, out) }()
	printed := func(ev order.Event) func() bool {
		return func() bool { return strings.Contains(out.String(), `"event_id":"`+ev.ID.String()+`","event_type"`) }
	}
	stacktest.WaitFor(t, "the event already there", 20*time.Second, printed(first[0]))
	pub.events(t, second[0].Order.ID.String(), second...)
	stacktest.WaitFor(t, "the event published while following", 20*time.Second, printed(second[0]))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("interrupted: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("events tail -follow did not stop when interrupted")
	}
	lines := parseLines(t, []byte(out.String()))
	if len(lines) != 2 || lines[0].Event == nil || lines[0].Event.EventID != first[0].ID.String() || lines[1].Event == nil || lines[1].Event.EventID != second[0].ID.String() {
		t.Errorf("-follow printed:\n%s", out.String())
	}
}

// tailLine is a line of events tail's output, named as docs/operations.md
// names its fields.
type tailLine struct {
	Partition  int               `json:"partition"`
	Offset     int64             `json:"offset"`
	Timestamp  time.Time         `json:"timestamp"`
	Key        string            `json:"key"`
	Headers    map[string]string `json:"headers"`
	SchemaID   *uint32           `json:"schema_id"`
	ValueBytes int               `json:"value_bytes"`
	Event      *struct {
		EventID    string    `json:"event_id"`
		EventType  string    `json:"event_type"`
		OrderID    string    `json:"order_id"`
		Version    int64     `json:"version"`
		Status     string    `json:"status"`
		OccurredAt time.Time `json:"occurred_at"`
		CustomerID string    `json:"customer_id"`
		Currency   string    `json:"currency"`
		Items      []struct {
			SKU            string `json:"sku"`
			Quantity       int32  `json:"quantity"`
			UnitPriceMinor int64  `json:"unit_price_minor"`
		} `json:"items"`
		TotalMinor int64 `json:"total_minor"`
	} `json:"event"`
	ErrorClass  string `json:"error_class"`
	Error       string `json:"error"`
	ValuePrefix string `json:"value_prefix"`
}

// tail runs `events tail args` to its end and returns its lines; it fails t
// if the command fails or writes to stderr.
func tail(t *testing.T, getenv func(string) string, args ...string) []tailLine {
	t.Helper()
	var out, errs bytes.Buffer
	if err := run(context.Background(), append([]string{"events", "tail"}, args...), getenv, &out, &errs); err != nil || errs.Len() > 0 {
		t.Fatalf("events tail %s: %v\n%s", strings.Join(args, " "), err, errs.String())
	}
	return parseLines(t, out.Bytes())
}

func parseLines(t *testing.T, out []byte) []tailLine {
	t.Helper()
	var lines []tailLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var l tailLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("a line that is not JSON: %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// tailEnv is what events tail runs against: a broker with the topics and a
// Schema Registry, and no database, which the command does not need.
func tailEnv(t *testing.T) (*devstack.Kafka, func(string) string) {
	t.Helper()
	k := stacktest.Kafka(t, devstack.KafkaConfig{})
	reg := stacktest.Registry(t)
	return k, stacktest.Env(map[string]string{"KAFKA_BROKERS": k.Brokers()[0], "SCHEMA_REGISTRY_URL": reg.URL()})
}

// history is a new order's events: PLACED, then one per action.
func history(t *testing.T, customer string, actions ...order.Action) []order.Event {
	t.Helper()
	meta := order.Meta{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", CorrelationID: "corr-" + uuid.NewString()}
	o, placed, err := order.Place(order.NewOrder{CustomerID: customer, Currency: "EUR",
		Items: []order.Item{{SKU: "sku-1", Quantity: 2, UnitPriceMinor: 150}, {SKU: "sku-2", Quantity: 1, UnitPriceMinor: 99}}}, order.Now(), meta)
	if err != nil {
		t.Fatal(err)
	}
	evs := []order.Event{placed}
	for _, a := range actions {
		ev, err := order.Standard.Apply(&o, order.Change{Action: a}, order.Now(), meta)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// publisher writes to order-events as order-api's relay does: the
// encoder's Avro, framed with the registry's ID, the envelope's headers in
// their order, partitioned by murmur2 of the key.
type publisher struct {
	enc    *eventcodec.Encoder
	framer *eventcodec.Framer
	w      *kafka.Writer
}

func newPublisher(t *testing.T, k *devstack.Kafka, registryURL string) *publisher {
	t.Helper()
	enc, err := eventcodec.NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	framer, err := eventcodec.NewFramer(eventcodec.FramerConfig{URL: registryURL})
	if err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Brokers()...), Topic: "order-events", RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Murmur2Balancer{Consistent: true}, BatchTimeout: time.Millisecond}
	t.Cleanup(func() { w.Close() })
	return &publisher{enc: enc, framer: framer, w: w}
}

// events publishes evs keyed by key (the order's ID, unless the test wants
// an event the consumer would refuse).
func (p *publisher) events(t *testing.T, key string, evs ...order.Event) {
	t.Helper()
	for _, ev := range evs {
		payload, version, err := p.enc.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		value, err := p.framer.Frame(context.Background(), "order-events", version, payload)
		if err != nil {
			t.Fatal(err)
		}
		p.raw(t, kafka.Message{Key: []byte(key), Value: value, Headers: []kafka.Header{
			{Key: envelope.HeaderEventID, Value: []byte(ev.ID.String())},
			{Key: envelope.HeaderEventType, Value: []byte(ev.Type)},
			{Key: envelope.HeaderTraceparent, Value: []byte(ev.Meta.Traceparent)},
			{Key: envelope.HeaderCorrelationID, Value: []byte(ev.Meta.CorrelationID)},
		}})
	}
}

func (p *publisher) raw(t *testing.T, m kafka.Message) {
	t.Helper()
	if err := p.w.WriteMessages(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// commit commits offset for order-projector in partition as a consumer
// outside any generation would (a simple commit).
func commit(t *testing.T, c *kafka.Client, partition int, offset int64) {
	t.Helper()
	resp, err := c.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{GroupID: "order-projector", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{"order-events": {{Partition: partition, Offset: offset}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Topics["order-events"] {
		if p.Error != nil {
			t.Fatalf("commit %d@%d for order-projector: %v", partition, offset, p.Error)
		}
	}
}

// syncBuffer is the stdout of a command still running while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
