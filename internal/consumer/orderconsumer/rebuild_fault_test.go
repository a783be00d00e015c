package orderconsumer_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
)

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A rebuild whose database fails once while it applies (its connection is
// terminated mid-batch, as a failover or a restart does) retries, finishes,
// counts every event once, and leaves the same projection as a clean
// rebuild of the same topic.
func TestARebuildWhoseDatabaseFailsOnceFinishesLikeACleanOne(t *testing.T) {
	s := newStack(t)
	var msgs []kafka.Message
	for range 150 {
		h := history(t)
		msgs = append(msgs, s.message(h[0]), s.message(h[1]), s.message(h[2]))
	}
	s.produce(msgs...)
	cfg := s.cfg("CONSUMER_BATCH_SIZE", "10")

	clean, err := orderconsumer.Rebuild(context.Background(), cfg, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if clean.Read != len(msgs) || clean.Applied != len(msgs) {
		t.Fatalf("clean rebuild: %+v, want %d read and applied", clean, len(msgs))
	}
	want := snapshot(t, s)

	// Terminate, once, a connection of the rebuild's that is running a
	// statement or holds a transaction open; never the one holding the
	// rebuild's advisory lock, which is the rebuild's own guard.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	killed := make(chan int, 1)
	go func() {
		for ctx.Err() == nil {
			var n int
			err := s.db.Pool.QueryRow(ctx, `
SELECT count(pg_terminate_backend(pid)) FROM (
  SELECT pid FROM pg_stat_activity
  WHERE datname = current_database() AND pid <> pg_backend_pid()
    AND state IN ('active', 'idle in transaction')
    AND query ILIKE '%processed_events%'
    AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')
  LIMIT 1) victim`).Scan(&n)
			if err == nil && n > 0 {
				killed <- n
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	res, err := orderconsumer.Rebuild(context.Background(), cfg, log, false)
	cancel()
	if err != nil {
		t.Fatalf("rebuild with a database failure: %v\n%s", err, logs.String())
	}
	select {
	case <-killed:
	default:
		t.Fatal("no connection of the rebuild was terminated: the test proved nothing")
	}
	if !strings.Contains(logs.String(), "transient failure; retrying") || !strings.Contains(logs.String(), "dependency=database") {
		t.Errorf("the rebuild did not retry the database:\n%s", logs.String())
	}
	if res.Read != clean.Read || res.Applied != clean.Applied || res.Duplicate != 0 || res.Stale != 0 || res.Skipped != 0 {
		t.Errorf("rebuild after a failure counted %+v, a clean one %+v", res, clean)
	}
	if got := snapshot(t, s); got != want {
		t.Errorf("the projection differs from a clean rebuild's:\n%s\nwant\n%s", got, want)
	}
}
