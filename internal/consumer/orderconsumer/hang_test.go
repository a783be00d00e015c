package orderconsumer_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// degradedReadyz returns /readyz's status and the reason it gives for an
// optional check that fails.
func degradedReadyz(t *testing.T, url, check string) (int, string) {
	t.Helper()
	st, body := get(t, url+"/readyz")
	return st, degradedCheck(body, check)
}

// failedCheck returns /readyz's status and the reason it gives for check.
func failedCheck(t *testing.T, url, check string) (int, string) {
	t.Helper()
	st, body := get(t, url+"/readyz")
	failed, _ := body["failed"].(map[string]any)
	reason, _ := failed[check].(string)
	return st, reason
}

// A registry that accepts connections and never answers is a registry that
// is down: the consumer's decode gives up within SCHEMA_REGISTRY_TIMEOUT,
// /readyz names the registry, its address and the bound, a log line names
// it, nothing is dead-lettered; once a registry answers there again the
// event is applied and the consumer is ready, without a restart.
func TestAHungRegistryPausesTheConsumerUntilItAnswers(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	sw := stacktest.Switch(t, strings.TrimPrefix(s.registry.URL(), "http://"))
	sw.Hang()
	log := stacktest.NewLog(t)
	c := s.startWith(telemetry.Config{}, log.Logger, "SCHEMA_REGISTRY_URL", "http://"+sw.Addr(), "SCHEMA_REGISTRY_TIMEOUT", "300ms")
	h := history(t)
	s.produce(s.message(h[0]))

	var reason string
	stacktest.WaitFor(t, "/readyz naming the hung registry, degraded", wait, func() bool {
		var st int
		st, reason = degradedReadyz(t, c.url, "consumer")
		return st == 200 && strings.Contains(reason, "no answer within 300ms")
	})
	if !strings.HasPrefix(reason, "schema registry: ") || !strings.Contains(reason, sw.Addr()) {
		t.Errorf("consumer check %q: want the registry and its address", reason)
	}
	if logs := log.String(); !strings.Contains(logs, `dependency="schema registry"`) || !strings.Contains(logs, sw.Addr()) {
		t.Errorf("no log line names the registry at %s", sw.Addr())
	}

	sw.Resume()
	s.waitVersion(h[0].Order.ID, 1)
	stacktest.WaitFor(t, "/readyz 200, nothing degraded", wait, func() bool {
		st, body := get(t, c.url+"/readyz")
		return st == 200 && body["degraded"] == nil
	})
	if msgs := kafkatest.MustReadAll(t, s.kafka.Brokers()[0], dlqTopic); len(msgs) != 0 {
		t.Fatalf("%d messages dead-lettered while the registry hung", len(msgs))
	}
}

// PostgreSQL that accepts connections and never answers is down: a read is
// answered 503 with Retry-After, its log line names the server and the
// bound (DATABASE_TIMEOUT), /readyz names the database and its address, and
// the consumer, whose batch gives up within its bound, says so too; once
// the server answers again the event is applied and read, without a
// restart. Connections open when it hung stay silent for good, as after a
// partition: only the deadlines free what waits on them.
func TestAHungDatabaseIs503AndHealsByItself(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	url, sw := s.db.Hangable(t)
	log := stacktest.NewLog(t)
	c := s.startWith(telemetry.Config{}, log.Logger, "DATABASE_URL", url, "DATABASE_TIMEOUT", "300ms")
	// Before the service stops: the connections the switch silenced end,
	// so the pool's close does not wait out pgx's 15s goodbye on each.
	t.Cleanup(sw.Close)
	h := history(t)
	s.produce(s.message(h[0]))
	s.waitVersion(h[0].Order.ID, 1)
	sw.Hang()
	s.produce(s.message(h[1]))

	hc := *client(t, c.url)
	hc.Timeout = time.Minute
	resp, err := hc.Get(c.url + "/orders/" + h[0].Order.ID.String())
	if err != nil {
		t.Fatalf("a read while the database hangs: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a read while the database hangs: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	server := "postgres " + sw.Addr() + "/"
	if logs := log.String(); !strings.Contains(logs, `msg="projection unavailable"`) || !strings.Contains(logs, server) ||
		!strings.Contains(logs, "no answer within 300ms") {
		t.Errorf("no log line names the database at %s and the bound", sw.Addr())
	}
	if st, reason := failedCheck(t, c.url, "database"); st != http.StatusServiceUnavailable || !strings.Contains(reason, server) {
		t.Errorf("/readyz while the database hangs: %d, database %q; want 503 naming %s", st, reason, server)
	}
	stacktest.WaitFor(t, "the consumer check to name the database", wait, func() bool {
		_, reason := degradedReadyz(t, c.url, "consumer")
		return strings.HasPrefix(reason, "database: ") && strings.Contains(reason, server)
	})

	sw.Resume()
	s.waitVersion(h[1].Order.ID, 2)
	stacktest.WaitFor(t, "/readyz 200, nothing degraded", wait, func() bool {
		st, body := get(t, c.url+"/readyz")
		return st == 200 && body["degraded"] == nil
	})
	if st, body := get(t, c.url+"/orders/"+h[0].Order.ID.String()); st != 200 || body["version"] != 2.0 {
		t.Errorf("a read once the database answers: %d %v", st, body)
	}
}

// A broker that takes fetch requests and never answers is down for the
// consumer, though kafka-go's reader retries them on its own and never says
// so to FetchMessage: /readyz names the fetch, the broker and the bound
// (KAFKA_TIMEOUT), a log line names the broker, nothing is dead-lettered;
// once the broker answers again the event is applied and the consumer is
// ready, without a restart.
func TestAHungBrokerIsDownForTheConsumerAndHealsByItself(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	log := stacktest.NewLog(t)
	c := s.startWith(telemetry.Config{}, log.Logger, "KAFKA_TIMEOUT", "500ms", "CONSUMER_TOPIC_CHECK_INTERVAL", "200ms")
	h := history(t)
	s.produce(s.message(h[0]))
	s.waitVersion(h[0].Order.ID, 1)
	release := s.kafka.Hang(kmsg.Fetch)
	t.Cleanup(release)
	s.produce(s.message(h[1]))

	broker := s.kafka.Brokers()[0]
	var reason string
	stacktest.WaitFor(t, "/readyz naming the fetch, degraded", wait, func() bool {
		var st int
		st, reason = degradedReadyz(t, c.url, "consumer")
		return st == 200 && strings.HasPrefix(reason, "kafka fetch: ")
	})
	if !strings.Contains(reason, "brokers "+broker) || !strings.Contains(reason, "no answer within 500ms") {
		t.Errorf("consumer check %q: want the broker %s and the bound", reason, broker)
	}
	if logs := log.String(); !strings.Contains(logs, `msg="not consuming"`) || !strings.Contains(logs, "brokers "+broker) {
		t.Errorf("no log line names the broker %s", broker)
	}

	release()
	s.waitVersion(h[1].Order.ID, 2)
	stacktest.WaitFor(t, "/readyz 200, nothing degraded", wait, func() bool {
		st, body := get(t, c.url+"/readyz")
		return st == 200 && body["degraded"] == nil
	})
	if msgs := kafkatest.MustReadAll(t, broker, dlqTopic); len(msgs) != 0 {
		t.Fatalf("%d messages dead-lettered while the broker hung", len(msgs))
	}
}
