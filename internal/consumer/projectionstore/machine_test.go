package projectionstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/consumer/customertotals"
	"github.com/ordersonkafka/orders/internal/consumer/orderview"
	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/devkit/ordertest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/migrations"
)

// newStoreFor is newStore judging with machine m. The projection's status
// CHECK lists the statuses of order.Standard (migrations/vocabulary_test.go
// keeps it so); for any other machine it is dropped, as a deployment
// running that machine would have a migration do: the store itself checks
// nothing of statuses, and no statement of it changes.
func newStoreFor(t *testing.T, m *order.Machine) (store, *pgtest.DB) {
	t.Helper()
	db := pgtest.MustDB(t, migrations.Projection())
	if m != order.Standard {
		if _, err := db.Pool.Exec(context.Background(), `ALTER TABLE order_projection DROP CONSTRAINT order_projection_status_check`); err != nil {
			t.Fatal(err)
		}
	}
	view := orderview.New(db.Pool)
	return store{projectionstore.New(db.Pool, m, nil, view, customertotals.New(db.Pool)), view}, db
}

// The longest history of the longer test machine — placed, paid, shipped,
// delivered: four events, one more than any history of the service's own
// machine — applies in one batch, with no change to any statement, and so
// does the same history after a stored prefix of it.
func TestAHistoryOfAnyLengthAppliesInOneBatch(t *testing.T) {
	t.Parallel()
	m := ordertest.Longer
	s, db := newStoreFor(t, m)
	whole := ordertest.Full(m, ordertest.StatusDelivered, "c-1", "EUR", t0)
	applied := []order.Outcome{order.OutcomeApplied, order.OutcomeApplied, order.OutcomeApplied, order.OutcomeApplied}
	if got := mustApply(t, s, whole...); !reflect.DeepEqual(got, applied) {
		t.Fatalf("outcomes %v, want all applied", got)
	}
	wantState(t, s, whole[3])

	after := ordertest.Full(m, ordertest.StatusDelivered, "c-1", "EUR", t0)
	mustApply(t, s, after[0])
	if got := mustApply(t, s, after...); !reflect.DeepEqual(got, []order.Outcome{order.OutcomeDuplicate, order.OutcomeApplied, order.OutcomeApplied, order.OutcomeApplied}) {
		t.Fatalf("after a stored PLACED: %v", got)
	}
	wantState(t, s, after[3])
	if l := ledger(t, db); len(l) != 8 || l[after[0].ID] != "applied/2" {
		t.Errorf("ledger %v", l)
	}
}

// Applying a batch judges every event as applying them one at a time, in
// slice order, would: same outcomes (but that an event parked one at a time
// may be applied, or found never to apply, later in the same batch), same
// ledger, same projection, same events parked and never applying, with
// either machine. The histories are walked at random from the machine,
// interleaved as a partition holds them with some events redelivered, and
// cut into random batches; some events are moved ahead of their
// predecessors, and some old versions come again under a new event ID.
func TestApplyBatchEqualsOneAtATime(t *testing.T) {
	t.Parallel()
	for _, m := range []*order.Machine{order.Standard, ordertest.Longer} {
		t.Run(fmt.Sprintf("a machine of %d statuses", len(m.Statuses())), func(t *testing.T) {
			t.Parallel()
			batched, dbA := newStoreFor(t, m)
			single, dbB := newStoreFor(t, m)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(8, 2026))
			var deadBatched, deadSingle []string // events that can never apply
			parkedSeen := 0
			for round := range 8 {
				var histories [][]order.Event
				for range 6 {
					histories = append(histories, ordertest.Walk(m, rng, t0, 0.1, 3, "EUR", "USD"))
				}
				events := ordertest.Deliver(rng, 0.1, histories...)
				for range 2 {
					i := rng.IntN(len(events))
					j := rng.IntN(i + 1)
					ev := events[i]
					events = append(events[:i], events[i+1:]...)
					events = append(events[:j], append([]order.Event{ev}, events[j:]...)...)
					again := events[rng.IntN(len(events))]
					again.ID = uuid.New()
					events = append(events, again)
				}
				for rest := events; len(rest) > 0; {
					n := 1 + rng.IntN(len(rest))
					got, err := batched.Apply(ctx, rest[:n])
					if err != nil {
						t.Fatal(err)
					}
					for i, ev := range rest[:n] {
						one, err := single.Apply(ctx, []order.Event{ev})
						if err != nil {
							t.Fatal(err)
						}
						// An event parked one at a time may be applied, or
						// found never to apply, later in the same batch.
						if got[i] != one[0] && (one[0] != order.OutcomeParked || got[i] == order.OutcomeDuplicate || got[i] == order.OutcomeStale) {
							t.Fatalf("round %d, event %d (%s v%d): batch says %s, one at a time %s", round, i, ev.Type, ev.Order.Version, got[i], one[0])
						}
						if dead(got[i]) {
							deadBatched = append(deadBatched, ev.ID.String())
						}
						if one[0] == order.OutcomeParked {
							parkedSeen++
						}
						if dead(one[0]) {
							deadSingle = append(deadSingle, ev.ID.String())
						}
					}
					rest = rest[n:]
				}
				for _, h := range histories {
					id := h[0].Order.ID
					a, errA := batched.Get(ctx, id)
					b, errB := single.Get(ctx, id)
					if (errA == nil) != (errB == nil) || !reflect.DeepEqual(a.Order, b.Order) || a.LastEventID != b.LastEventID {
						t.Fatalf("round %d: order %s differs:\n batch %+v %v\nsingle %+v %v", round, id, a.Order, errA, b.Order, errB)
					}
				}
			}
			if a, b := ledger(t, dbA), ledger(t, dbB); !reflect.DeepEqual(a, b) {
				t.Fatalf("ledgers differ:\n batch %v\nsingle %v", a, b)
			}
			waitingA, leavingA := parkedIDs(t, batched.Store)
			waitingB, leavingB := parkedIDs(t, single.Store)
			deadBatched, deadSingle = append(deadBatched, leavingA...), append(deadSingle, leavingB...)
			slices.Sort(deadBatched)
			slices.Sort(deadSingle)
			if !slices.Equal(waitingA, waitingB) || !slices.Equal(deadBatched, deadSingle) {
				t.Fatalf("parked differ:\n batch waiting %v, never applying %v\nsingle waiting %v, never applying %v", waitingA, deadBatched, waitingB, deadSingle)
			}
			if parkedSeen == 0 {
				t.Fatal("no event was parked: the test no longer tests that")
			}
		})
	}
}

func dead(o order.Outcome) bool {
	return o == order.OutcomeOutOfSequence || o == order.OutcomeTermsChanged
}

// parkedIDs returns the IDs of the events s has parked, sorted: those
// waiting, and those marked to leave.
func parkedIDs(t *testing.T, s *projectionstore.Store) (waiting, leaving []string) {
	t.Helper()
	all, err := s.Parked(context.Background(), uuid.Nil, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if p.Leaving == "" {
			waiting = append(waiting, p.EventID.String())
		} else {
			leaving = append(leaving, p.EventID.String())
		}
	}
	slices.Sort(waiting)
	slices.Sort(leaving)
	return waiting, leaving
}

// batchCounter counts what a pool sends: batches (one round trip each once
// its statements are prepared) and single statements.
type batchCounter struct{ batches, queries atomic.Int64 }

func (c *batchCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.batches.Add(1)
	return ctx
}
func (*batchCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (*batchCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
func (c *batchCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.queries.Add(1)
	return ctx
}
func (*batchCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A batch is two round trips whatever it holds: the locks and the reads,
// then every write and the commit, each sent as one pipelined batch.
func TestABatchIsTwoRoundTrips(t *testing.T) {
	t.Parallel()
	db := pgtest.MustDB(t, migrations.Projection())
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	counter := &batchCounter{}
	cfg.ConnConfig.Tracer = counter
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := projectionstore.New(pool, order.Standard, nil, orderview.New(pool), customertotals.New(pool))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var first, second []order.Event
	for range 100 {
		h := ordertest.Walk(order.Standard, rng, t0, 0, 10, "EUR")
		first, second = append(first, h[0]), append(second, h[1:]...)
		second = append(second, h[0]) // a duplicate, so that every kind of write is in the batch
	}
	if _, err := s.Apply(ctx, first); err != nil { // prepares the statements on the one connection
		t.Fatal(err)
	}
	counter.batches.Store(0)
	counter.queries.Store(0)
	outcomes, err := s.Apply(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if outcomes[0] != order.OutcomeApplied || outcomes[len(outcomes)-1] != order.OutcomeDuplicate {
		t.Fatalf("outcomes %v", outcomes)
	}
	if b, q := counter.batches.Load(), counter.queries.Load(); b != 2 || q != 0 {
		t.Errorf("a batch of %d events sent %d batches and %d statements alone, want 2 batches and nothing else", len(second), b, q)
	}
}
