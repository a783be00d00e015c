package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run contends for the lock and, while holding it, publishes. It returns nil
// when ctx ends, after the batch in flight is finished or abandoned (never
// marked unless acknowledged), with its connection and writer closed.
func (r *Relay) Run(ctx context.Context) error {
	defer r.writer.Close()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	for {
		r.cfg.Heart.Beat()
		if conn == nil || conn.IsClosed() {
			c, err := r.connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.unreachable("relay cannot connect to the database", err)
			}
			conn = c
		}
		if conn != nil {
			var locked bool
			lctx, cancel := r.calls.Bound(ctx)
			err := conn.QueryRow(lctx, "SELECT pg_try_advisory_lock($1)", r.cfg.LockKey).Scan(&locked)
			cancel()
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				r.unreachable("relay cannot try the lock", err)
				closeConn(conn)
				conn = nil
			case !locked:
				r.failing.Store(nil) // standing by, able to take over
			case locked:
				r.failing.Store(nil)
				r.progressed()
				r.leader.Store(true)
				r.metrics.leader.Set(1)
				r.log.Info("relay is the leader: publishing")
				err := r.lead(ctx, conn)
				r.leader.Store(false)
				r.metrics.leader.Set(0)
				// What ended leading is reported until the lock is tried
				// again: a database that stopped answering is not healthy
				// in between.
				if ctx.Err() == nil {
					lost := fmt.Errorf("lost leadership: %w", err)
					r.failing.Store(&lost)
				}
				// Unlock at once, so a standby takes over (and a stopped
				// relay holds nothing) without waiting for this backend to
				// exit; closing the connection releases the lock whatever
				// state it is in, only later.
				uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				_, _ = conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", r.cfg.LockKey)
				cancel()
				closeConn(conn)
				conn = nil
				if ctx.Err() != nil {
					r.log.Info("relay stopped")
					return nil
				}
				r.log.Warn("relay lost leadership", "error", err)
			}
		}
		if !r.cfg.Heart.Sleep(ctx, r.cfg.LockRetryInterval) {
			return nil
		}
	}
}

// closeConn closes the lock connection, saying goodbye to the server for at
// most serverGrace: one that does not read would hold the goodbye for ever.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), serverGrace)
	defer cancel()
	_ = conn.Close(ctx)
}

// connect opens the lock connection, within a statement's bound.
func (r *Relay) connect(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := r.calls.Bound(ctx)
	defer cancel()
	return pgx.ConnectConfig(cctx, r.db)
}

// unreachable reports that the database cannot be reached or used to
// contend for the lock: in the log and in Health, for /readyz, naming the
// server, until the next attempt succeeds.
func (r *Relay) unreachable(msg string, err error) {
	err = fmt.Errorf("database: %w", r.calls.Explain(err))
	r.failing.Store(&err)
	r.log.Warn(msg, "error", err)
}

// lead publishes until ctx ends or the lock connection fails.
func (r *Relay) lead(ctx context.Context, conn *pgx.Conn) error {
	sctx, cancel := r.calls.Bound(ctx)
	defer cancel()
	if _, err := conn.Exec(sctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen: %w", r.calls.Explain(err))
	}
	if err := prepareSession(sctx, conn); err != nil {
		return r.calls.Explain(err)
	}
	cancel()
	// acked holds the ids Kafka acknowledged but not yet marked: the next
	// read marks them in the same statement, saving a round trip and a
	// commit per batch. Whatever is left when leading ends is marked here.
	var acked []int64
	defer func() {
		if len(acked) > 0 {
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.WriteTimeout)
			defer cancel()
			if err := r.mark(mctx, r.cfg.Pool, acked); err != nil {
				r.log.Warn("could not mark published rows; they will be published again", "rows", len(acked), "error", err)
			}
		}
	}()
	var lastPurge time.Time
	// The wait for rows is cut to the heart's pace: an idle relay is alive.
	poll := r.cfg.PollInterval
	if e := r.cfg.Heart.Every(); e > 0 {
		poll = min(poll, e)
	}
	for {
		r.cfg.Heart.Beat()
		if err := r.drain(ctx, conn, &acked); err != nil {
			return err
		}
		r.progressed() // the outbox is empty: nothing waits
		r.cfg.Heart.Beat()
		if r.cfg.Retention > 0 && time.Since(lastPurge) >= r.cfg.PurgeInterval {
			r.purge(ctx, conn)
			lastPurge = time.Now()
		}
		select {
		case <-r.wake: // woken in process while draining: drain again
			continue
		default:
		}
		wctx, cancel := context.WithTimeout(ctx, poll)
		// A Wake ends the wait as a NOTIFY would: cancelling the wait leaves
		// the connection usable (pgconn treats it as a timeout).
		woken := make(chan struct{})
		go func() {
			select {
			case <-r.wake:
				close(woken)
				cancel()
			case <-wctx.Done():
			}
		}()
		_, err := conn.WaitForNotification(wctx)
		cancel()
		select {
		case <-woken:
			err = nil
		default:
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil, wctx.Err() != nil: // notified (by NOTIFY or Wake), or the poll interval passed
		default:
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}

// prepareSession sets up the lock connection, which runs only the relay's
// statements.
func prepareSession(ctx context.Context, conn *pgx.Conn) error {
	// The relay's reads, marks and purges run on this connection, whose
	// loss ends leadership anyway, and without waiting for the WAL flush:
	// a mark lost in a crash only means the rows are published again
	// (at least once), and a mark no longer queues behind the order
	// commits' fsyncs on every batch.
	if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
		return fmt.Errorf("set synchronous_commit: %w", err)
	}
	// The batch read must walk the outbox's primary key in id order and
	// stop at its LIMIT. Expecting few rows (a table analyzed while it held
	// few), the planner prefers a sequential scan and a sort, which read
	// every page, dead rows included, on every read; before migration 00004
	// it chose a bitmap scan of the queue's partial index, which visited
	// every dead entry's heap page: measured at 500 orders/s, 27 ms per read
	// of about 28 rows, and the relay did nothing else. With those plans off
	// on this connection, a read took about 0.5 ms: end-to-end p50 38 → 10
	// ms, PostgreSQL's CPU per order 40% lower (docs/performance.md).
	if _, err := conn.Exec(ctx, "SET enable_bitmapscan = off; SET enable_seqscan = off"); err != nil {
		return fmt.Errorf("set the relay's plans: %w", err)
	}
	return nil
}

// purge deletes published rows past retention in chunks, so one purge never
// holds a long transaction. Failures are logged and retried next interval.
func (r *Relay) purge(ctx context.Context, conn *pgx.Conn) {
	total := int64(0)
	for ctx.Err() == nil {
		pctx, cancel := r.calls.Bound(ctx)
		tag, err := conn.Exec(pctx, purgeSQL, r.cfg.Retention)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("outbox purge failed", "error", r.calls.Explain(err))
			}
			return
		}
		r.cfg.Heart.Beat()
		total += tag.RowsAffected()
		if tag.RowsAffected() < 5000 {
			break
		}
	}
	if total > 0 {
		r.log.Info("outbox purged", "rows", total, "retention", r.cfg.Retention.String())
	}
}
