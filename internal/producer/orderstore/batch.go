package orderstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// groupCommit runs the statements of concurrent calls together: what is
// queued while a round trip is under way goes in the next one, as one
// pipelined batch (one write, one commit), so under load a place costs a
// fraction of a round trip and of a WAL flush, and an idle store waits for
// nothing. Each statement keeps its own atomicity (it is one statement). A
// batch runs in one implicit transaction, so if any of its statements
// fails, none is kept and each is run again alone: a call gets its own
// statement's result, never another's.
type groupCommit struct {
	pool    *pgxpool.Pool
	timeout time.Duration // each round trip's bound: the store's (pgdb.CallTimeout if zero)

	mu       sync.Mutex
	queue    []*statement
	inFlight int
}

// Batching limits: at most maxBatch statements per round trip and
// maxInFlight round trips at once (the pool serves the rest of the API).
const (
	maxBatch    = 64
	maxInFlight = 4
)

type statement struct {
	ctx  context.Context // the caller's: once it is done, the statement is not sent
	sql  string
	args []any
	done chan result
}

type result struct {
	tag pgconn.CommandTag
	err error
}

// Exec queues sql and waits for its result, or for ctx. A statement whose
// caller stopped waiting before its batch was sent is dropped; one already
// sent may still commit, as a cancelled statement may.
func (g *groupCommit) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	st := &statement{ctx: ctx, sql: sql, args: args, done: make(chan result, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, st)
	if g.inFlight < maxInFlight {
		g.inFlight++
		go g.drain()
	}
	g.mu.Unlock()
	select {
	case r := <-st.done:
		return r.tag, r.err
	case <-ctx.Done():
		return pgconn.CommandTag{}, ctx.Err()
	}
}

// drain runs batches until the queue is empty.
func (g *groupCommit) drain() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), maxBatch)
		if n == 0 {
			g.inFlight--
			g.mu.Unlock()
			return
		}
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		g.run(batch)
	}
}

func (g *groupCommit) run(queued []*statement) {
	// A caller that gave up while its statement waited must not find its
	// order written after it was told it failed (it would place it again).
	batch := queued[:0:0]
	for _, st := range queued {
		if err := st.ctx.Err(); err != nil {
			st.done <- result{err: err}
			continue
		}
		batch = append(batch, st)
	}
	timeout := g.timeout
	if timeout <= 0 {
		timeout = pgdb.CallTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if len(batch) > 1 {
		b := &pgx.Batch{}
		for _, st := range batch {
			b.Queue(st.sql, st.args...)
		}
		br := g.pool.SendBatch(ctx, b)
		tags := make([]pgconn.CommandTag, len(batch))
		var err error
		for i := range batch {
			if tags[i], err = br.Exec(); err != nil {
				break
			}
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			for i, st := range batch {
				st.done <- result{tag: tags[i]}
			}
			return
		case !errors.As(err, &pgErr):
			// The database could not be reached or used: whether the batch
			// committed is unknown, as for a single statement; each caller
			// gets the error, none is run again.
			for _, st := range batch {
				st.done <- result{err: err}
			}
			return
		}
		// A statement was refused, so nothing of the batch was kept: each
		// statement alone, for its own result.
	}
	for _, st := range batch {
		tag, err := g.pool.Exec(ctx, st.sql, st.args...)
		st.done <- result{tag, err}
	}
}
