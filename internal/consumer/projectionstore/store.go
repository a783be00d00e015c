// Package projectionstore is order-consumer's database: the ledger of every
// event it judged (processed_events), what it holds of each order
// (order_versions), and the read models that receive the events it applied,
// all written in one transaction per batch. It also keeps the log of DLQ
// replays and the origin a rebuild started from, and rebuilds the ledger and
// every read model beside the live ones.
//
// Guarantees (docs/design.md, invariants 4 and 7): Apply is idempotent and
// order-safe. It reads what the database holds of the batch's orders and
// which of its event IDs the ledger knows, has the domain's state machine
// judge every event (order.Machine.Judge), and writes the verdicts: a new
// event ID applied or stale gets one ledger row, a known one only counts a
// delivery more, an event out of sequence is not recorded (the caller
// dead-letters it; it can apply once what precedes it has). Only applied
// events reach the read models, in the order they were applied, so a read
// model only ever holds states the order went through, in order. No SQL
// here knows a status or a transition.
//
// A batch is one transaction of two round trips — the locks and the reads,
// then the writes and the commit — whatever its length or the length of
// its orders' histories. Apply calls touching the same order are serialized
// by transaction-scoped advisory locks per order, taken before the reads,
// so the verdict each call returns is the one recorded.
package projectionstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/order"
)

// ReadModel is a view of the orders kept in the consumer's database: it
// receives the events of each batch that were applied, inside the batch's
// transaction, and writes them to tables of its own, created by a migration
// of its own. A rebuild replaces those tables with ones built from the whole
// topic. Implementations must be safe for concurrent use, and must apply
// what they receive idempotently under version guards: the same applied
// event never comes twice, but a read model added to a running service
// meets orders it has never seen.
type ReadModel interface {
	// Name names the read model in metrics (read_model label), logs and
	// errors: lower case, stable.
	Name() string
	// Tables lists the tables the read model writes, which a rebuild moves
	// in.
	Tables() []string
	// Queue adds to b the statements that write applied, in order (an
	// order's events in version order, each with the state it moved the
	// order from). They run in the batch's transaction, after the ledger's
	// statements; their results are read and discarded, and an error of any
	// of them fails the batch. A returned error fails the batch too, as
	// permanent: it means applied cannot be written (say, a value it cannot
	// encode).
	Queue(b *pgx.Batch, applied []order.Applied) error
}

// Store is the consumer's database. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	machine *order.Machine
	models  []ReadModel
	metrics *Metrics
}

// New returns a Store on pool, whose database has migrations.Projection
// applied, judging events with machine and writing what it applies to
// models. metrics may be nil.
func New(pool *pgxpool.Pool, machine *order.Machine, metrics *Metrics, models ...ReadModel) *Store {
	return &Store{pool: pool, machine: machine, models: models, metrics: metrics}
}

// ReadModels returns the read models the store writes to.
func (s *Store) ReadModels() []ReadModel { return slices.Clone(s.models) }

// Ping reports whether the database answers, for readiness checks.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// lockNamespace is the first key of the two-key advisory locks taken per
// order. Two-key locks live apart from single-bigint ones (goose's migration
// lock), so the two cannot collide.
const lockNamespace int32 = 0x70726f6a // "proj"

// The first round trip: the batch's transaction begins, takes its orders'
// locks, and reads, under them, what the database holds of its orders and
// which of its event IDs the ledger knows. The lock keys come sorted, so two
// batches always lock in the same order and cannot deadlock; a hash
// collision only serializes two unrelated orders. The reads are statements
// of their own, after the locks, so they see what the last holder of a lock
// committed.
const (
	lockOrdersSQL = `SELECT pg_advisory_xact_lock($1::int, k) FROM unnest($2::int[]) AS k`
	heldSQL       = `SELECT order_id, version, status FROM order_versions WHERE order_id = ANY($1::uuid[])`
	knownSQL      = `SELECT event_id FROM processed_events WHERE event_id = ANY($1::uuid[])`
)

// The second round trip writes the verdicts and commits. Orders and event
// IDs the reads found are updated, the others inserted: under the locks
// nothing else can have inserted them since. The updates are guarded by
// version all the same, so nothing ever moves an order backwards.
const (
	recordSQL = `
INSERT INTO processed_events (event_id, order_id, version, event_type, outcome, deliveries)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::int[])`
	countDeliveriesSQL = `
UPDATE processed_events p SET deliveries = p.deliveries + d.n
FROM unnest($1::uuid[], $2::int[]) AS d(event_id, n)
WHERE p.event_id = d.event_id`
	insertVersionsSQL = `
INSERT INTO order_versions (order_id, version, status)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[])`
	updateVersionsSQL = `
UPDATE order_versions v SET version = n.version, status = n.status, updated_at = now()
FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS n(order_id, version, status)
WHERE v.order_id = n.order_id AND v.version < n.version`
)

// Apply applies events in slice order, in one transaction, and returns one
// outcome per event (same index): applied, duplicate, stale, or out of
// sequence (not applied, not recorded: the caller dead-letters it). Events of
// one order must come in the order they were produced (Kafka's per-partition
// order); events of different orders may interleave freely. The events must
// have passed the store's machine's CheckEvent: Apply trusts their type,
// status and version.
//
// Error contract: on error nothing of the batch is stored (it may be retried
// as a whole; if the commit was lost in transit, the retry finds the events
// recorded and reports them as duplicates). IsPermanent(err) reports whether
// some event's data can never be stored (retrying the same batch cannot
// succeed; apply its events one by one to find it); any other error is
// transient (database unreachable or restarting, timeouts, cancellation).
func (s *Store) Apply(ctx context.Context, events []order.Event) ([]order.Outcome, error) {
	if len(events) == 0 {
		return nil, nil
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply %d events: %w", len(events), err)
	}
	defer conn.Release()
	outcomes, err := s.apply(ctx, conn.Conn(), events)
	if err != nil {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			// A failed batch leaves its transaction open (aborted); the pool
			// would close such a connection, so roll back and keep it.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
		return nil, fmt.Errorf("apply %d events: %w", len(events), err)
	}
	return outcomes, nil
}

func (s *Store) apply(ctx context.Context, conn *pgx.Conn, events []order.Event) ([]order.Outcome, error) {
	orders := make([][16]byte, 0, len(events)) // not uuid.UUID: its driver.Valuer costs a string round trip per element
	ids := make([][16]byte, len(events))
	locks := make([]int32, 0, len(events))
	seen := make(map[uuid.UUID]bool, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
		if id := ev.Order.ID; !seen[id] {
			seen[id] = true
			orders = append(orders, id)
			locks = append(locks, lockKey(id))
		}
	}
	slices.Sort(locks)
	locks = slices.Compact(locks)

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockOrdersSQL, lockNamespace, locks)
	b.Queue(heldSQL, orders)
	b.Queue(knownSQL, ids)
	held, known, err := readHeld(conn.SendBatch(ctx, b), len(orders))
	if err != nil {
		return nil, err
	}
	verdicts := s.machine.Judge(events, held, func(id uuid.UUID) bool { return known[id] })
	w, err := s.plan(events, verdicts, held)
	if err == nil {
		err = w.exec(ctx, conn)
	}
	if err != nil {
		var me *ReadModelError
		if errors.As(err, &me) {
			s.metrics.failed(me.Model)
		}
		return nil, err
	}
	s.metrics.applied(s.models, len(w.applied))
	outcomes := make([]order.Outcome, len(verdicts))
	for i, v := range verdicts {
		outcomes[i] = v.Outcome
	}
	return outcomes, nil
}

// readHeld reads the first round trip's results.
func readHeld(br pgx.BatchResults, orders int) (held map[uuid.UUID]order.Held, known map[uuid.UUID]bool, err error) {
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if _, err := br.Exec(); err != nil {
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return nil, nil, fmt.Errorf("lock orders: %w", err)
	}
	held = make(map[uuid.UUID]order.Held, orders)
	var (
		id      uuid.UUID
		version int64
		status  string
	)
	rows, _ := br.Query() // its error is rows'
	_, err = pgx.ForEachRow(rows, []any{&id, &version, &status}, func() error {
		held[id] = order.Held{Version: version, Status: order.Status(status)}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read order versions: %w", err)
	}
	known = map[uuid.UUID]bool{}
	rows, _ = br.Query()
	if _, err = pgx.ForEachRow(rows, []any{&id}, func() error { known[id] = true; return nil }); err != nil {
		return nil, nil, fmt.Errorf("read the ledger: %w", err)
	}
	return held, known, nil
}

// writes is the second round trip: what the verdicts say to write, in
// statements that each cover the whole batch.
type writes struct {
	batch   pgx.Batch
	owners  []string // for each statement, the read model that queued it; "" for the store's own
	applied []order.Applied
}

func (w *writes) queue(owner, sql string, args ...any) {
	w.batch.Queue(sql, args...)
	w.owners = append(w.owners, owner)
}

// plan returns the writes of verdicts: the ledger's new rows and its
// counts of deliveries, the orders' new versions, every read model's
// statements, and the commit.
func (s *Store) plan(events []order.Event, verdicts []order.Verdict, held map[uuid.UUID]order.Held) (*writes, error) {
	w := &writes{}
	var (
		rec struct {
			ids, orders [][16]byte
			versions    []int64
			types       []string
			outcomes    []string
			deliveries  []int32
		}
		recorded   = map[uuid.UUID]int{}   // event ID → its row in rec
		counted    = map[uuid.UUID]int32{} // known event ID → deliveries in this batch
		countOrder [][16]byte
		last       = map[uuid.UUID]int{} // order ID → its newest applied event
		lastOrder  []uuid.UUID
	)
	for i, v := range verdicts {
		ev := events[i]
		switch v.Outcome {
		case order.OutcomeApplied, order.OutcomeStale:
			recorded[ev.ID] = len(rec.ids)
			rec.ids = append(rec.ids, ev.ID)
			rec.orders = append(rec.orders, ev.Order.ID)
			rec.versions = append(rec.versions, ev.Order.Version)
			rec.types = append(rec.types, string(ev.Type))
			rec.outcomes = append(rec.outcomes, string(v.Outcome))
			rec.deliveries = append(rec.deliveries, 1)
			if v.Outcome == order.OutcomeApplied {
				w.applied = append(w.applied, order.Applied{Event: ev, From: v.From})
				if _, ok := last[ev.Order.ID]; !ok {
					lastOrder = append(lastOrder, ev.Order.ID)
				}
				last[ev.Order.ID] = i
			}
		case order.OutcomeDuplicate:
			if j, ok := recorded[ev.ID]; ok {
				rec.deliveries[j]++ // recorded earlier in this batch
				continue
			}
			if _, ok := counted[ev.ID]; !ok {
				countOrder = append(countOrder, ev.ID)
			}
			counted[ev.ID]++
		}
	}
	if len(rec.ids) > 0 {
		w.queue("", recordSQL, rec.ids, rec.orders, rec.versions, rec.types, rec.outcomes, rec.deliveries)
	}
	if len(countOrder) > 0 {
		n := make([]int32, len(countOrder))
		for i, id := range countOrder {
			n[i] = counted[id]
		}
		w.queue("", countDeliveriesSQL, countOrder, n)
	}
	var ins, upd struct {
		ids      [][16]byte
		versions []int64
		statuses []string
	}
	for _, id := range lastOrder {
		o := events[last[id]].Order
		t := &ins
		if _, ok := held[id]; ok {
			t = &upd
		}
		t.ids, t.versions, t.statuses = append(t.ids, id), append(t.versions, o.Version), append(t.statuses, string(o.Status))
	}
	if len(ins.ids) > 0 {
		w.queue("", insertVersionsSQL, ins.ids, ins.versions, ins.statuses)
	}
	if len(upd.ids) > 0 {
		w.queue("", updateVersionsSQL, upd.ids, upd.versions, upd.statuses)
	}
	if len(w.applied) > 0 {
		for _, m := range s.models {
			before := w.batch.Len()
			if err := m.Queue(&w.batch, w.applied); err != nil {
				return nil, &ReadModelError{Model: m.Name(), Err: err, unwritable: true}
			}
			for range w.batch.Len() - before {
				w.owners = append(w.owners, m.Name())
			}
		}
	}
	w.queue("", "COMMIT")
	return w, nil
}

// exec sends the writes and reads every statement's result, naming the read
// model whose statement failed.
func (w *writes) exec(ctx context.Context, conn *pgx.Conn) (err error) {
	br := conn.SendBatch(ctx, &w.batch)
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	for _, owner := range w.owners {
		if _, err := br.Exec(); err != nil {
			if owner != "" {
				return &ReadModelError{Model: owner, Err: err}
			}
			return err
		}
	}
	return nil
}

// ReadModelError is a batch that failed in a read model's statements, or
// that a read model could not write.
type ReadModelError struct {
	Model      string
	Err        error
	unwritable bool // Queue refused the batch: permanent whatever Err is
}

func (e *ReadModelError) Error() string { return "read model " + e.Model + ": " + e.Err.Error() }
func (e *ReadModelError) Unwrap() error { return e.Err }

// lockKey folds an order ID into an advisory lock key. UUIDv7 IDs spread
// their randomness over the last bytes, so those are folded in too.
func lockKey(id uuid.UUID) int32 {
	a := binary.BigEndian.Uint64(id[:8])
	b := binary.BigEndian.Uint64(id[8:])
	x := a ^ b
	return int32(uint32(x) ^ uint32(x>>32))
}

// ProcessedEvent is the ledger's record of one event_id.
type ProcessedEvent struct {
	EventID    uuid.UUID
	OrderID    uuid.UUID
	Version    int64
	Type       order.EventType
	Outcome    order.Outcome // OutcomeApplied or OutcomeStale: what its first delivery did
	AppliedAt  time.Time
	Deliveries int // how many times it was delivered, the first included
}

// ErrNotProcessed is returned by Processed for an event_id never applied.
var ErrNotProcessed = errors.New("event not processed")

const selectProcessedSQL = `
SELECT event_id, order_id, version, event_type, outcome, applied_at, deliveries
FROM processed_events WHERE event_id = $1`

// Processed returns the ledger's record of an event, or an error wrapping
// ErrNotProcessed.
func (s *Store) Processed(ctx context.Context, eventID uuid.UUID) (ProcessedEvent, error) {
	var (
		pe          ProcessedEvent
		typ, result string
	)
	err := s.pool.QueryRow(ctx, selectProcessedSQL, eventID).Scan(&pe.EventID, &pe.OrderID, &pe.Version,
		&typ, &result, &pe.AppliedAt, &pe.Deliveries)
	if errors.Is(err, pgx.ErrNoRows) {
		return ProcessedEvent{}, fmt.Errorf("get processed event %s: %w", eventID, ErrNotProcessed)
	}
	if err != nil {
		return ProcessedEvent{}, fmt.Errorf("get processed event %s: %w", eventID, err)
	}
	pe.Type, pe.Outcome, pe.AppliedAt = order.EventType(typ), order.Outcome(result), pe.AppliedAt.UTC()
	return pe, nil
}

// IsPermanent reports whether err is a data error that retrying cannot fix:
// a batch a read model cannot write (ReadModelError from its Queue), or
// PostgreSQL SQLSTATE class 22 (data exception: a value out of range, too
// long, malformed) or 23 (integrity constraint violation: a CHECK or NOT
// NULL the event breaks). Everything else, including connection failures,
// server shutdown (57P01), serialization failures and deadlocks (40001,
// 40P01), timeouts and cancellation, is transient.
func IsPermanent(err error) bool {
	var me *ReadModelError
	if errors.As(err, &me) && me.unwritable {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23":
		return true
	}
	return false
}

// purgeLedgerSQL deletes up to $2 ledger rows older than $1, oldest first,
// skipping rows another purge holds.
const purgeLedgerSQL = `
DELETE FROM processed_events WHERE event_id IN (
    SELECT event_id FROM processed_events WHERE applied_at < now() - $1::interval
    ORDER BY applied_at LIMIT $2 FOR UPDATE SKIP LOCKED)`

// PurgeLedger deletes at most limit ledger rows recorded more than retention
// ago and returns how many it deleted. A redelivery of a purged event is
// then judged by version alone: it changes nothing (its version is not newer
// than what the order holds) and is recorded as a new, stale event.
func (s *Store) PurgeLedger(ctx context.Context, retention time.Duration, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, purgeLedgerSQL, retention, limit)
	if err != nil {
		return 0, fmt.Errorf("purge ledger: %w", err)
	}
	return tag.RowsAffected(), nil
}
