package orderconsumer_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/migrations"
	"github.com/ordersonkafka/orders/openapi"
)

const (
	topic    = "order-events"
	dlqTopic = "order-events.dlq"
)

type stack struct {
	t        testing.TB
	db       *pgtest.DB
	kafka    *devstack.Kafka
	registry *devstack.RegistryServer
	enc      *eventcodec.Encoder
	framer   *eventcodec.Framer
	writer   *kafka.Writer
}

func newStack(t testing.TB) *stack {
	t.Helper()
	return newStackWith(t, devstack.KafkaConfig{}, kafkaconn.Plaintext)
}

// newStackWith is newStack on a broker started with kcfg, which the stack's
// own writer reaches with sec.
func newStackWith(t testing.TB, kcfg devstack.KafkaConfig, sec *kafkaconn.Security) *stack {
	t.Helper()
	s := &stack{t: t, db: pgtest.MustDB(t, migrations.Projection()),
		kafka: stacktest.Kafka(t, kcfg), registry: stacktest.Registry(t)}
	var err error
	if s.enc, err = eventcodec.NewEncoder(); err != nil {
		t.Fatal(err)
	}
	if s.framer, err = eventcodec.NewFramer(eventcodec.FramerConfig{URL: s.registry.URL()}); err != nil {
		t.Fatal(err)
	}
	s.writer = &kafka.Writer{Addr: kafka.TCP(s.kafka.Brokers()...), Transport: sec.Transport(), Topic: topic, RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Murmur2Balancer{Consistent: true}, BatchTimeout: time.Millisecond}
	t.Cleanup(func() { s.writer.Close() })
	return s
}

// wait bounds every stacktest.WaitFor of these tests.
const wait = 30 * time.Second

type instance struct {
	url  string
	svc  *orderconsumer.Service
	stop func() error
}

// cfg is order-consumer's configuration on the stack, with extra variables
// (name, value, …) set over the test defaults.
func (s *stack) cfg(extra ...string) orderconsumer.Config {
	s.t.Helper()
	cfg, err := config.Load[orderconsumer.Config](stacktest.Env(map[string]string{
		"DATABASE_URL":          s.db.URL,
		"KAFKA_BROKERS":         s.kafka.Brokers()[0],
		"SCHEMA_REGISTRY_URL":   s.registry.URL(),
		"CONSUMER_BACKOFF_MIN":  "10ms",
		"CONSUMER_BACKOFF_MAX":  "200ms",
		"CONSUMER_BATCH_LINGER": "5ms",
		"SHUTDOWN_TIMEOUT":      "2s",
	}, extra...))
	if err != nil {
		s.t.Fatal(err)
	}
	return cfg
}

// start runs a real order-consumer, wired as cmd/order-consumer wires it,
// logging to a stacktest.Log.
func (s *stack) start(extra ...string) *instance {
	s.t.Helper()
	return s.startWith(telemetry.Config{}, stacktest.Logger(s.t), extra...)
}

// startWith is start with the given telemetry and logger.
func (s *stack) startWith(tel telemetry.Config, log *slog.Logger, extra ...string) *instance {
	s.t.Helper()
	svc, err := orderconsumer.New(context.Background(), s.cfg(extra...), log, tel)
	if err != nil {
		s.t.Fatal(err)
	}
	url, stop := stacktest.Serve(s.t, svc)
	serves(s.t, url, openapi.OrderConsumer())
	return &instance{url: url, svc: svc, stop: stop}
}

// documents holds the OpenAPI document of each service the tests started,
// by base URL, so that the helpers calling them (call, get, scrape, …) hold
// every exchange to it.
var documents sync.Map // base URL → *[]byte

// serves notes that the service at url answers as document says, until t
// ends (its port may then serve another test's service).
func serves(t testing.TB, url string, document []byte) {
	d := &document
	documents.Store(url, d)
	t.Cleanup(func() { documents.CompareAndDelete(url, d) })
}

// client is an http.Client whose every exchange with the service at url (a
// service the tests started, see serves) is validated against its OpenAPI
// document: a mismatch fails t (openapitest).
func client(t testing.TB, url string) *http.Client {
	var document []byte
	documents.Range(func(base, d any) bool {
		if url == base || strings.HasPrefix(url, base.(string)+"/") {
			document = *d.(*[]byte)
			return false
		}
		return true
	})
	if document == nil {
		t.Errorf("no service the tests started answers at %s", url)
		return http.DefaultClient
	}
	return openapitest.Load(t, document).Client(t)
}

// event makes the events of one order: placed, then paid, then refunded.
func history(t testing.TB) []order.Event {
	t.Helper()
	o, placed, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR",
		Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 100}}}, order.Now(), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	paid, err := order.Standard.Apply(&o, order.Change{Action: order.ActionPay}, order.Now(), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	refunded, err := order.Standard.Apply(&o, order.Change{Action: order.ActionRefund}, order.Now(), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return []order.Event{placed, paid, refunded}
}

// message frames ev as order-api's relay does.
func (s *stack) message(ev order.Event) kafka.Message {
	s.t.Helper()
	payload, v, err := s.enc.Encode(ev)
	if err != nil {
		s.t.Fatal(err)
	}
	value, err := s.framer.Frame(context.Background(), topic, v, payload)
	if err != nil {
		s.t.Fatal(err)
	}
	return kafka.Message{Key: []byte(ev.Order.ID.String()), Value: value, Headers: []kafka.Header{
		{Key: "event_id", Value: []byte(ev.ID.String())}, {Key: "event_type", Value: []byte(ev.Type)},
		{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
		{Key: "correlation_id", Value: []byte("corr")}}}
}

func (s *stack) produce(msgs ...kafka.Message) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.writer.WriteMessages(ctx, msgs...); err != nil {
		s.t.Fatal(err)
	}
}

type projected struct {
	status  string
	version int64
}

// projection returns order id's projected status and version, and whether
// it is projected at all.
func (s *stack) projection(id uuid.UUID) (projected, bool) {
	s.t.Helper()
	p, err := s.read(id)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, false
	}
	if err != nil {
		s.t.Fatalf("read the projection of order %s: %v", id, err)
	}
	return p, true
}

func (s *stack) read(id uuid.UUID) (projected, error) {
	var p projected
	err := s.db.Pool.QueryRow(context.Background(), "SELECT status, version FROM order_projection WHERE id = $1", id).Scan(&p.status, &p.version)
	return p, err
}

// waitVersion waits for order id to be projected at version. A failed read
// counts as not yet: tests that take the database away wait through it.
func (s *stack) waitVersion(id uuid.UUID, version int64) {
	s.t.Helper()
	stacktest.WaitFor(s.t, fmt.Sprintf("order %s at version %d", id, version), wait, func() bool {
		p, err := s.read(id)
		return err == nil && p.version == version
	})
}

// ledger returns event_id → (outcome, deliveries).
func (s *stack) ledger() map[string]string {
	s.t.Helper()
	rows, err := s.db.Pool.Query(context.Background(), "SELECT event_id::text, outcome, deliveries FROM processed_events")
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, outcome string
		var n int
		if err := rows.Scan(&id, &outcome, &n); err != nil {
			s.t.Fatal(err)
		}
		out[id] = fmt.Sprintf("%s/%d", outcome, n)
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := client(t, url).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestDuplicatesStaleAndGapsEndRight(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.start()
	a, b := history(t), history(t)
	// a: v1, v1 again, v3 before v2 (a gap), then v2 late.
	// b: v1, v2, v3, then v2 again as a redelivery with the same id.
	s.produce(s.message(a[0]), s.message(a[0]), s.message(a[2]), s.message(a[1]),
		s.message(b[0]), s.message(b[1]), s.message(b[2]), s.message(b[1]))
	s.waitVersion(a[0].Order.ID, 3)
	s.waitVersion(b[0].Order.ID, 3)
	stacktest.WaitFor(t, "all 8 deliveries", wait, func() bool {
		st := c.svc.Consumer().Stats()
		return st.Applied+st.Duplicate+st.Stale+st.Parked+st.DeadLettered == 8
	})
	l := s.ledger()
	// a's v3 came before the v2 it follows: parked, then applied right
	// after v2, in v2's transaction.
	want := map[string]string{
		a[0].ID.String(): "applied/2", a[1].ID.String(): "applied/1", a[2].ID.String(): "applied/1",
		b[0].ID.String(): "applied/1", b[1].ID.String(): "applied/2", b[2].ID.String(): "applied/1",
	}
	for id, w := range want {
		if l[id] != w {
			t.Errorf("event %s: ledger %q, want %q", id, l[id], w)
		}
	}
	if len(l) != 6 {
		t.Errorf("%d ledger rows, want 6: %v", len(l), l)
	}
	s.noDeadLetters()
	st, body := get(t, c.url+"/orders/"+b[0].Order.ID.String())
	if st != 200 || body["status"] != "refunded" || body["version"] != 3.0 {
		t.Errorf("read API: %d %v", st, body)
	}
	if st, _ := get(t, c.url+"/orders/"+uuid.NewString()); st != 404 {
		t.Errorf("unknown order: %d", st)
	}
}

func TestPoisonMessagesGoToTheDLQIntactAndTheRestIsApplied(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	good := history(t)
	key := []byte(good[0].Order.ID.String()) // one key: everything on one partition, in order
	valid := s.message(good[0]).Value

	wrongMagic := append([]byte{1}, valid[1:]...)
	unknownID := append([]byte(nil), valid...)
	binary.BigEndian.PutUint32(unknownID[1:5], 9999)
	// A schema the reader cannot resolve, registered under another subject.
	alien := `{"type":"record","name":"OrderEvent","namespace":"com.ordersonkafka.orders","fields":[{"name":"event_id","type":"long"}]}`
	resp, err := http.Post(s.registry.URL()+"/subjects/alien-value/versions", "application/json",
		strings.NewReader(`{"schema":`+strings.ReplaceAll(fmt.Sprintf("%q", alien), `\"`, `\"`)+`}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct{ ID uint32 }
	err = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("register the alien schema: %d %v", resp.StatusCode, err)
	}
	unresolvable := binary.BigEndian.AppendUint32([]byte{0}, reg.ID)
	unresolvable = append(unresolvable, 0x02)

	poison := []struct {
		name  string
		value []byte
		class string
	}{
		{"random bytes", []byte("definitely not avro \x00\xff"), "eventcodec.ErrNotFramed"},
		{"wrong magic byte", wrongMagic, "eventcodec.ErrNotFramed"},
		{"unknown schema id", unknownID, "eventcodec.ErrUnknownSchema"},
		{"unresolvable schema", unresolvable, "eventcodec.ErrIncompatibleSchema"},
	}
	var msgs []kafka.Message
	msgs = append(msgs, s.message(good[0]))
	for _, p := range poison {
		msgs = append(msgs, kafka.Message{Key: key, Value: p.value, Headers: []kafka.Header{{Key: "origin", Value: []byte(p.name)}}})
	}
	msgs = append(msgs, s.message(good[1]), s.message(good[2]))
	s.produce(msgs...)

	c := s.start()
	s.waitVersion(good[0].Order.ID, 3) // the good messages behind the poison are applied
	dead := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, len(poison), 20*time.Second)
	if len(dead) != len(poison) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(poison))
	}
	part := kafkatest.JavaPartition(key, 6)
	for i, d := range dead {
		p := poison[i]
		if !bytes.Equal(d.Value, p.value) || !bytes.Equal(d.Key, key) {
			t.Errorf("%s: dead letter is not byte for byte the original", p.name)
		}
		h := func(k string) []byte {
			for _, x := range d.Headers {
				if x.Key == k {
					return x.Value
				}
			}
			return nil
		}
		if string(h("origin")) != p.name {
			t.Errorf("%s: original header lost", p.name)
		}
		if string(h(deadletter.HeaderOriginalTopic)) != topic || string(h(deadletter.HeaderOriginalGroup)) != "order-projector" {
			t.Errorf("%s: topic/group headers %q %q", p.name, h(deadletter.HeaderOriginalTopic), h(deadletter.HeaderOriginalGroup))
		}
		if ph := h(deadletter.HeaderOriginalPartition); len(ph) != 4 || int(binary.BigEndian.Uint32(ph)) != part {
			t.Errorf("%s: original partition header % x, want %d as 4 bytes", p.name, ph, part)
		}
		if oh := h(deadletter.HeaderOriginalOffset); len(oh) != 8 || int64(binary.BigEndian.Uint64(oh)) != int64(i+1) {
			t.Errorf("%s: original offset header % x, want %d as 8 bytes", p.name, oh, i+1)
		}
		if th := h(deadletter.HeaderOriginalTimestamp); len(th) != 8 || binary.BigEndian.Uint64(th) == 0 {
			t.Errorf("%s: original timestamp header % x", p.name, th)
		}
		if string(h(deadletter.HeaderExceptionClass)) != p.class || len(h(deadletter.HeaderExceptionMessage)) == 0 {
			t.Errorf("%s: class %q message %q", p.name, h(deadletter.HeaderExceptionClass), h(deadletter.HeaderExceptionMessage))
		}
		if d.Partition != part {
			t.Errorf("%s: dead letter on partition %d, original on %d", p.name, d.Partition, part)
		}
	}
	// The counters move once the batch is committed, after its rows and
	// dead letters are visible.
	stacktest.WaitFor(t, "3 applied and 4 dead-lettered in the consumer's counters", wait, func() bool {
		st := c.svc.Consumer().Stats()
		return st.DeadLettered == int64(len(poison)) && st.Applied == 3
	})

	// dlq list shows them; dlq replay puts them back, and they go to the DLQ
	// again (still poison), while a replayed good event would be judged by version.
	entries, err := deadletter.List(context.Background(), s.kafka.Brokers(), kafkaconn.Plaintext, dlqTopic, deadletter.Filter{})
	if err != nil || len(entries) != len(poison) || entries[2].ErrorClass != "eventcodec.ErrUnknownSchema" || entries[2].OriginalOffset != 3 {
		t.Fatalf("list: %v %+v", err, entries)
	}
}

// A message produced with another partitioner (kcat's default is CRC32) is
// dead-lettered on its own partition number, as Spring does.
func TestDeadLetterKeepsTheOriginalPartition(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	key := []byte("some-order")
	other := (kafkatest.JavaPartition(key, 6) + 1) % 6
	w := &kafka.Writer{Addr: kafka.TCP(s.kafka.Brokers()...), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return other })}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: key, Value: []byte("not avro")}); err != nil {
		t.Fatal(err)
	}
	s.start()
	dead := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, 1, 20*time.Second)
	if dead[0].Partition != other {
		t.Fatalf("dead letter on partition %d, original on %d", dead[0].Partition, other)
	}
}
