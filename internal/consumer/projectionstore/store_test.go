package projectionstore_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ordersonkafka/orders/internal/consumer/orderview"
	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/migrations"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// history returns the events of one order's life: placed, paid with a
// reference, refunded with a reason (versions 1, 2, 3).
func history(tb testing.TB) []order.Event {
	tb.Helper()
	o, placed, err := order.Place(order.NewOrder{
		CustomerID: "c-1", Currency: "EUR",
		Items: []order.Item{{SKU: "sku-1", Quantity: 2, UnitPriceMinor: 1250}, {SKU: "sku-2", Quantity: 1, UnitPriceMinor: 99}},
	}, t0, order.Meta{})
	if err != nil {
		tb.Fatal(err)
	}
	paid, err := order.Standard.Apply(&o, order.Change{Action: order.ActionPay, PaymentReference: "pay-42"}, t0.Add(time.Minute), order.Meta{})
	if err != nil {
		tb.Fatal(err)
	}
	refunded, err := order.Standard.Apply(&o, order.Change{Action: order.ActionRefund, Reason: "damaged"}, t0.Add(2*time.Minute), order.Meta{})
	if err != nil {
		tb.Fatal(err)
	}
	return []order.Event{placed, paid, refunded}
}

// store is the store with the order projection, which it writes, to read
// from.
type store struct {
	*projectionstore.Store
	*orderview.View
}

func (s store) Get(ctx context.Context, id uuid.UUID) (order.Projection, error) {
	return s.View.Get(ctx, id)
}

func newStore(t *testing.T) (store, *pgtest.DB) {
	t.Helper()
	db := pgtest.MustDB(t, migrations.Projection())
	view := orderview.New(db.Pool)
	return store{projectionstore.New(db.Pool, order.Standard, nil, view), view}, db
}

func mustApply(t *testing.T, s store, events ...order.Event) []order.Outcome {
	t.Helper()
	got, err := s.Apply(context.Background(), events)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return got
}

// wantState checks that the projection of ev's order is exactly ev's state.
func wantState(t *testing.T, s store, ev order.Event) {
	t.Helper()
	p, err := s.Get(context.Background(), ev.Order.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(p.Order, ev.Order) {
		t.Errorf("projection:\n got %+v\nwant %+v", p.Order, ev.Order)
	}
	if p.LastEventID != ev.ID || !p.LastEventAt.Equal(ev.OccurredAt) {
		t.Errorf("last event = %s at %s, want %s at %s", p.LastEventID, p.LastEventAt, ev.ID, ev.OccurredAt)
	}
}

// ledger returns every processed_events row of the database as
// event_id → "outcome/deliveries", failing if an event_id is recorded twice.
func ledger(t *testing.T, db *pgtest.DB) map[uuid.UUID]string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT event_id, outcome, deliveries FROM processed_events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[uuid.UUID]string{}
	for rows.Next() {
		var (
			id      uuid.UUID
			outcome string
			n       int
		)
		if err := rows.Scan(&id, &outcome, &n); err != nil {
			t.Fatal(err)
		}
		if _, dup := m[id]; dup {
			t.Errorf("event %s recorded twice", id)
		}
		m[id] = fmt.Sprintf("%s/%d", outcome, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// cancelled is the CANCELLED event of placed's order, at version 2.
func cancelled(t *testing.T, placed order.Event) order.Event {
	t.Helper()
	o := placed.Order
	ev, err := order.Standard.Apply(&o, order.Change{Action: order.ActionCancel, Reason: "no"}, t0.Add(time.Minute), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// reissued is ev under a new event_id: the same transition written twice,
// as a buggy producer would.
func reissued(ev order.Event) order.Event {
	ev.ID = uuid.Must(uuid.NewV7())
	return ev
}

func TestApplyAcrossBatches(t *testing.T) {
	t.Parallel()
	ev := history(t)
	v1, v2, v3 := ev[0], ev[1], ev[2]
	v1again, v2again := reissued(v1), reissued(v2)
	const (
		A = order.OutcomeApplied
		D = order.OutcomeDuplicate
		S = order.OutcomeStale
		P = order.OutcomeParked
	)
	tests := []struct {
		name       string
		batches    [][]order.Event // each applied in its own Apply call
		want       [][]order.Outcome
		final      order.Event
		wantLedger map[uuid.UUID]string
	}{
		{
			name:       "the same event delivered twice is a duplicate and counted",
			batches:    [][]order.Event{{v1}, {v1}},
			want:       [][]order.Outcome{{A}, {D}},
			final:      v1,
			wantLedger: map[uuid.UUID]string{v1.ID: "applied/2"},
		},
		{
			name:       "an older version after a newer one is stale",
			batches:    [][]order.Event{{v1}, {v2}, {v1}, {v2}},
			want:       [][]order.Outcome{{A}, {A}, {D}, {D}},
			final:      v2,
			wantLedger: map[uuid.UUID]string{v1.ID: "applied/2", v2.ID: "applied/2"},
		},
		{
			name:       "a gap: v3 before v2 is parked, changes nothing, and applies with v2",
			batches:    [][]order.Event{{v1}, {v3}, {v2}},
			want:       [][]order.Outcome{{A}, {P}, {A}},
			final:      v3,
			wantLedger: map[uuid.UUID]string{v1.ID: "applied/1", v2.ID: "applied/1", v3.ID: "applied/1"},
		},
		{
			name:       "a parked event delivered again, before and after it applied, is a duplicate",
			batches:    [][]order.Event{{v1}, {v3}, {v3}, {v2}, {v3}},
			want:       [][]order.Outcome{{A}, {P}, {D}, {A}, {D}},
			final:      v3,
			wantLedger: map[uuid.UUID]string{v1.ID: "applied/1", v2.ID: "applied/1", v3.ID: "applied/2"},
		},
		{
			name:       "a PAID for an order not placed yet is parked until it is",
			batches:    [][]order.Event{{v2}, {v1}},
			want:       [][]order.Outcome{{P}, {A}},
			final:      v2,
			wantLedger: map[uuid.UUID]string{v1.ID: "applied/1", v2.ID: "applied/1"},
		},
		{
			name:       "a placing event under a new id after the order moved on is stale",
			batches:    [][]order.Event{{v1, v2}, {v1again}},
			want:       [][]order.Outcome{{A, A}, {S}},
			final:      v2,
			wantLedger: map[uuid.UUID]string{v1.ID: "applied/1", v2.ID: "applied/1", v1again.ID: "stale/1"},
		},
		{
			name:       "another event at a version already held is stale, and redelivered a duplicate",
			batches:    [][]order.Event{{v1, v2, v3}, {v2again}, {v2again}},
			want:       [][]order.Outcome{{A, A, A}, {S}, {D}},
			final:      v3,
			wantLedger: map[uuid.UUID]string{v1.ID: "applied/1", v2.ID: "applied/1", v3.ID: "applied/1", v2again.ID: "stale/2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, db := newStore(t)
			for i, batch := range tc.batches {
				if got := mustApply(t, s, batch...); !reflect.DeepEqual(got, tc.want[i]) {
					t.Errorf("batch %d: outcomes %v, want %v", i, got, tc.want[i])
				}
			}
			wantState(t, s, tc.final)
			if got := ledger(t, db); !reflect.DeepEqual(got, tc.wantLedger) {
				t.Errorf("ledger %v, want %v", got, tc.wantLedger)
			}
		})
	}
}

func TestApplyWithinOneBatchFollowsSliceOrder(t *testing.T) {
	t.Parallel()
	a, b := history(t), history(t)
	cancelA, a2again := cancelled(t, a[0]), reissued(a[1])
	const (
		A = order.OutcomeApplied
		D = order.OutcomeDuplicate
		S = order.OutcomeStale
		O = order.OutcomeOutOfSequence
	)
	tests := []struct {
		name       string
		batch      []order.Event
		want       []order.Outcome
		final      []order.Event // the state each order must end in
		wantLedger map[uuid.UUID]string
	}{
		{
			name:       "v3 then v2: v3 is parked, and applies right after v2",
			batch:      []order.Event{a[0], a[2], a[1]},
			want:       []order.Outcome{A, A, A},
			final:      []order.Event{a[2]},
			wantLedger: map[uuid.UUID]string{a[0].ID: "applied/1", a[1].ID: "applied/1", a[2].ID: "applied/1"},
		},
		{
			name:       "v2, v1, v2 under a new id: the first v2 applies after v1, the second is stale",
			batch:      []order.Event{a[1], a[0], a2again},
			want:       []order.Outcome{A, A, S},
			final:      []order.Event{a[1]},
			wantLedger: map[uuid.UUID]string{a[0].ID: "applied/1", a[1].ID: "applied/1", a2again.ID: "stale/1"},
		},
		{
			name:       "cancelled then refunded: a refund cannot follow a cancellation",
			batch:      []order.Event{a[0], cancelA, a[2]},
			want:       []order.Outcome{A, A, O},
			final:      []order.Event{cancelA},
			wantLedger: map[uuid.UUID]string{a[0].ID: "applied/1", cancelA.ID: "applied/1"},
		},
		{
			name:       "a refund parked before the cancellation it cannot follow is out of sequence",
			batch:      []order.Event{a[0], a[2], cancelA},
			want:       []order.Outcome{A, O, A},
			final:      []order.Event{cancelA},
			wantLedger: map[uuid.UUID]string{a[0].ID: "applied/1", cancelA.ID: "applied/1"},
		},
		{
			name:       "paid and cancelled at version 2: the second is stale",
			batch:      []order.Event{a[0], a[1], cancelA, a[2]},
			want:       []order.Outcome{A, A, S, A},
			final:      []order.Event{a[2]},
			wantLedger: map[uuid.UUID]string{a[0].ID: "applied/1", a[1].ID: "applied/1", cancelA.ID: "stale/1", a[2].ID: "applied/1"},
		},
		{
			name:       "v1, v2, v3 in order: all applied, the last wins",
			batch:      []order.Event{a[0], a[1], a[2]},
			want:       []order.Outcome{A, A, A},
			final:      []order.Event{a[2]},
			wantLedger: map[uuid.UUID]string{a[0].ID: "applied/1", a[1].ID: "applied/1", a[2].ID: "applied/1"},
		},
		{
			name:       "the same event twice: the second is a duplicate",
			batch:      []order.Event{a[0], a[0]},
			want:       []order.Outcome{A, D},
			final:      []order.Event{a[0]},
			wantLedger: map[uuid.UUID]string{a[0].ID: "applied/2"},
		},
		{
			name:       "duplicates in a batch are counted once applied",
			batch:      []order.Event{a[0], a[1], a[1], a[0], a[2], a[2]},
			want:       []order.Outcome{A, A, D, D, A, D},
			final:      []order.Event{a[2]},
			wantLedger: map[uuid.UUID]string{a[0].ID: "applied/2", a[1].ID: "applied/2", a[2].ID: "applied/2"},
		},
		{
			// b[2] comes before the b[1] it follows, then again after it: the
			// first delivery is parked and applies after b[1], the second is
			// a duplicate, as one at a time they would be.
			name:  "two orders interleaved are judged independently",
			batch: []order.Event{a[0], b[0], b[2], a[1], b[1], a[0], b[2]},
			want:  []order.Outcome{A, A, A, A, A, D, D},
			final: []order.Event{a[1], b[2]},
			wantLedger: map[uuid.UUID]string{
				a[0].ID: "applied/2", a[1].ID: "applied/1",
				b[0].ID: "applied/1", b[1].ID: "applied/1", b[2].ID: "applied/2",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, db := newStore(t)
			if got := mustApply(t, s, tc.batch...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("outcomes %v, want %v", got, tc.want)
			}
			for _, ev := range tc.final {
				wantState(t, s, ev)
			}
			if got := ledger(t, db); !reflect.DeepEqual(got, tc.wantLedger) {
				t.Errorf("ledger %v, want %v", got, tc.wantLedger)
			}
		})
	}
}

func TestApplyBatchMixingKnownAndNewEvents(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	a, b := history(t), history(t)
	mustApply(t, s, a[0], a[1], b[0])

	// A redelivered tail followed by new events, as after a consumer restarted
	// between applying and committing.
	got := mustApply(t, s, a[0], a[1], b[0], b[1], a[2], b[0], b[2])
	want := []order.Outcome{order.OutcomeDuplicate, order.OutcomeDuplicate, order.OutcomeDuplicate,
		order.OutcomeApplied, order.OutcomeApplied, order.OutcomeDuplicate, order.OutcomeApplied}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	wantState(t, s, a[2])
	wantState(t, s, b[2])
	wantLedger := map[uuid.UUID]string{
		a[0].ID: "applied/2", a[1].ID: "applied/2", a[2].ID: "applied/1",
		b[0].ID: "applied/3", b[1].ID: "applied/1", b[2].ID: "applied/1",
	}
	if got := ledger(t, db); !reflect.DeepEqual(got, wantLedger) {
		t.Errorf("ledger %v, want %v", got, wantLedger)
	}
	pe, err := s.Processed(context.Background(), b[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if pe.OrderID != b[0].Order.ID || pe.Version != 1 || pe.Type != order.EventPlaced ||
		pe.Outcome != order.OutcomeApplied || pe.Deliveries != 3 {
		t.Errorf("Processed = %+v", pe)
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()

	t.Run("an order never applied is not found", func(t *testing.T) {
		_, err := s.Get(ctx, uuid.New())
		if !errors.Is(err, order.ErrNotFound) {
			t.Fatalf("err = %v, want order.ErrNotFound", err)
		}
		if _, err := s.Processed(ctx, uuid.New()); !errors.Is(err, projectionstore.ErrNotProcessed) {
			t.Fatalf("Processed err = %v, want ErrNotProcessed", err)
		}
	})
	t.Run("an applied order carries its event's state and times", func(t *testing.T) {
		h := history(t)
		ev := h[1]
		before := time.Now()
		mustApply(t, s, h[0], ev)
		wantState(t, s, ev)
		p, err := s.Get(ctx, ev.Order.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.ProjectedAt.Before(before.Add(-time.Second)) || p.ProjectedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("projected_at %s is not the time of applying (%s)", p.ProjectedAt, before)
		}
	})
}

// A rebuild fills tables beside the live ones; the live projection serves
// unchanged until Commit moves the new tables in, with the names, indexes
// and constraints the migrations gave them, and records the origin.
func TestRebuildSwapsInWholeTables(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	old, fresh := history(t), history(t)
	mustApply(t, s, old...)

	rb, err := s.BeginRebuild(ctx, db.URL, migrations.Projection())
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close(ctx)
	if _, err := s.BeginRebuild(ctx, db.URL, migrations.Projection()); err == nil {
		t.Fatal("a second rebuild began while one runs")
	}
	if got, err := rb.Store.Apply(ctx, fresh); err != nil || got[2] != order.OutcomeApplied {
		t.Fatalf("apply into the rebuild: %v %v", got, err)
	}
	wantState(t, s, old[2])
	if _, err := s.Get(ctx, fresh[0].Order.ID); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("the live projection sees the rebuild before Commit: %v", err)
	}
	if err := rb.Commit(ctx, "order-events", map[int]int64{0: 0, 3: 42}); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, fresh[2])
	if _, err := s.Get(ctx, old[0].Order.ID); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("the old projection survived Commit: %v", err)
	}
	if l := ledger(t, db); len(l) != 3 || l[fresh[0].ID] != "applied/1" {
		t.Errorf("ledger after Commit: %v", l)
	}
	var indexes int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()
		AND indexname IN ('order_projection_pkey', 'processed_events_pkey', 'processed_events_order_id')`).Scan(&indexes); err != nil || indexes != 3 {
		t.Errorf("the migrations' index names after Commit: %d of 3 (%v)", indexes, err)
	}
	if origin, err := s.Origin(ctx, "order-events"); err != nil || len(origin) != 2 || origin[3] != 42 {
		t.Errorf("origin %v %v", origin, err)
	}
}

func TestApplyErrorsAreClassified(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("data the schema refuses is permanent and stores nothing of the batch", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name  string
			spoil func(*order.Event)
			code  string
		}{
			{"an unknown status violates a CHECK", func(e *order.Event) { e.Order.Status = "lost" }, "23514"},
			{"a four-letter currency is too long", func(e *order.Event) { e.Order.Currency = "EURO" }, "22001"},
			{"a zero total violates a CHECK", func(e *order.Event) { e.Order.TotalMinor = 0 }, "23514"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				s, db := newStore(t)
				good, bad := history(t)[0], history(t)[0]
				tc.spoil(&bad)
				_, err := s.Apply(ctx, []order.Event{good, bad})
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != tc.code {
					t.Fatalf("err = %v, want SQLSTATE %s", err, tc.code)
				}
				if !projectionstore.IsPermanent(err) {
					t.Errorf("IsPermanent(%v) = false, want true", err)
				}
				if _, err := s.Get(ctx, good.Order.ID); !errors.Is(err, order.ErrNotFound) {
					t.Errorf("the good event of the failed batch was stored (Get err = %v)", err)
				}
				if l := ledger(t, db); len(l) != 0 {
					t.Errorf("the failed batch left a ledger: %v", l)
				}
				// Alone, the good event goes through: what the consumer's
				// one-by-one fallback relies on.
				if got := mustApply(t, s, good); got[0] != order.OutcomeApplied {
					t.Errorf("good event alone: %v", got)
				}
			})
		}
	})

	t.Run("a connection terminated mid-apply is transient and a retry succeeds", func(t *testing.T) {
		t.Parallel()
		s, db := newStore(t)
		ev := history(t)[0]

		// Hold the order's lock so Apply waits on it, then kill Apply's backend.
		blocker, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer blocker.Rollback(ctx) //nolint:errcheck
		if _, err := blocker.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int, $2::int)`,
			projectionstore.LockNamespace, projectionstore.LockKey(ev.Order.ID)); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := s.Apply(ctx, []order.Event{ev}); done <- err }()

		var terminated bool
		for deadline := time.Now().Add(20 * time.Second); !terminated; {
			if time.Now().After(deadline) {
				t.Fatal("Apply never waited for the order's lock")
			}
			// Not on blocker: a transaction keeps its first view of
			// pg_stat_activity, so polling inside it would never see the wait.
			err := db.Pool.QueryRow(ctx, `
				SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(&terminated)
			if err != nil {
				t.Fatal(err)
			}
			if !terminated {
				time.Sleep(5 * time.Millisecond) // poll interval
			}
		}
		var applyErr error
		select {
		case applyErr = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Apply did not return after its connection was terminated")
		}
		if applyErr == nil {
			t.Fatal("Apply succeeded on a terminated connection")
		}
		if projectionstore.IsPermanent(applyErr) {
			t.Errorf("IsPermanent(%v) = true, want false", applyErr)
		}
		if err := blocker.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		// The same batch, retried, applies: nothing was half-stored.
		if got := mustApply(t, s, ev); got[0] != order.OutcomeApplied {
			t.Errorf("retry: %v, want applied", got)
		}
		wantState(t, s, ev)
	})

	t.Run("a closed pool is transient", func(t *testing.T) {
		t.Parallel()
		s, db := newStore(t)
		db.Pool.Close()
		_, err := s.Apply(ctx, history(t)[:1])
		if err == nil {
			t.Fatal("Apply on a closed pool succeeded")
		}
		if projectionstore.IsPermanent(err) {
			t.Errorf("IsPermanent(%v) = true, want false", err)
		}
	})

	t.Run("context and unrelated errors are transient", func(t *testing.T) {
		for _, err := range []error{
			context.Canceled, context.DeadlineExceeded, errors.New("boom"), nil,
			fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "40001"}),
			fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "57P01"}),
			fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "08006"}),
		} {
			if projectionstore.IsPermanent(err) {
				t.Errorf("IsPermanent(%v) = true, want false", err)
			}
		}
		if !projectionstore.IsPermanent(fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "23502"})) {
			t.Error("IsPermanent(23502 not_null_violation) = false, want true")
		}
	})
}

// Two consumers may briefly hold the same partition during a rebalance and
// apply the same batch at once: each event must still be applied exactly once,
// and each call must report what it really did. Several rounds, so that the
// calls overlap on warm connections.
func TestConcurrentApplyOfTheSameBatch(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	const (
		callers = 4
		rounds  = 10
	)
	for round := range rounds {
		a, b := history(t), history(t)
		batch := []order.Event{a[0], b[0], a[1], b[1], a[2]}
		start := make(chan struct{})
		results := make(chan []order.Outcome, callers)
		errs := make(chan error, callers)
		for range callers {
			go func() {
				<-start
				got, err := s.Apply(context.Background(), batch)
				if err != nil {
					errs <- err
					return
				}
				results <- got
			}()
		}
		close(start)
		applied := make([]int, len(batch))
		for range callers {
			select {
			case err := <-errs:
				t.Fatal(err)
			case got := <-results:
				for i, o := range got {
					switch o {
					case order.OutcomeApplied:
						applied[i]++
					case order.OutcomeDuplicate:
					default:
						t.Errorf("round %d, event %d: %s", round, i, o)
					}
				}
			case <-time.After(30 * time.Second):
				t.Fatal("concurrent Apply calls did not return")
			}
		}
		for i, n := range applied {
			if n != 1 {
				t.Errorf("round %d: event %d applied by %d callers, want exactly 1", round, i, n)
			}
		}
		wantState(t, s, a[2])
		wantState(t, s, b[1])
	}
	l := ledger(t, db)
	if len(l) != rounds*5 {
		t.Errorf("ledger holds %d events, want %d", len(l), rounds*5)
	}
	for id, rec := range l {
		if rec != fmt.Sprintf("applied/%d", callers) {
			t.Errorf("event %s: %s, want applied/%d", id, rec, callers)
		}
	}
}

// The ledger keeps an event_id for the retention, then loses it in small
// batches; a redelivery after that is judged by version and changes nothing.
func TestPurgeLedger(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	old, young := history(t), history(t)
	mustApply(t, s, old...)
	mustApply(t, s, young...)
	if _, err := db.Pool.Exec(ctx, `UPDATE processed_events SET applied_at = now() - interval '8 days' WHERE order_id = $1`, old[0].Order.ID); err != nil {
		t.Fatal(err)
	}
	week := 7 * 24 * time.Hour
	for i, want := range []int64{2, 1, 0} {
		n, err := s.PurgeLedger(ctx, week, 2)
		if err != nil || n != want {
			t.Fatalf("purge %d: %d rows (%v), want %d", i, n, err, want)
		}
	}
	l := ledger(t, db)
	if len(l) != 3 || l[young[0].ID] == "" {
		t.Fatalf("ledger after the purge: %v", l)
	}
	if got := mustApply(t, s, old[1]); got[0] != order.OutcomeStale {
		t.Errorf("a redelivery after its ledger row was purged: %s, want stale", got[0])
	}
	wantState(t, s, old[2])
}

// The ledger's applied_at says when each event was applied, in the order
// they were: a batch whose transaction began first, then waited for
// another order's lock while a later batch applied version 1 of an order,
// applies version 2 after it, and its ledger row must say so (stamped with
// the transaction's start, it said before).
func TestTheLedgerSaysWhenAnEventWasAppliedNotWhenItsBatchBegan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := newStore(t)
	// x and y: two orders, y locked before x (the locks go in key order).
	var x, y []order.Event
	for x == nil || projectionstore.LockKey(y[0].Order.ID) >= projectionstore.LockKey(x[0].Order.ID) {
		x, y = history(t), history(t)
	}
	blocker, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx) //nolint:errcheck
	if _, err := blocker.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int, $2::int)`,
		projectionstore.LockNamespace, projectionstore.LockKey(y[0].Order.ID)); err != nil {
		t.Fatal(err)
	}
	// The first batch (y's placing, x's payment) begins and waits for y.
	done := make(chan error, 1)
	go func() { _, err := s.Apply(ctx, []order.Event{y[0], x[1]}); done <- err }()
	for deadline := time.Now().Add(20 * time.Second); ; {
		var waiting bool
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first batch never waited for y's lock")
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	// A second batch places x meanwhile, then y is let go.
	if got := mustApply(t, s, x[0]); got[0] != order.OutcomeApplied {
		t.Fatalf("x placed: %v", got)
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantState(t, s, x[1])
	var placedAt, paidAt time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT
		(SELECT applied_at FROM processed_events WHERE event_id = $1 AND outcome = 'applied'),
		(SELECT applied_at FROM processed_events WHERE event_id = $2 AND outcome = 'applied')`, x[0].ID, x[1].ID).Scan(&placedAt, &paidAt); err != nil {
		t.Fatal(err)
	}
	if !paidAt.After(placedAt) {
		t.Errorf("the ledger says x's version 2 was applied at %s, its version 1 at %s", paidAt.Format(time.RFC3339Nano), placedAt.Format(time.RFC3339Nano))
	}
}
