package orderapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
	"github.com/ordersonkafka/orders/migrations"
	"github.com/ordersonkafka/orders/openapi"
)

type stack struct {
	db       *pgtest.DB
	kafka    *devstack.Kafka
	registry *devstack.RegistryServer
}

func newStack(t *testing.T) *stack {
	t.Helper()
	return &stack{db: pgtest.MustDB(t, migrations.Orders()), kafka: stacktest.Kafka(t, devstack.KafkaConfig{}), registry: stacktest.Registry(t)}
}

// wait bounds every stacktest.WaitFor of these tests.
const wait = 15 * time.Second

type instance struct {
	url  string
	svc  *orderapi.Service
	log  *stacktest.Log
	stop func() error // cancels and waits for Serve's result
}

// start runs a real order-api, wired exactly as cmd/order-api wires it, on a
// free port, configured only through its environment variables.
func (s *stack) start(t *testing.T, extra ...string) *instance {
	t.Helper()
	cfg, err := config.Load[orderapi.Config](stacktest.Env(map[string]string{
		"DATABASE_URL":              s.db.URL,
		"KAFKA_BROKERS":             s.kafka.Brokers()[0],
		"SCHEMA_REGISTRY_URL":       s.registry.URL(),
		"RELAY_POLL_INTERVAL":       "200ms",
		"RELAY_LOCK_RETRY_INTERVAL": "100ms",
		"RELAY_BACKOFF_MIN":         "10ms",
		"RELAY_BACKOFF_MAX":         "200ms",
		"SHUTDOWN_TIMEOUT":          "10s",
	}, extra...))
	if err != nil {
		t.Fatal(err)
	}
	log := stacktest.NewLog(t)
	svc, err := orderapi.New(context.Background(), cfg, log.Logger, telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	url, stop := stacktest.Serve(t, svc)
	return &instance{url: url, svc: svc, log: log, stop: stop}
}

// send POSTs body to url; it may run on any goroutine. The request and its
// answer are validated against order-api's OpenAPI document: a mismatch fails
// t.
func send(t testing.TB, url, body string, headers ...string) (int, map[string]any, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := openapitest.Load(t, openapi.OrderAPI()).Client(t).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("POST %s answered %d with a body that is not a JSON object: %w", url, resp.StatusCode, err)
	}
	return resp.StatusCode, m, nil
}

func post(t *testing.T, url, body string, headers ...string) (int, map[string]any) {
	t.Helper()
	st, m, err := send(t, url, body, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return st, m
}

// count runs a SELECT count(*) … query.
func (s *stack) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

const orderBody = `{"customer_id":"c-9","currency":"EUR","items":[{"sku":"BOOK","quantity":1,"unit_price_minor":999}]}`

func place(t *testing.T, base string, headers ...string) string {
	t.Helper()
	st, o := post(t, base+"/orders", orderBody, headers...)
	if st != 201 {
		t.Fatalf("place: %d %v", st, o)
	}
	return o["id"].(string)
}

// TestFlowsReachTheTopic: HTTP flows place→pay→refund and place→cancel, then
// the events read back from Kafka as a consumer sees them.
func TestFlowsReachTheTopic(t *testing.T) {
	s := newStack(t)
	api := s.start(t)
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	hdr := []string{"X-Correlation-ID", "flow-1", "traceparent", tp}
	a := place(t, api.url, hdr...)
	for _, action := range []string{"pay", "refund"} {
		if st, o := post(t, api.url+"/orders/"+a+"/"+action, "", hdr...); st != 200 {
			t.Fatalf("%s: %d %v", action, st, o)
		}
	}
	b := place(t, api.url, hdr...)
	if st, o := post(t, api.url+"/orders/"+b+"/cancel", `{"reason":"changed my mind"}`, hdr...); st != 200 {
		t.Fatalf("cancel: %d %v", st, o)
	}

	msgs := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 5, 20*time.Second)
	if len(msgs) != 5 {
		t.Fatalf("%d messages on the topic, want 5", len(msgs))
	}
	dec, err := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: s.registry.URL()})
	if err != nil {
		t.Fatal(err)
	}
	types := map[string][]string{}
	for _, m := range msgs {
		ev, err := dec.Decode(context.Background(), m.Value)
		if err != nil {
			t.Fatalf("value at %d/%d does not decode through the registry: %v", m.Partition, m.Offset, err)
		}
		key := string(m.Key)
		if key != ev.Order.ID.String() {
			t.Errorf("key %s for order %s", key, ev.Order.ID)
		}
		if want := kafkatest.JavaPartition(m.Key, 6); m.Partition != want {
			t.Errorf("order %s on partition %d; Java's partitioner picks %d", key, m.Partition, want)
		}
		if got := int64(len(types[key]) + 1); ev.Order.Version != got {
			t.Errorf("order %s: version %d where %d was next", key, ev.Order.Version, got)
		}
		types[key] = append(types[key], string(ev.Type))
		h := func(k string) string { v, _ := kafkatest.Header(m, k); return v }
		if h("event_id") != ev.ID.String() || h("event_type") != string(ev.Type) || h("traceparent") != tp || h("correlation_id") != "flow-1" {
			t.Errorf("headers %v for event %s %s", m.Headers, ev.ID, ev.Type)
		}
		if ev.Type == "CANCELLED" && ev.Order.CancelReason != "changed my mind" {
			t.Errorf("cancel reason %q", ev.Order.CancelReason)
		}
	}
	if got := strings.Join(types[a], ","); got != "PLACED,PAID,REFUNDED" {
		t.Errorf("order a: %s", got)
	}
	if got := strings.Join(types[b], ","); got != "PLACED,CANCELLED" {
		t.Errorf("order b: %s", got)
	}
}

// TestOrdersAcceptedWhileRegistryThenBrokerDown: the API never waits on the
// registry or Kafka; their events flow once each returns.
func TestOrdersAcceptedWhileRegistryThenBrokerDown(t *testing.T) {
	s := newStack(t)
	api := s.start(t)
	s.registry.Stop()
	for range 5 {
		place(t, api.url)
	}
	if err := s.registry.Start(); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 5, 20*time.Second)

	fault := s.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	for range 5 {
		place(t, api.url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fault.Wait(ctx, 2); err != nil {
		t.Fatalf("the relay never tried the failing broker: %v", err)
	}
	fault.Remove()
	msgs := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 10, 20*time.Second)
	ids := map[string]bool{}
	for _, m := range msgs {
		id, _ := kafkatest.Header(m, "event_id")
		ids[id] = true
	}
	if len(ids) != 10 {
		t.Fatalf("%d distinct events, want 10", len(ids))
	}
}

// TestGracefulShutdownFinishesInFlightRequests: a request blocked on the
// order's row lock when shutdown starts still completes, then Serve returns
// nil and the relay's lock is released.
func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	s := newStack(t)
	api := s.start(t)
	id := place(t, api.url)
	stacktest.WaitFor(t, "the relay to lead", wait, api.svc.Relay().IsLeader)

	ctx := context.Background()
	tx, err := s.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A test that fails holding the lock must still release it: the pool
	// cannot close while the transaction holds a connection.
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op once rolled back
	if _, err := tx.Exec(ctx, "SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", id); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		err    error
	}
	paid := make(chan answer, 1)
	go func() {
		st, _, err := send(t, api.url+"/orders/"+id+"/pay", "")
		paid <- answer{st, err}
	}()
	stacktest.WaitFor(t, "the pay request to wait on the row lock", wait, func() bool {
		return s.count(t, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()") == 1
	})
	stopped := make(chan error, 1)
	go func() { stopped <- api.stop() }()
	// The listener closes as the shutdown begins; the pay request is then
	// still held by the row lock.
	stacktest.WaitFor(t, "the shutdown to close the listener", wait, func() bool { return !stacktest.Listening(api.url) })
	select {
	case a := <-paid:
		t.Fatalf("the pay request was answered before its row lock was released: %d %v", a.status, a.err)
	default:
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-paid:
		if a.err != nil || a.status != 200 {
			t.Fatalf("in-flight pay answered %d (%v) during shutdown, want 200", a.status, a.err)
		}
	case <-time.After(wait):
		t.Fatal("the in-flight pay request was not answered")
	}
	if err := <-stopped; err != nil { // stop itself gives up after stacktest.StopTimeout
		t.Fatalf("Serve returned %v after a graceful shutdown", err)
	}
	// The relay unlocks as it stops; when the shutdown interrupted a query
	// on its connection (pgx then closes it), the lock goes with the
	// backend's exit, a moment later.
	stacktest.WaitFor(t, "no advisory lock held after shutdown", 5*time.Second, func() bool {
		return s.count(t, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())") == 0
	})
}

// TestSecondInstanceTakesOverPublishing: two order-api replicas on one
// database; one relays; when it stops the other takes over, order kept.
func TestSecondInstanceTakesOverPublishing(t *testing.T) {
	s := newStack(t)
	first := s.start(t)
	stacktest.WaitFor(t, "the first relay to lead", wait, first.svc.Relay().IsLeader)
	second := s.start(t)
	id := place(t, second.url)
	if st, o := post(t, second.url+"/orders/"+id+"/pay", ""); st != 200 {
		t.Fatalf("pay: %d %v", st, o)
	}
	kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 2, 20*time.Second)
	if second.svc.Relay().IsLeader() {
		t.Fatal("both relays lead")
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, "the second relay to take over", wait, second.svc.Relay().IsLeader)
	if st, o := post(t, second.url+"/orders/"+id+"/refund", ""); st != 200 {
		t.Fatalf("refund: %d %v", st, o)
	}
	msgs := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 3, 20*time.Second)
	var types []string
	for _, m := range msgs {
		typ, _ := kafkatest.Header(m, "event_type")
		types = append(types, typ)
	}
	if strings.Join(types, ",") != "PLACED,PAID,REFUNDED" {
		t.Fatalf("events %v", types)
	}
}

func TestRelayCanBeSwitchedOff(t *testing.T) {
	s := newStack(t)
	api := s.start(t, "RELAY_ENABLED", "false")
	if api.svc.Relay() != nil {
		t.Fatal("RELAY_ENABLED=false still runs a relay")
	}
	place(t, api.url)
	if unpublished := s.count(t, "SELECT count(*) FROM outbox"); unpublished != 1 {
		t.Fatalf("%d unpublished rows, want 1", unpublished)
	}
}

func TestInvalidConfigurationIsRefusedWithTheVariableNamed(t *testing.T) {
	env := map[string]string{"RELAY_BATCH_SIZE": "0", "LOG_LEVEL": "loud"}
	cfg, err := config.Load[orderapi.Config](func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "RELAY_BATCH_SIZE") || !strings.Contains(err.Error(), "LOG_LEVEL") {
		t.Fatalf("Validate() = %v", err)
	}
}
