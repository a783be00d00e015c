package orderstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
)

// A batch runs as one implicit transaction: when one statement is refused,
// nothing of the batch is kept and each statement runs alone, so each
// caller gets its own statement's result and no row is written twice.
func TestGroupCommitGivesEachStatementItsOwnResult(t *testing.T) {
	db := pgtest.MustDB(t, nil)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	g := &groupCommit{pool: db.Pool}
	run := func(ids ...int) []result {
		batch := make([]*statement, len(ids))
		for i, id := range ids {
			batch[i] = &statement{ctx: ctx, sql: "INSERT INTO t VALUES ($1)", args: []any{id}, done: make(chan result, 1)}
		}
		g.run(batch)
		out := make([]result, len(ids))
		for i, st := range batch {
			out[i] = <-st.done
		}
		return out
	}
	for i, r := range run(10, 11, 12) {
		if r.err != nil || r.tag.RowsAffected() != 1 {
			t.Errorf("statement %d of a good batch: %v %v", i, r.tag, r.err)
		}
	}
	got := run(1, 2, 3) // 2 is there already
	var pgErr *pgconn.PgError
	if got[0].err != nil || got[2].err != nil || !errors.As(got[1].err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("results %+v: want 1 and 3 written, 2 refused as a duplicate", got)
	}
	// A caller that gave up before its batch was sent gets its error, and
	// its row is not written; the others' are.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	batch := []*statement{
		{ctx: ctx, sql: "INSERT INTO t VALUES ($1)", args: []any{20}, done: make(chan result, 1)},
		{ctx: gone, sql: "INSERT INTO t VALUES ($1)", args: []any{21}, done: make(chan result, 1)},
		{ctx: ctx, sql: "INSERT INTO t VALUES ($1)", args: []any{22}, done: make(chan result, 1)},
	}
	g.run(batch)
	if r := <-batch[1].done; !errors.Is(r.err, context.Canceled) {
		t.Errorf("the abandoned statement: %v, want context.Canceled", r.err)
	}
	for _, i := range []int{0, 2} {
		if r := <-batch[i].done; r.err != nil {
			t.Errorf("statement %d beside an abandoned one: %v", i, r.err)
		}
	}
	var rows string
	if err := db.Pool.QueryRow(ctx, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t").Scan(&rows); err != nil || rows != "1,2,3,10,11,12,20,22" {
		t.Fatalf("rows %s (%v)", rows, err)
	}
}

// Concurrent callers all get their rows written, once, through Exec.
func TestGroupCommitUnderConcurrency(t *testing.T) {
	db := pgtest.MustDB(t, nil)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	g := &groupCommit{pool: db.Pool}
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := g.Exec(ctx, "INSERT INTO t VALUES ($1)", i); err != nil {
				errs <- fmt.Errorf("insert %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var count, distinct int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT id) FROM t").Scan(&count, &distinct); err != nil || count != n || distinct != n {
		t.Fatalf("%d rows, %d distinct (%v), want %d", count, distinct, err, n)
	}
}
