// Package outbox relays the transactional outbox to Kafka.
//
// Guarantees (invariants 2 and 3 of the design):
//   - At least once: a row is marked published only after the broker
//     acknowledged it with acks=all. A crash between the two, or a produce
//     that was applied but answered with an error, publishes it again, with
//     the same event_id header.
//   - Order: one relay publishes at a time (the holder of a PostgreSQL
//     advisory lock on a dedicated connection); it publishes unpublished rows
//     in outbox id order, and retries a failed batch before anything after it.
//     Each Kafka write carries at most one record batch per partition, so a
//     partition can never keep a later batch while an earlier one failed.
//   - Liveness: a registry or broker outage only delays publishing; the relay
//     backs off exponentially with jitter and resumes by itself. When the
//     holder dies its connection closes, PostgreSQL frees the lock, and a
//     standby takes over within LockRetryInterval.
//
// Two relays can briefly overlap only if the leader's lock connection is lost
// while it is writing a batch; the consequence is duplicates, never loss, and
// the leader stops publishing as soon as it notices.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/event/envelope"
	"github.com/ordersonkafka/orders/internal/platform/backoff"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
)

// Framer frames an Avro body in the Confluent wire format for topic's value
// subject. An error (registry unreachable) makes the relay retry later.
type Framer interface {
	Frame(ctx context.Context, topic string, schemaVersion int, payload []byte) ([]byte, error)
}

// DefaultLockKey is the advisory lock key of the relay; every replica of one
// database must use the same key.
const DefaultLockKey int64 = 0x6f7574626f78 // "outbox"

// Config configures a Relay. What an operator sets (RELAY_* in order-api's
// configuration, where their defaults live) is required here; the rest
// takes the default named when zero.
type Config struct {
	// DatabaseURL opens the relay's dedicated connection, which holds the
	// advisory lock, LISTENs for new rows and reads, marks (moves) and
	// purges the outbox (with synchronous_commit off: see lead). Required.
	DatabaseURL string
	// Pool writes the last marks when leading ends (the dedicated
	// connection, which runs the batch queries, may be gone). Required.
	Pool *pgxpool.Pool
	// Brokers is the Kafka bootstrap list. Required.
	Brokers []string
	// Security is how to connect to them (TLS, SASL); nil: plain text.
	Security *kafkaconn.Security
	// Framer frames payloads with their registry schema ID. Required.
	Framer Framer
	// BatchSize is the most rows per Kafka write. Required.
	BatchSize int
	// MaxBatchBytes caps the keys, values and headers of one write, so each
	// partition's share fits in one record batch under the broker's 1 MiB
	// limit. Default 900 KiB; a single larger row still goes alone.
	MaxBatchBytes int
	// PollInterval is how long the relay waits for a notification before
	// looking anyway. Required.
	PollInterval time.Duration
	// LockKey is the advisory lock key. Default DefaultLockKey.
	LockKey int64
	// LockRetryInterval is how often a standby tries to take the lock.
	// Required.
	LockRetryInterval time.Duration
	// Retention is how long published rows are kept in outbox_published,
	// where the batch read moves them. 0 deletes each row once Kafka
	// acknowledged it, in place of moving it: no trail of what was
	// published, and a backlog drained about 1.5 times as fast
	// (docs/performance.md).
	Retention time.Duration
	// PurgeInterval is how often the leader deletes rows past Retention.
	// Default 1m.
	PurgeInterval time.Duration
	// BackoffMin and BackoffMax bound the delay between attempts of a failed
	// step: it doubles from min to max, with jitter. Required.
	BackoffMin, BackoffMax time.Duration
	// WriteTimeout bounds one Kafka write. Default 10s.
	WriteTimeout time.Duration
	// Logger receives leadership changes, failures and purges. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the relay's measurements. Default: metrics kept on a
	// registry of their own, which nobody scrapes.
	Metrics *Metrics
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 900 << 10
	}
	if c.LockKey == 0 {
		c.LockKey = DefaultLockKey
	}
	def(&c.PurgeInterval, time.Minute)
	def(&c.WriteTimeout, 10*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(prometheus.NewRegistry())
	}
}

// Validate reports what is missing or inconsistent, after defaults.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("outbox: DatabaseURL is required"))
	}
	if c.Pool == nil {
		errs = append(errs, errors.New("outbox: Pool is required"))
	}
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("outbox: Brokers is required"))
	}
	if c.Framer == nil {
		errs = append(errs, errors.New("outbox: Framer is required"))
	}
	if c.BatchSize < 1 || c.MaxBatchBytes < 1 {
		errs = append(errs, errors.New("outbox: BatchSize and MaxBatchBytes must be positive"))
	}
	if c.PollInterval <= 0 || c.LockRetryInterval <= 0 {
		errs = append(errs, errors.New("outbox: PollInterval and LockRetryInterval must be positive"))
	}
	if c.Retention < 0 {
		errs = append(errs, errors.New("outbox: Retention must not be negative"))
	}
	if c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("outbox: backoff %s..%s: want 0 < min <= max", c.BackoffMin, c.BackoffMax))
	}
	return errors.Join(errs...)
}

// Relay publishes the outbox. Create it with New and call Run once.
type Relay struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	writer  *kafka.Writer
	leader  atomic.Bool
	failing atomic.Pointer[error] // the step failing now, nil when none
	wake    chan struct{}         // in-process wake-ups, see Wake
}

// Wake tells the relay that rows were committed, as a NOTIFY does, without
// a round trip to PostgreSQL; it never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Health returns nil while the relay is publishing or standing by, or the
// step it is retrying now ("write to Kafka: …", "frame: …" for the registry).
func (r *Relay) Health() error {
	if p := r.failing.Load(); p != nil {
		return *p
	}
	return nil
}

// New validates cfg and returns a Relay; it connects to nothing until Run.
func New(cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Transport:    cfg.Security.Transport(),
		RequiredAcks: kafka.RequireAll,
		Balancer:     &kafka.Murmur2Balancer{Consistent: true},
		// Each WriteMessages call fills its partitions' batches under the
		// partition's lock, so the timer cannot split a call: a tiny
		// timeout only stops the writer from waiting for more messages
		// that will not come (the relay writes synchronously, alone).
		BatchTimeout:           time.Microsecond,
		BatchSize:              cfg.BatchSize,                      // set to each write's size by write
		BatchBytes:             int64(cfg.MaxBatchBytes) + 128<<10, // room for kafka-go's per-message overhead
		MaxAttempts:            1,                                  // the relay retries whole batches itself
		WriteTimeout:           cfg.WriteTimeout,
		AllowAutoTopicCreation: false,
	}
	return &Relay{cfg: cfg, log: cfg.Logger.With("component", "outbox-relay"), metrics: cfg.Metrics, writer: w, wake: make(chan struct{}, 1)}, nil
}

// IsLeader reports whether this relay holds the lock and publishes.
func (r *Relay) IsLeader() bool { return r.leader.Load() }

// Run contends for the lock and, while holding it, publishes. It returns nil
// when ctx ends, after the batch in flight is finished or abandoned (never
// marked unless acknowledged), with its connection and writer closed.
func (r *Relay) Run(ctx context.Context) error {
	defer r.writer.Close()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		if conn == nil || conn.IsClosed() {
			c, err := pgx.Connect(ctx, r.cfg.DatabaseURL)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.log.Warn("relay cannot connect to the database", "error", err)
			}
			conn = c
		}
		if conn != nil {
			var locked bool
			err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", r.cfg.LockKey).Scan(&locked)
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				r.log.Warn("relay cannot try the lock", "error", err)
				conn.Close(context.Background())
				conn = nil
			case locked:
				r.leader.Store(true)
				r.metrics.leader.Set(1)
				r.log.Info("relay is the leader: publishing")
				err := r.lead(ctx, conn)
				r.leader.Store(false)
				r.failing.Store(nil)
				r.metrics.leader.Set(0)
				// Unlock at once, so a standby takes over (and a stopped
				// relay holds nothing) without waiting for this backend to
				// exit; closing the connection releases the lock whatever
				// state it is in, only later.
				uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				_, _ = conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", r.cfg.LockKey)
				cancel()
				conn.Close(context.Background())
				conn = nil
				if ctx.Err() != nil {
					r.log.Info("relay stopped")
					return nil
				}
				r.log.Warn("relay lost leadership", "error", err)
			}
		}
		if !backoff.Sleep(ctx, r.cfg.LockRetryInterval) {
			return nil
		}
	}
}

// lead publishes until ctx ends or the lock connection fails.
func (r *Relay) lead(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if err := prepareSession(ctx, conn); err != nil {
		return err
	}
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
	for {
		if err := r.drain(ctx, conn, &acked); err != nil {
			return err
		}
		if r.cfg.Retention > 0 && time.Since(lastPurge) >= r.cfg.PurgeInterval {
			r.purge(ctx, conn)
			lastPurge = time.Now()
		}
		select {
		case <-r.wake: // woken in process while draining: drain again
			continue
		default:
		}
		wctx, cancel := context.WithTimeout(ctx, r.cfg.PollInterval)
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

type row struct {
	id            int64
	topic         string
	key           []byte
	payload       []byte
	schemaVersion int
	headers       []kafka.Header // in envelope.HeaderOrder
	createdAt     time.Time
}

// selectBatchSQL moves the rows Kafka acknowledged ($2) to outbox_published
// and reads the next batch in one statement, leaving out the batch being
// written to Kafka ($3). The outer SELECT sees the snapshot from before the
// DELETE, hence the explicit exclusion of $2 too, written as NOT IN
// (subquery) so PostgreSQL hashes it (id <> ALL($2) compared every row with
// every id: 16% slower draining a backlog in batches of 1000).
const selectBatchSQL = `WITH ` + moveCTE + `, archived AS (` + archiveSQL + `)` + selectNextSQL

// markSQL moves ($1) published rows outside a batch read.
var markSQL = `WITH ` + strings.Replace(moveCTE, "$2", "$1", 1) + archiveSQL

const (
	moveCTE = `moved AS (
    DELETE FROM outbox WHERE id = ANY($2::bigint[])
    RETURNING id, event_id, topic, message_key, payload, schema_version, headers, created_at
)`
	archiveSQL = `
INSERT INTO outbox_published (id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at, now() FROM moved`
	selectNextSQL = `
SELECT id, topic, message_key, payload, schema_version, headers, created_at
FROM outbox WHERE id NOT IN (SELECT unnest($2::bigint[] || $3::bigint[])) ORDER BY id LIMIT $1`
	// replaceArchived is added to the archiving insert when outbox_published
	// already holds an id being moved (the outbox's sequence was reset by
	// hand): the old row is replaced, so publishing goes on. Only then: it
	// makes the move about a fifth slower.
	replaceArchived = `
ON CONFLICT (id) DO UPDATE SET event_id = excluded.event_id, topic = excluded.topic, message_key = excluded.message_key,
    payload = excluded.payload, schema_version = excluded.schema_version, headers = excluded.headers,
    created_at = excluded.created_at, published_at = excluded.published_at`
)

// replacing returns query with replaceArchived added to its archiving insert.
func replacing(query string) string {
	return strings.Replace(query, archiveSQL, archiveSQL+replaceArchived, 1)
}

// archiveConflict reports whether err is outbox_published refusing an id it
// holds already.
func archiveConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "outbox_published_pkey"
}

// mark marks ids published outside a batch read, on db (the lock
// connection, or the pool once leading ends).
func (r *Relay) mark(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, ids []int64) error {
	if r.cfg.Retention == 0 {
		_, err := db.Exec(ctx, deleteSQL, ids)
		return err
	}
	_, err := db.Exec(ctx, markSQL, ids)
	if archiveConflict(err) {
		_, err = db.Exec(ctx, replacing(markSQL), ids)
	}
	return err
}

// With Retention 0, published rows are deleted instead of kept.
const (
	selectBatchDeletingSQL = `
WITH deleted AS (
    DELETE FROM outbox WHERE id = ANY($2::bigint[])
)
SELECT id, topic, message_key, payload, schema_version, headers, created_at
FROM outbox WHERE id NOT IN (SELECT unnest($2::bigint[] || $3::bigint[])) ORDER BY id LIMIT $1`
	deleteSQL = `DELETE FROM outbox WHERE id = ANY($1)`
)

// flight is a batch being written to Kafka by a goroutine of its own.
type flight struct {
	rows    []row
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
			err = r.retryFrom(ctx, conn, stepWrite, err, func() error { return r.write(ctx, f) })
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
		return r.retryFrom(ctx, conn, what, err, run)
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
			rows []row
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
func (r *Relay) frame(ctx context.Context, rows []row, msgs []kafka.Message) error {
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

func message(rw row, value []byte) kafka.Message {
	return kafka.Message{Topic: rw.topic, Key: rw.key, Value: value, Headers: rw.headers}
}

// readBatch marks acked as published and returns the oldest unpublished
// rows but those in flight, at most BatchSize of them and MaxBatchBytes in
// all, and whether it stopped at one of those limits (more may wait).
func (r *Relay) readBatch(ctx context.Context, conn *pgx.Conn, acked, inFlight []int64) ([]row, bool, error) {
	if acked == nil {
		acked = []int64{}
	}
	if inFlight == nil {
		inFlight = []int64{}
	}
	query := selectBatchSQL
	if r.cfg.Retention == 0 {
		query = selectBatchDeletingSQL
	}
	out, more, err := r.read(ctx, conn, query, acked, inFlight)
	if archiveConflict(err) {
		r.log.Warn("outbox_published already holds ids being moved there; replacing them (was the outbox's id sequence reset?)", "error", err)
		out, more, err = r.read(ctx, conn, replacing(query), acked, inFlight)
	}
	return out, more, err
}

// read runs a batch read.
func (r *Relay) read(ctx context.Context, conn *pgx.Conn, query string, acked, inFlight []int64) ([]row, bool, error) {
	rs, err := conn.Query(ctx, query, r.cfg.BatchSize, acked, inFlight)
	if err != nil {
		return nil, false, err
	}
	defer rs.Close()
	var (
		out   []row
		bytes int
		more  bool
	)
	for rs.Next() {
		var (
			rw      row
			headers []byte
		)
		if err := rs.Scan(&rw.id, &rw.topic, &rw.key, &rw.payload, &rw.schemaVersion, &headers, &rw.createdAt); err != nil {
			return nil, false, err
		}
		if rw.headers, err = envelope.KafkaHeaders(headers); err != nil {
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

const purgeSQL = `
DELETE FROM outbox_published WHERE id IN (
    SELECT id FROM outbox_published WHERE published_at < now() - $1::interval ORDER BY published_at LIMIT 5000)`

// purge deletes published rows past retention in chunks, so one purge never
// holds a long transaction. Failures are logged and retried next interval.
func (r *Relay) purge(ctx context.Context, conn *pgx.Conn) {
	total := int64(0)
	for ctx.Err() == nil {
		tag, err := conn.Exec(ctx, purgeSQL, r.cfg.Retention)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("outbox purge failed", "error", err)
			}
			return
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 5000 {
			break
		}
	}
	if total > 0 {
		r.log.Info("outbox purged", "rows", total, "retention", r.cfg.Retention.String())
	}
}

// retry runs step until it succeeds, backing off between attempts. Before each
// new attempt it checks the lock connection: if it is gone, so is leadership,
// and the step is abandoned (the next leader redoes it).
func (r *Relay) retry(ctx context.Context, conn *pgx.Conn, what string, step func() error) error {
	return r.retryFrom(ctx, conn, what, step(), step)
}

// retryFrom is retry for a step whose first attempt, made elsewhere, ended
// with err.
func (r *Relay) retryFrom(ctx context.Context, conn *pgx.Conn, what string, err error, step func() error) error {
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
