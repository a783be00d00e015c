package orderconsumer_test

import (
	"context"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
)

// processed_events must not grow for ever: rows older than LEDGER_RETENTION
// go; the projection stays.
func TestLedgerRowsPastRetentionArePurged(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.start()
	old, young := history(t), history(t)
	s.produce(s.message(old[0]), s.message(old[1]), s.message(young[0]))
	s.waitVersion(old[0].Order.ID, 2)
	s.waitVersion(young[0].Order.ID, 1)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.db.Pool.Exec(ctx, `UPDATE processed_events SET applied_at = now() - interval '2 hours' WHERE order_id = $1`, old[0].Order.ID); err != nil {
		t.Fatal(err)
	}
	s.start("LEDGER_RETENTION", "1h", "CONSUMER_PARKED_MAX_AGE", "30m") // purges at start, then every minute
	stacktest.WaitFor(t, "the old order's ledger rows purged", wait, func() bool {
		l := s.ledger()
		return l[old[0].ID.String()] == "" && l[old[1].ID.String()] == ""
	})
	if l := s.ledger(); l[young[0].ID.String()] != "applied/1" {
		t.Errorf("a young ledger row was purged: %v", l)
	}
	if p, ok := s.projection(old[0].Order.ID); !ok || p.version != 2 {
		t.Errorf("the old order's projection: %+v %v", p, ok)
	}
}
