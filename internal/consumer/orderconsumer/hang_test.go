package orderconsumer_test

import (
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

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
	stacktest.WaitFor(t, "/readyz 503 naming the hung registry", wait, func() bool {
		var st int
		st, reason = failedCheck(t, c.url, "consumer")
		return st == 503 && strings.Contains(reason, "no answer within 300ms")
	})
	if !strings.HasPrefix(reason, "schema registry: ") || !strings.Contains(reason, sw.Addr()) {
		t.Errorf("consumer check %q: want the registry and its address", reason)
	}
	if logs := log.String(); !strings.Contains(logs, `dependency="schema registry"`) || !strings.Contains(logs, sw.Addr()) {
		t.Errorf("no log line names the registry at %s", sw.Addr())
	}

	sw.Resume()
	s.waitVersion(h[0].Order.ID, 1)
	stacktest.WaitFor(t, "/readyz 200", wait, func() bool { st, _ := get(t, c.url+"/readyz"); return st == 200 })
	if msgs := kafkatest.MustReadAll(t, s.kafka.Brokers()[0], dlqTopic); len(msgs) != 0 {
		t.Fatalf("%d messages dead-lettered while the registry hung", len(msgs))
	}
}
