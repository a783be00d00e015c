package projectionstore_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/order"
)

// The next batch begun in the commit's round trip meets what this batch
// committed: an order both batches touch goes on from this batch's state,
// whatever its history's length, and the next batch then commits like any.
func TestTheNextBatchBegunWithACommitSeesIt(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	a, b := history(t), history(t)

	tx, err := s.Begin(ctx, []order.Event{a[0], b[0]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, next, err := tx.CommitAndBegin(ctx, []order.Event{a[1], a[2], b[1]}, nil)
	if err != nil || next == nil {
		t.Fatalf("CommitAndBegin: %v, next %v", err, next)
	}
	if want := []order.Outcome{order.OutcomeApplied, order.OutcomeApplied}; !reflect.DeepEqual(got, want) {
		t.Errorf("this batch: %v, want %v", got, want)
	}
	wantState(t, s, a[0]) // committed while the next batch's transaction is open
	got, last, err := next.CommitAndBegin(ctx, nil, nil)
	if err != nil || last != nil {
		t.Fatalf("the next batch: %v, %v", err, last)
	}
	if want := []order.Outcome{order.OutcomeApplied, order.OutcomeApplied, order.OutcomeApplied}; !reflect.DeepEqual(got, want) {
		t.Errorf("the next batch: %v, want %v", got, want)
	}
	wantState(t, s, a[2])
	wantState(t, s, b[1])
	if l := ledger(t, db); len(l) != 5 {
		t.Errorf("ledger %v", l)
	}
}

// A batch that fails begins no next one, and leaves nothing held: its
// orders and the next batch's can be applied at once by anyone.
func TestABatchThatFailsBeginsNoNextOne(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	good, bad, next := history(t), history(t)[0], history(t)
	bad.Order.TotalMinor = 0 // the projection's CHECK refuses it: a permanent error

	tx, err := s.Begin(ctx, []order.Event{good[0], bad}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, nextTx, err := tx.CommitAndBegin(ctx, []order.Event{next[0], good[1]}, nil)
	if err == nil || nextTx != nil {
		t.Fatalf("CommitAndBegin of a refused batch: %v, next %v", err, nextTx)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Apply(ctx, []order.Event{good[0], good[1], next[0]})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the orders of the failed batch, or of the next one, are still locked")
	}
	wantState(t, s, good[1])
	wantState(t, s, next[0])
	if l := ledger(t, db); len(l) != 3 {
		t.Errorf("ledger %v, want the three events applied after", l)
	}
	var open int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&open); err != nil || open != 0 {
		t.Errorf("%d sessions left in a transaction (%v)", open, err)
	}
}

// Rollback ends a begun batch without writing anything, and frees its
// orders.
func TestRollbackWritesNothingAndFreesTheOrders(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	h := history(t)
	tx, err := s.Begin(ctx, h[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	tx.Rollback(ctx)
	if _, err := s.Get(ctx, h[0].Order.ID); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("a rolled-back batch was stored: %v", err)
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if got, err := s.Apply(actx, h); err != nil || got[2] != order.OutcomeApplied {
		t.Fatalf("after the rollback: %v %v", got, err)
	}
	if l := ledger(t, db); len(l) != 3 {
		t.Errorf("ledger %v", l)
	}
}

// holdOrder holds ev's order's lock in a transaction of its own until the
// test ends or release is called.
func holdOrder(t *testing.T, db *pgtest.DB, ev order.Event) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int, $2::int)`,
		projectionstore.LockNamespace, projectionstore.LockKey(ev.Order.ID)); err != nil {
		t.Fatal(err)
	}
	release = func() { _ = tx.Rollback(ctx) }
	t.Cleanup(release)
	return release
}

// A batch's commit is reported at once even when another transaction holds
// an order of the next batch, which is then not begun (the caller begins it
// again, and waits for it there).
func TestACommitDoesNotWaitForTheNextBatchsLocks(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	a, b := history(t), history(t)
	release := holdOrder(t, db, b[0])

	tx, err := s.Begin(ctx, a[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, next, err := tx.CommitAndBegin(cctx, b[:1], nil)
	if err != nil || next != nil {
		t.Fatalf("CommitAndBegin with the next batch's order held: %v, next %v", err, next)
	}
	if want := []order.Outcome{order.OutcomeApplied}; !reflect.DeepEqual(got, want) {
		t.Errorf("this batch: %v, want %v", got, want)
	}
	wantState(t, s, a[0])
	release()
	if got := mustApply(t, s, b[0]); got[0] != order.OutcomeApplied {
		t.Errorf("the next batch begun again: %v", got)
	}
	wantState(t, s, b[0])
}

// A batch waits for a lock another transaction holds only so long, then
// fails with a transient error, having written nothing; once the lock is
// free it applies.
func TestABatchWaitsForALockOnlySoLong(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	projectionstore.SetLockTimeout(s.Store, 200*time.Millisecond)
	ctx := context.Background()
	h := history(t)
	release := holdOrder(t, db, h[0])

	_, err := s.Apply(ctx, h[:1])
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55P03" || projectionstore.IsPermanent(err) {
		t.Fatalf("Apply of a held order: %v, want lock_not_available, transient", err)
	}
	if l := ledger(t, db); len(l) != 0 {
		t.Errorf("ledger %v after the failed batch", l)
	}
	release()
	if got := mustApply(t, s, h...); !reflect.DeepEqual(got, []order.Outcome{order.OutcomeApplied, order.OutcomeApplied, order.OutcomeApplied}) {
		t.Errorf("after the lock was freed: %v", got)
	}
}
