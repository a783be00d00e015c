package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/platform/backoff"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
)

// batchRow is an unpublished outbox row as a batch read returns it, its
// headers read into Kafka headers; Row is the one order-api writes.
type batchRow struct {
	id            int64
	topic         string
	key           []byte
	payload       []byte
	schemaVersion int
	headers       []kafka.Header // in envelope.HeaderOrder
	createdAt     time.Time
}

// flight is a batch being written to Kafka by a goroutine of its own.
type flight struct {
	rows       []batchRow
	msgs       []kafka.Message
	batchBytes int64      // the writer's BatchBytes for this write
	more       bool       // the read that gave rows stopped at a limit: more may wait
	done       chan error // the write's result
}

// ids returns the batch's outbox ids (nil for no flight).
func (f *flight) ids() []int64 {
	if f == nil {
		return nil
	}
	ids := make([]int64, len(f.rows))
	for i, rw := range f.rows {
		ids[i] = rw.id
	}
	return ids
}

// errReadAgain: a write failed while the next batch was read or framed;
// that batch follows the failed rows and is dropped for a new read.
var errReadAgain = errors.New("outbox: the write in flight failed; read again")

// drain publishes until the outbox is empty. From a backlog it is a
// pipeline: while one batch is being written to Kafka, the next is read
// (marking the one before as published, in the same statement) and framed.
// Writes stay one at a time, in read order, and the next starts only once
// the last is acknowledged in full, so a partition's order holds as it does
// without the pipeline. The acknowledged rows are left in *acked, for the
// next read or the end of leading to mark. It returns an error when ctx
// ends or the lock connection is lost (leadership is gone), after the write
// in flight has ended; no new write starts once ctx has ended.
//
// A failed write is never retried from memory: what Kafka acknowledged of
// it is kept in *acked, what was read ahead is dropped, and the next read
// starts again from the oldest row, so a row deleted meanwhile is gone. If
// Kafka refused messages for what they are (refusedForItself), the rows up
// to the last refused one are then read and written one at a time
// (isolate), and a row refused alone is set aside with its order's later
// rows (setAside); any other failure is the topic's or the broker's, and is
// retried after a backoff, setting nothing aside.
func (r *Relay) drain(ctx context.Context, conn *pgx.Conn, acked *[]int64) error {
	var (
		writing *flight
		isolate int64 // while > 0, rows up to this id are written one at a time
		failed  int   // writes failed in a row for the topic or the broker
	)
	defer func() {
		if writing == nil {
			return
		}
		// A write under way is finished (it may already be at the broker)
		// and, if acknowledged, marked when leading ends: never left for a
		// next leader to publish again when it need not be.
		*acked = append(*acked, r.acknowledged(writing, <-writing.done)...)
	}()
	// settle ends the write in flight, leaves what Kafka acknowledged in
	// *acked, and reports whether any of it failed.
	settle := func() (bool, error) {
		f := writing
		writing = nil
		if f == nil {
			return false, nil
		}
		err := <-f.done
		*acked = append(*acked, r.acknowledged(f, err)...)
		if err == nil {
			if failed > 0 {
				r.failing.Store(nil)
				r.log.Info("relay recovered", "step", stepWrite, "attempts", failed+1)
				failed = 0
			}
			return false, nil
		}
		return true, r.failedWrite(ctx, conn, f, err, &isolate, &failed)
	}
	// step runs a step of the next batch; if it fails, the write in flight
	// is settled before the step is retried, so that a failing broker is
	// retried and reported as itself, not hidden behind an outage of the
	// database or the registry. While the registry is out, the rows Kafka
	// acknowledged are marked at once, as they were before the pipeline
	// (the read that marks them comes only after the outage).
	step := func(what string, run func() error) error {
		err := run()
		if err == nil {
			return nil
		}
		if wfailed, serr := settle(); serr != nil {
			return serr
		} else if wfailed {
			return errReadAgain
		}
		if what == stepFrame && len(*acked) > 0 && r.mark(ctx, conn, *acked) == nil {
			*acked = nil
		}
		return r.retry(ctx, conn, what, err, run)
	}
	for {
		r.cfg.Heart.Beat()
		if time.Since(r.limitRead) >= r.cfg.LimitInterval {
			r.learnLimit(ctx)
		}
		if writing != nil && (!writing.more || isolate > 0) {
			// The batch in flight emptied the outbox when it was read, or
			// rows are being written one at a time: nothing to read ahead,
			// and the next read is to mark it (or to read it again).
			if _, err := settle(); err != nil {
				return err
			}
		}
		limit := r.cfg.BatchSize
		if isolate > 0 {
			limit = 1
		}
		var (
			rows []batchRow
			more bool
			// The writer's limit for the batch, sized by the same limit
			// as the read (which only the top of this loop changes, or a
			// failed write, whose reads are dropped).
			batchBytes = r.writerBatchBytes()
		)
		err := step(stepRead, func() error {
			var err error
			rows, more, err = r.readBatch(ctx, conn, *acked, writing.ids(), limit)
			return err
		})
		if err == nil {
			*acked = nil // marked by the read
		}
		msgs := make([]kafka.Message, len(rows))
		if err == nil {
			err = step(stepFrame, func() error { return r.frame(ctx, rows, msgs) })
		}
		switch {
		case errors.Is(err, errReadAgain):
			continue
		case err != nil:
			return err
		}
		wrote := writing != nil
		if wfailed, err := settle(); err != nil {
			return err
		} else if wfailed {
			continue // what was just read follows the failed rows: read again from the oldest
		}
		if isolate > 0 && (len(rows) > 0 && rows[0].id > isolate || len(rows) == 0 && !more) {
			isolate = 0 // past the refused rows
		}
		switch {
		case len(rows) == 0 && (wrote || more):
			continue // one more read marks what was just written, or reads past rows set aside
		case len(rows) == 0:
			return nil
		case ctx.Err() != nil:
			return ctx.Err() // stopping: read, never written, never marked
		}
		writing = &flight{rows: rows, msgs: msgs, batchBytes: batchBytes, more: more, done: make(chan error, 1)}
		go func(f *flight) { f.done <- r.write(ctx, f) }(writing)
	}
}

// frame frames each row's payload with its schema ID into msgs, keeping
// what an earlier attempt framed.
func (r *Relay) frame(ctx context.Context, rows []batchRow, msgs []kafka.Message) error {
	for i, rw := range rows {
		if msgs[i].Value != nil {
			continue
		}
		v, err := r.cfg.Framer.Frame(ctx, rw.topic, rw.schemaVersion, rw.payload)
		if err != nil {
			return err
		}
		msgs[i] = message(rw, v)
	}
	return nil
}

// write makes one attempt to write f.
func (r *Relay) write(ctx context.Context, f *flight) error {
	// A write under way finishes even if shutdown begins meanwhile: cut
	// short, it may have reached the broker unacknowledged, and the next
	// leader would publish its rows again. WriteTimeout bounds it.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.WriteTimeout+time.Second)
	defer cancel()
	// kafka-go makes each partition's batch at the writer's BatchSize
	// capacity (a Message is about 150 bytes): at RELAY_BATCH_SIZE, every
	// write of a few rows allocated up to 150 KiB per partition, two thirds
	// of order-api's allocated bytes and much of its GC. At the size of this
	// write, and with BatchBytes above what the read let in, no partition
	// can get more than one batch, so a partial failure leaves each
	// partition's order intact (see acknowledged). Only WriteMessages,
	// called by one write at a time, reads BatchSize and BatchBytes (and
	// Stats, which the relay never calls).
	r.writer.BatchSize = len(f.msgs)
	r.writer.BatchBytes = f.batchBytes
	start := time.Now()
	err := r.writer.WriteMessages(wctx, f.msgs...)
	if err == nil {
		r.metrics.write.Observe(time.Since(start).Seconds())
	}
	if kafkaconn.TimedOut(err) {
		// kafka-go's error names neither the brokers nor the bound.
		err = fmt.Errorf("brokers %s: no answer within %s: %w", strings.Join(r.cfg.Brokers, ","), r.cfg.WriteTimeout, err)
	}
	return err
}

// acknowledged records in the metrics what Kafka acknowledged of f, whose
// write ended with err, and returns those rows' ids. A partition's rows
// share one record batch, so they all fail or none: what is acknowledged
// leaves no gap in any partition's order.
func (r *Relay) acknowledged(f *flight, err error) []int64 {
	rows := f.rows
	if err != nil {
		rows = nil
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(f.rows) {
			for i, e := range werrs {
				if e == nil {
					rows = append(rows, f.rows[i])
				}
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	now := time.Now()
	ids := make([]int64, len(rows))
	for i, rw := range rows {
		r.metrics.latency.Observe(now.Sub(rw.createdAt).Seconds())
		ids[i] = rw.id
	}
	r.progressed()
	r.metrics.published.Add(float64(len(rows)))
	r.metrics.batchSize.Observe(float64(len(rows)))
	return ids
}

func message(rw batchRow, value []byte) kafka.Message {
	return kafka.Message{Topic: rw.topic, Key: rw.key, Value: value, Headers: rw.headers}
}

// readBatch marks acked as published and returns the oldest unpublished
// rows but those in flight, at most limit of them and readBatchBytes in
// all, and whether it stopped at one of those limits (more may wait). Rows
// it set aside, as followers of a set-aside row of their order, are
// logged and not returned.
func (r *Relay) readBatch(ctx context.Context, conn *pgx.Conn, acked, inFlight []int64, limit int) ([]batchRow, bool, error) {
	ctx, cancel := r.calls.Bound(ctx)
	defer cancel()
	rows, more, err := r.readBatchOnce(ctx, conn, acked, inFlight, limit)
	if err != nil {
		err = r.calls.Explain(err)
	}
	return rows, more, err
}

func (r *Relay) readBatchOnce(ctx context.Context, conn *pgx.Conn, acked, inFlight []int64, limit int) ([]batchRow, bool, error) {
	if acked == nil {
		acked = []int64{}
	}
	if inFlight == nil {
		inFlight = []int64{}
	}
	if r.cfg.Retention == 0 {
		// Nothing moves to outbox_published, so nothing there to replace.
		return r.read(ctx, conn, selectBatchDeletingSQL, limit, acked, inFlight)
	}
	out, more, err := r.read(ctx, conn, selectBatchSQL, limit, acked, inFlight)
	if archiveConflict(err) {
		r.log.Warn("outbox_published already holds ids being moved there; replacing them (was the outbox's id sequence reset?)", "error", err)
		out, more, err = r.read(ctx, conn, selectBatchReplacingSQL, limit, acked, inFlight)
	}
	return out, more, err
}

// read runs a batch read.
func (r *Relay) read(ctx context.Context, conn *pgx.Conn, query string, limit int, acked, inFlight []int64) ([]batchRow, bool, error) {
	type readRow struct {
		batchRow
		column  []byte // the headers column
		follows *int64
	}
	rs, err := conn.Query(ctx, query, limit, acked, inFlight)
	if err != nil {
		return nil, false, err
	}
	all, err := pgx.CollectRows(rs, func(row pgx.CollectableRow) (readRow, error) {
		var rw readRow
		err := row.Scan(&rw.id, &rw.topic, &rw.key, &rw.payload, &rw.schemaVersion, &rw.column, &rw.createdAt, &rw.follows)
		return rw, err
	})
	// CollectRows reads the statement to its end: only then is the mark
	// known to have committed.
	if err != nil {
		return nil, false, err
	}
	// The statement returns its batch as the CTE read it, in id order, but
	// without an ORDER BY of its own (which would add a sort), nothing
	// promises it (see selectBatchSQL): order is the relay's guarantee.
	byID := func(a, b readRow) int { return cmp.Compare(a.id, b.id) }
	if !slices.IsSortedFunc(all, byID) {
		slices.SortFunc(all, byID)
	}
	var (
		out     []batchRow
		set     []setAsideRow // followers the read set aside
		bytes   int
		maxSize = r.readBatchBytes()
		more    bool
	)
	for _, rw := range all {
		if rw.follows != nil {
			set = append(set, follower(rw.id, rw.key, rw.column, *rw.follows))
			continue
		}
		size := len(rw.key) + len(rw.payload) + 5 + len(rw.column) + 64
		if more || len(out) > 0 && bytes+size > maxSize {
			more = true // the rest goes in the next batch, in order
			continue
		}
		if rw.headers, err = KafkaHeaders(rw.column); err != nil {
			return nil, false, fmt.Errorf("headers of outbox row %d: %w", rw.id, err)
		}
		bytes += size
		out = append(out, rw.batchRow)
	}
	r.setAsideDone(set)
	return out, more || len(all) == limit, nil
}

// archiveConflict reports whether err is outbox_published refusing an id it
// holds already.
func archiveConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "outbox_published_pkey"
}

// mark marks ids published outside a batch read, on db (the lock
// connection, or the pool once leading ends), within a statement's bound.
func (r *Relay) mark(ctx context.Context, db Execer, ids []int64) error {
	ctx, cancel := r.calls.Bound(ctx)
	defer cancel()
	if err := r.markOnce(ctx, db, ids); err != nil {
		return r.calls.Explain(err)
	}
	return nil
}

func (r *Relay) markOnce(ctx context.Context, db Execer, ids []int64) error {
	if r.cfg.Retention == 0 {
		_, err := db.Exec(ctx, deleteSQL, ids)
		return err
	}
	_, err := db.Exec(ctx, markSQL, ids)
	if archiveConflict(err) {
		_, err = db.Exec(ctx, markReplacingSQL, ids)
	}
	return err
}

// retry runs step again until it succeeds, backing off between attempts;
// err is how its first attempt, made by the caller, ended (nil: nothing to
// retry). Before each new attempt it checks the lock connection: if it is
// gone, so is leadership, and the step is abandoned (the next leader redoes
// it).
func (r *Relay) retry(ctx context.Context, conn *pgx.Conn, what string, err error, step func() error) error {
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			err = step()
		}
		if err == nil {
			if attempt > 1 {
				r.failing.Store(nil)
				r.log.Info("relay recovered", "step", what, "attempts", attempt)
			}
			return nil
		}
		if err := r.backOff(ctx, conn, what, err, attempt); err != nil {
			return err
		}
	}
}

// backOff reports the failed attempt of step what, waits before the next
// and checks the lock connection; it returns an error if ctx ended or the
// connection is lost.
func (r *Relay) backOff(ctx context.Context, conn *pgx.Conn, what string, err error, attempt int) error {
	failing := fmt.Errorf("%s: %w", what, err)
	r.failing.Store(&failing)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.metrics.failures.WithLabelValues(what).Inc()
	d := backoff.Delay(r.cfg.BackoffMin, r.cfg.BackoffMax, attempt)
	r.log.Warn("relay step failed; retrying", "step", what, "attempt", attempt, "backoff", d.String(), "error", err)
	if !r.cfg.Heart.Sleep(ctx, d) {
		return ctx.Err()
	}
	pctx, cancel := r.calls.Bound(ctx)
	perr := conn.Ping(pctx)
	cancel()
	if perr != nil && ctx.Err() == nil {
		return fmt.Errorf("lock connection lost during %s: %w", what, perr)
	}
	return nil
}
