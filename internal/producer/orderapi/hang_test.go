package orderapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/openapi"
)

// A registry that accepts connections and never answers is a registry that
// is down: orders are taken all the same (the API never calls it; the relay
// frames at publish time), /readyz names it in outbox_relay with the bound
// that ran out, a log line names its address, and once a registry answers
// there again the orders are published without a restart.
func TestAHungRegistryIsDownAndHealsByItself(t *testing.T) {
	s := newStack(t)
	sw := stacktest.Switch(t, strings.TrimPrefix(s.registry.URL(), "http://"))
	sw.Hang()
	api := s.start(t, "SCHEMA_REGISTRY_URL", "http://"+sw.Addr(), "SCHEMA_REGISTRY_TIMEOUT", "300ms", "RELAY_STALL_AFTER", "100ms")
	place(t, api.url)

	var relay string
	stacktest.WaitFor(t, "/readyz to name the hung registry", wait, func() bool {
		st, checks := readyz(t, api.url)
		relay = checks["outbox_relay"]
		return st == 200 && strings.Contains(relay, "no answer within 300ms")
	})
	if !strings.HasPrefix(relay, "frame: schema registry") || !strings.Contains(relay, sw.Addr()) {
		t.Errorf("outbox_relay check %q: want the frame step, the registry and its address", relay)
	}
	if logs := api.log.String(); !strings.Contains(logs, `msg="relay step failed; retrying"`) || !strings.Contains(logs, sw.Addr()) {
		t.Errorf("no log line names the registry at %s:\n%s", sw.Addr(), logs)
	}
	if n := s.count(t, "SELECT count(*) FROM outbox"); n != 1 {
		t.Fatalf("%d outbox rows while the registry hangs, want the order's 1 kept", n)
	}

	sw.Resume()
	kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 1, wait)
	stacktest.WaitFor(t, "outbox_relay ok again", wait, func() bool {
		st, checks := readyz(t, api.url)
		return st == 200 && checks["outbox_relay"] == "ok"
	})
}

// exchange sends a request to order-api and returns its status, headers and
// body; it fails t if no answer comes within a minute (the service hung).
func exchange(t *testing.T, method, url, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := *openapitest.Load(t, openapi.OrderAPI()).Client(t)
	c.Timeout = time.Minute
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, resp.Header, m
}

// PostgreSQL that accepts connections and never answers is down: a place
// and a change are answered 503 with Retry-After, the log line of each
// names the server and the bound that ran out (DATABASE_TIMEOUT), /readyz
// names the database and its address, the relay reports it; once the
// server answers again the API takes orders and the relay publishes them,
// without a restart. Connections open when it hung stay silent for good,
// as after a partition: only the deadlines free what waits on them.
func TestAHungDatabaseIs503AndHealsByItself(t *testing.T) {
	s := newStack(t)
	url, sw := s.db.Hangable(t)
	api := s.start(t, "DATABASE_URL", url, "DATABASE_TIMEOUT", "1s", "RELAY_STALL_AFTER", "100ms")
	// Before the service stops: the connections the switch silenced end,
	// so the pool's close does not wait out pgx's 15s goodbye on each.
	t.Cleanup(sw.Close)
	id := place(t, api.url)
	kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 1, wait)
	sw.Hang()

	for _, req := range []struct{ path, body string }{{"/orders", orderBody}, {"/orders/" + id + "/pay", ""}} {
		st, h, p := exchange(t, "POST", api.url+req.path, req.body)
		if st != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || p["type"] != "/problems/unavailable" {
			t.Errorf("POST %s while the database hangs: %d, Retry-After %q, %v; want 503 with Retry-After", req.path, st, h.Get("Retry-After"), p)
		}
	}
	logs := api.log.String()
	if !strings.Contains(logs, `msg="order store unavailable"`) || !strings.Contains(logs, "postgres "+sw.Addr()+"/") ||
		!strings.Contains(logs, "no answer within 1s") {
		t.Errorf("no log line names the database at %s and the bound:\n%s", sw.Addr(), logs)
	}
	st, checks := readyz(t, api.url)
	if st != http.StatusServiceUnavailable || !strings.Contains(checks["database"], "postgres "+sw.Addr()+"/") {
		t.Errorf("/readyz while the database hangs: %d %v; want 503 naming the database at %s", st, checks, sw.Addr())
	}
	stacktest.WaitFor(t, "outbox_relay to name the database", wait, func() bool {
		_, checks := readyz(t, api.url)
		return strings.Contains(checks["outbox_relay"], sw.Addr())
	})

	sw.Resume()
	stacktest.WaitFor(t, "POST /orders to be 201 again", wait, func() bool {
		st, _, _ := exchange(t, "POST", api.url+"/orders", orderBody)
		return st == http.StatusCreated
	})
	stacktest.WaitFor(t, "the relay to publish what was placed since", wait, func() bool {
		return s.count(t, "SELECT count(*) FROM outbox") == 0
	})
	stacktest.WaitFor(t, "/readyz 200 with the relay ok", wait, func() bool {
		st, checks := readyz(t, api.url)
		return st == 200 && checks["outbox_relay"] == "ok"
	})
}

// A broker that takes produce requests and never answers is down for the
// relay: the write gives up within KAFKA_TIMEOUT, /readyz names the step,
// the brokers and the bound in outbox_relay, a log line names the brokers;
// once the broker answers again the order is published, without a restart.
// Orders are taken meanwhile: the API never waits on Kafka.
func TestAHungBrokerIsDownForTheRelayAndHealsByItself(t *testing.T) {
	s := newStack(t)
	api := s.start(t, "KAFKA_TIMEOUT", "500ms", "RELAY_STALL_AFTER", "100ms")
	place(t, api.url)
	kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 1, wait)
	release := s.kafka.Hang(kmsg.Produce)
	t.Cleanup(release)
	place(t, api.url)

	broker := s.kafka.Brokers()[0]
	var relay string
	stacktest.WaitFor(t, "/readyz to name the hung broker", wait, func() bool {
		st, checks := readyz(t, api.url)
		relay = checks["outbox_relay"]
		return st == 200 && strings.Contains(relay, "no answer within 500ms")
	})
	if !strings.HasPrefix(relay, "write to Kafka: brokers "+broker) {
		t.Errorf("outbox_relay check %q: want the write step and the brokers %s", relay, broker)
	}
	if logs := api.log.String(); !strings.Contains(logs, `step="write to Kafka"`) || !strings.Contains(logs, "brokers "+broker) {
		t.Errorf("no log line names the brokers %s", broker)
	}

	release()
	stacktest.WaitFor(t, "the relay to publish the order placed meanwhile", wait, func() bool {
		return s.count(t, "SELECT count(*) FROM outbox") == 0
	})
	kafkatest.WaitForCount(t, broker, "order-events", 2, wait)
	stacktest.WaitFor(t, "outbox_relay ok again", wait, func() bool {
		st, checks := readyz(t, api.url)
		return st == 200 && checks["outbox_relay"] == "ok"
	})
}
