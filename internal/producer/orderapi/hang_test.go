package orderapi_test

import (
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
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
	api := s.start(t, "SCHEMA_REGISTRY_URL", "http://"+sw.Addr(), "SCHEMA_REGISTRY_TIMEOUT", "300ms")
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
