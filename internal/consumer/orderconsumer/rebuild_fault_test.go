package orderconsumer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
)

// A rebuild whose database fails once (its connection terminated, as a
// failover or a restart does) while it applies events, or while it moves
// the rebuilt projection in, retries, finishes, counts every event once,
// and leaves the same projection as a clean rebuild of the same topic.
func TestARebuildWhoseDatabaseFailsOnceFinishesLikeACleanOne(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// victim picks the backend to terminate from pg_stat_activity;
		// never the rebuild's lock holder, which is its own guard.
		victim string
		// holdLive blocks the move (its LOCK TABLE waits on the test's lock),
		// so the failure is sure to hit it.
		holdLive bool
	}{
		{"while applying", `state IN ('active', 'idle in transaction') AND query ILIKE '%processed_events%'
		    AND query NOT ILIKE 'LOCK TABLE%'`, false},
		{"while moving it in", `query ILIKE 'LOCK TABLE order_projection%' AND wait_event_type = 'Lock'`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t)
			var msgs []kafka.Message
			for range 150 {
				h := history(t)
				msgs = append(msgs, s.message(h[0]), s.message(h[1]), s.message(h[2]))
			}
			s.produce(msgs...)
			cfg := s.cfg("CONSUMER_BATCH_SIZE", "10")

			clean, err := orderconsumer.Rebuild(context.Background(), cfg, stacktest.Logger(t), false)
			if err != nil {
				t.Fatal(err)
			}
			if clean.Read != len(msgs) || clean.Applied != len(msgs) {
				t.Fatalf("clean rebuild: %+v, want %d read and applied", clean, len(msgs))
			}
			want := snapshot(t, s)

			var hold pgx.Tx
			if tc.holdLive {
				if hold, err = s.db.Pool.Begin(context.Background()); err != nil {
					t.Fatal(err)
				}
				defer hold.Rollback(context.Background()) //nolint:errcheck // released below, or at the end
				if _, err := hold.Exec(context.Background(), `LOCK TABLE order_projection IN ACCESS SHARE MODE`); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			killed := make(chan error, 1)
			go func() {
				for ctx.Err() == nil {
					var n int
					err := s.db.Pool.QueryRow(ctx, `
SELECT count(pg_terminate_backend(pid)) FROM (
  SELECT pid FROM pg_stat_activity
  WHERE datname = current_database() AND pid <> pg_backend_pid() AND (`+tc.victim+`)
    AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')
  LIMIT 1) victim`).Scan(&n)
					if err == nil && n > 0 {
						if hold != nil {
							err = hold.Rollback(context.Background())
						}
						killed <- err
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
			logs := stacktest.NewLog(t)
			res, err := orderconsumer.Rebuild(context.Background(), cfg, logs.Logger, false)
			cancel()
			if err != nil {
				t.Fatalf("rebuild with a database failure: %v", err)
			}
			select {
			case err := <-killed:
				if err != nil {
					t.Fatal(err)
				}
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
		})
	}
}
