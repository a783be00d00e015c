package orderconsumer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
)

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
