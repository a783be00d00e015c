package orderconsumer_test

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
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
		// block is what the test holds, in a transaction, so that the
		// rebuild waits at the step under test ($1: an order's lock key);
		// victim picks the waiting backend from pg_stat_activity. Blocking
		// makes the failure sure to hit that step, however fast the machine.
		block, victim string
	}{
		{"while applying", `SELECT pg_advisory_xact_lock(` + projectionLockNamespace + `, $1)`,
			`wait_event_type = 'Lock' AND query ILIKE '%pg_advisory_xact_lock%'`},
		{"while moving it in", `LOCK TABLE order_projection IN ACCESS SHARE MODE`,
			`wait_event_type = 'Lock' AND query ILIKE 'LOCK TABLE %order_projection%'`},
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

			hold, err := s.db.Pool.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer hold.Rollback(context.Background()) //nolint:errcheck // released below, or at the end
			var args []any
			if strings.Contains(tc.block, "$1") {
				args = append(args, projectionLockKey(firstOrder(t, msgs)))
			}
			if _, err := hold.Exec(context.Background(), tc.block, args...); err != nil {
				t.Fatal(err)
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
  LIMIT 1) victim`).Scan(&n)
					if err == nil && n > 0 {
						killed <- hold.Rollback(context.Background())
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

// projectionLockNamespace and projectionLockKey are the projection store's
// per-order advisory lock (projectionstore.lockNamespace and lockKey),
// which a test holds to make the rebuild wait in the middle of applying.
const projectionLockNamespace = "x'70726f6a'::int"

func projectionLockKey(id uuid.UUID) int32 {
	x := binary.BigEndian.Uint64(id[:8]) ^ binary.BigEndian.Uint64(id[8:])
	return int32(uint32(x) ^ uint32(x>>32))
}

// firstOrder is the order of the first message.
func firstOrder(t *testing.T, msgs []kafka.Message) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(string(msgs[0].Key))
	if err != nil {
		t.Fatal(err)
	}
	return id
}
