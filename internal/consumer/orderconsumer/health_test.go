package orderconsumer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// degradedCheck returns body's degraded[name] ("" if absent).
func degradedCheck(body map[string]any, name string) string {
	m, _ := body["degraded"].(map[string]any)
	s, _ := m[name].(string)
	return s
}

// With the Schema Registry down, an event's partition makes no progress:
// order-consumer stays ready (its read API serves what it holds) and lists
// consumer, naming the registry, and, once the partition has lagged with
// its offset unmoved for CONSUMER_STALL_AFTER, consumer_progress, naming
// the partition and its lag, as degraded; consumer_stalled_partitions is 1.
// When the registry is back the event is applied and both clear, one line
// logged when the stall started and one when it ended.
func TestAStalledPartitionIsDegradedNotUnready(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	log, logs := jsonLog(t, "info")
	c := s.startWith(telemetry.Config{}, log, "CONSUMER_STALL_AFTER", "300ms")
	h := history(t)
	m := s.message(h[0]) // framed, its schema registered, before the registry goes
	part := kafkatest.JavaPartition(m.Key, 6)
	s.registry.Stop()
	s.produce(m)

	var consumer, progress string
	stacktest.WaitFor(t, "/readyz 200 listing the consumer and its progress as degraded", wait, func() bool {
		st, body := get(t, c.url+"/readyz")
		if st != 200 {
			t.Fatalf("/readyz %d %v while only the registry is down", st, body)
		}
		consumer, progress = degradedCheck(body, "consumer"), degradedCheck(body, "consumer_progress")
		return consumer != "" && progress != ""
	})
	if !strings.HasPrefix(consumer, "schema registry: ") {
		t.Errorf("consumer check %q: want the registry named", consumer)
	}
	for _, want := range []string{fmt.Sprintf("partition %d: lag 1, committed offset 0 unmoved since ", part), "CONSUMER_STALL_AFTER=300ms"} {
		if !strings.Contains(progress, want) {
			t.Errorf("consumer_progress %q does not say %q", progress, want)
		}
	}
	stalled := `consumer_stalled_partitions{group="order-projector",topic="order-events"}`
	if v := scrape(t, c.url)[stalled]; v != 1 {
		t.Errorf("%s = %v while stalled, want 1", stalled, v)
	}

	if err := s.registry.Start(); err != nil {
		t.Fatal(err)
	}
	s.waitVersion(h[0].Order.ID, 1)
	stacktest.WaitFor(t, "/readyz with nothing degraded", wait, func() bool {
		st, body := get(t, c.url+"/readyz")
		return st == 200 && body["degraded"] == nil
	})
	if v := scrape(t, c.url)[stalled]; v != 0 {
		t.Errorf("%s = %v once applied, want 0", stalled, v)
	}
	if n, m := countLines(logs, "degraded", "consumer_progress"), countLines(logs, "no longer degraded", "consumer_progress"); n != 1 || m != 1 {
		t.Errorf("logged the stall starting %d times and ending %d times, want once each", n, m)
	}
}

// /livez is 200 while the consumer waits for messages that do not come and
// the sweeper and the purger for their next round, however long; it is 503
// naming the consumer while a batch is stuck in the database (here waiting
// for tables the test holds locked), and 200 again once it goes on.
func TestLivezNamesAWedgedConsumerNotAnIdleOne(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	const timeout = time.Second
	c := s.start("LIVENESS_TIMEOUT", timeout.String())
	h := history(t)
	s.produce(s.message(h[0]))
	s.waitVersion(h[0].Order.ID, 1)

	// Idle for two timeouts: no message, nothing to sweep or purge.
	for until := time.Now().Add(2 * timeout); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
		st, body := get(t, c.url+"/livez")
		loops, _ := body["loops"].(map[string]any)
		if st != 200 || body["status"] != "live" || loops["consumer"] == nil || loops["parked events"] == nil || loops["ledger purger"] == nil {
			t.Fatalf("/livez of an idle order-consumer: %d %v", st, body)
		}
	}

	ctx := context.Background()
	tx, err := s.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op once rolled back
	if _, err := tx.Exec(ctx, "LOCK TABLE processed_events, order_versions IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	s.produce(s.message(h[1]))
	var wedged string
	stacktest.WaitFor(t, "/livez 503 naming the consumer", wait, func() bool {
		st, body := get(t, c.url+"/livez")
		m, _ := body["wedged"].(map[string]any)
		wedged, _ = m["consumer"].(string)
		return st == 503 && body["status"] == "wedged" && wedged != ""
	})
	if !strings.Contains(wedged, "no heartbeat for") {
		t.Errorf("wedged consumer: %q", wedged)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	s.waitVersion(h[0].Order.ID, 2)
	stacktest.WaitFor(t, "/livez 200 once the batch went on", wait, func() bool {
		st, _ := get(t, c.url+"/livez")
		return st == 200
	})
}
