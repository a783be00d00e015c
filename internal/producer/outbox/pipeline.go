package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/platform/backoff"
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
	rows    []batchRow
	pending []kafka.Message // what is not acknowledged yet
	more    bool            // the read that gave rows stopped at a limit: more may wait
	done    chan error      // the first attempt's result
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

// drain publishes until the outbox is empty. From a backlog it is a
// pipeline: while one batch is being written to Kafka, the next is read
// (marking the one before as published, in the same statement) and framed.
// Writes stay one at a time, in read order, and the next starts only once
// the last is acknowledged in full, so a partition's order holds as it does
// without the pipeline. The acknowledged rows are left in *acked, for the
// next read or the end of leading to mark. It returns an error when ctx
// ends or the lock connection is lost (leadership is gone), after the write
// in flight has ended; no new write starts once ctx has ended.
func (r *Relay) drain(ctx context.Context, conn *pgx.Conn, acked *[]int64) error {
	var writing *flight
	defer func() {
		if writing == nil {
			return
		}
		// A write under way is finished (it may already be at the broker)
		// and, if acknowledged, marked when leading ends: never left for a
		// next leader to publish again when it need not be.
		if werr := <-writing.done; werr == nil {
			*acked = append(*acked, r.written(writing)...)
		}
	}()
	// settle ends the write in flight, retrying it until Kafka acknowledged
	// it, and leaves its ids in *acked.
	settle := func() error {
		f := writing
		writing = nil
		if f == nil {
			return nil
		}
		err := <-f.done
		if err != nil {
			err = r.retry(ctx, conn, stepWrite, err, func() error { return r.write(ctx, f) })
		}
		if err != nil {
			return err // abandoned: the next leader publishes it again
		}
		*acked = append(*acked, r.written(f)...)
		return nil
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
		if serr := settle(); serr != nil {
			return serr
		}
		if what == stepFrame && len(*acked) > 0 && r.mark(ctx, conn, *acked) == nil {
			*acked = nil
		}
		return r.retry(ctx, conn, what, err, run)
	}
	for {
		if writing != nil && !writing.more {
			// The batch in flight emptied the outbox when it was read:
			// nothing to read ahead, and the next read is to mark it.
			if err := settle(); err != nil {
				return err
			}
		}
		var (
			rows []batchRow
			more bool
		)
		if err := step(stepRead, func() error {
			var err error
			rows, more, err = r.readBatch(ctx, conn, *acked, writing.ids())
			return err
		}); err != nil {
			return err
		}
		*acked = nil // marked by the read
		msgs := make([]kafka.Message, len(rows))
		if err := step(stepFrame, func() error { return r.frame(ctx, rows, msgs) }); err != nil {
			return err
		}
		wrote := writing != nil
		if err := settle(); err != nil {
			return err
		}
		switch {
		case len(rows) == 0 && wrote:
			continue // one more read marks what was just written
		case len(rows) == 0:
			return nil
		case ctx.Err() != nil:
			return ctx.Err() // stopping: read, never written, never marked
		}
		writing = &flight{rows: rows, pending: msgs, more: more, done: make(chan error, 1)}
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

// write makes one attempt to write what f has pending, and leaves pending
// what failed.
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
	// write, no partition can get more than one batch, so a partial failure
	// leaves each partition's order intact (see below). Only WriteMessages,
	// called by one write at a time, reads BatchSize (and Stats, which the
	// relay never calls).
	r.writer.BatchSize = len(f.pending)
	start := time.Now()
	err := r.writer.WriteMessages(wctx, f.pending...)
	if err == nil {
		r.metrics.write.Observe(time.Since(start).Seconds())
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == len(f.pending) {
		// Keep only what failed: the rest is acknowledged, and its
		// partitions' order is kept because each partition got one batch.
		var failed []kafka.Message
		for i, e := range werrs {
			if e != nil {
				failed = append(failed, f.pending[i])
			}
		}
		f.pending = failed
	}
	return err
}

// written records an acknowledged batch in the metrics and returns its ids.
func (r *Relay) written(f *flight) []int64 {
	now := time.Now()
	for _, rw := range f.rows {
		r.metrics.latency.Observe(now.Sub(rw.createdAt).Seconds())
	}
	r.metrics.published.Add(float64(len(f.rows)))
	r.metrics.batchSize.Observe(float64(len(f.rows)))
	return f.ids()
}

func message(rw batchRow, value []byte) kafka.Message {
	return kafka.Message{Topic: rw.topic, Key: rw.key, Value: value, Headers: rw.headers}
}

// readBatch marks acked as published and returns the oldest unpublished
// rows but those in flight, at most BatchSize of them and MaxBatchBytes in
// all, and whether it stopped at one of those limits (more may wait).
func (r *Relay) readBatch(ctx context.Context, conn *pgx.Conn, acked, inFlight []int64) ([]batchRow, bool, error) {
	if acked == nil {
		acked = []int64{}
	}
	if inFlight == nil {
		inFlight = []int64{}
	}
	if r.cfg.Retention == 0 {
		// Nothing moves to outbox_published, so nothing there to replace.
		return r.read(ctx, conn, selectBatchDeletingSQL, acked, inFlight)
	}
	out, more, err := r.read(ctx, conn, selectBatchSQL, acked, inFlight)
	if archiveConflict(err) {
		r.log.Warn("outbox_published already holds ids being moved there; replacing them (was the outbox's id sequence reset?)", "error", err)
		out, more, err = r.read(ctx, conn, selectBatchReplacingSQL, acked, inFlight)
	}
	return out, more, err
}

// read runs a batch read.
func (r *Relay) read(ctx context.Context, conn *pgx.Conn, query string, acked, inFlight []int64) ([]batchRow, bool, error) {
	rs, err := conn.Query(ctx, query, r.cfg.BatchSize, acked, inFlight)
	if err != nil {
		return nil, false, err
	}
	defer rs.Close()
	var (
		out   []batchRow
		bytes int
		more  bool
	)
	for rs.Next() {
		var (
			rw      batchRow
			headers []byte
		)
		if err := rs.Scan(&rw.id, &rw.topic, &rw.key, &rw.payload, &rw.schemaVersion, &headers, &rw.createdAt); err != nil {
			return nil, false, err
		}
		if rw.headers, err = KafkaHeaders(headers); err != nil {
			return nil, false, fmt.Errorf("headers of outbox row %d: %w", rw.id, err)
		}
		size := len(rw.key) + len(rw.payload) + 5 + len(headers) + 64
		if len(out) > 0 && bytes+size > r.cfg.MaxBatchBytes {
			more = true // the rest goes in the next batch, in order
			break
		}
		bytes += size
		out = append(out, rw)
	}
	// Close reads the statement to its end: only then is the mark known to
	// have committed.
	rs.Close()
	if err := rs.Err(); err != nil {
		return nil, false, err
	}
	return out, more || len(out) == r.cfg.BatchSize, nil
}

// archiveConflict reports whether err is outbox_published refusing an id it
// holds already.
func archiveConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "outbox_published_pkey"
}

// mark marks ids published outside a batch read, on db (the lock
// connection, or the pool once leading ends).
func (r *Relay) mark(ctx context.Context, db Execer, ids []int64) error {
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
		failing := fmt.Errorf("%s: %w", what, err)
		r.failing.Store(&failing)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.metrics.failures.WithLabelValues(what).Inc()
		d := backoff.Delay(r.cfg.BackoffMin, r.cfg.BackoffMax, attempt)
		r.log.Warn("relay step failed; retrying", "step", what, "attempt", attempt, "backoff", d.String(), "error", err)
		if !backoff.Sleep(ctx, d) {
			return ctx.Err()
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		perr := conn.Ping(pctx)
		cancel()
		if perr != nil && ctx.Err() == nil {
			return fmt.Errorf("lock connection lost during %s: %w", what, perr)
		}
	}
}
