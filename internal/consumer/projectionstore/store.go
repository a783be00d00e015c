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
// delivery more, an event that came before its predecessor is parked
// (parked_events) until the batch that applies the predecessor applies it
// too, and an event that can never apply is not recorded (the caller
// dead-letters it; a parked one that turns out never to apply is marked to
// be dead-lettered: Leaving). Only applied events reach the read models, in
// the order they were applied, so a read model only ever holds states the
// order went through, in order. No SQL here knows a status or a
// transition.
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
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
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
	// OnLeaving, if set, is called after a batch marked parked events to
	// be dead-lettered (Leaving), so that they are soon. It must not block.
	OnLeaving func()

	pool    *pgxpool.Pool
	machine *order.Machine
	models  []ReadModel
	metrics *Metrics
	// lockTimeout, as PostgreSQL's lock_timeout setting
	lockTimeout string
	// roundTrip bounds each round trip of a batch, its lock waits
	// included (see WithTimeout), and names the server in its errors
	roundTrip pgdb.Calls
}

// New returns a Store on pool, whose database has migrations.Projection
// applied, judging events with machine and writing what it applies to
// models. metrics may be nil.
func New(pool *pgxpool.Pool, machine *order.Machine, metrics *Metrics, models ...ReadModel) *Store {
	s := &Store{pool: pool, machine: machine, models: models, metrics: metrics}
	return s.WithTimeout(pgdb.CallTimeout)
}

// WithTimeout sets how long the store waits for the database (d:
// DATABASE_TIMEOUT, pgdb.CallTimeout by default), and returns s. Call it
// before s is used. A batch waits for its orders' locks at most lockWaits
// times d, and each of its round trips, lock waits included, is bounded by
// lockWaits+1 times d: past it the connection is dropped and the batch
// retried, as a server that does not answer at all is down, not slow.
func (s *Store) WithTimeout(d time.Duration) *Store {
	s.setLockTimeout(lockWaits * d)
	s.roundTrip = pgdb.CallsTo(s.pool, (lockWaits+1)*d)
	return s
}

// explain names the server, and the bound if it ran out, in a failure to
// reach or use the database; a refusal of the data (IsPermanent), which
// becomes a dead letter's message, is left as the server said it.
func (s *Store) explain(err error) error {
	if IsPermanent(err) {
		return err
	}
	return s.roundTrip.Explain(err)
}

func (s *Store) setLockTimeout(d time.Duration) {
	s.lockTimeout = fmt.Sprintf("%dms", d.Milliseconds())
}

// ReadModels returns the read models the store writes to.
func (s *Store) ReadModels() []ReadModel { return slices.Clone(s.models) }

// Ping reports whether the database answers, for readiness checks; its
// error names the server.
func (s *Store) Ping(ctx context.Context) error { return pgdb.Ping(ctx, s.pool) }

// lockWaits, times the store's timeout, bounds how long a batch waits for a
// lock (an order's, or a row another consumer's batch writes): 10s by
// default. A batch that waits longer fails, transiently, and is retried, so
// a peer that holds a lock too long shows as a failing dependency instead
// of a consumer silently stuck. The holder is another batch, which holds
// its locks for its two round trips, or a request's change, one call: each
// is bounded by the timeout, so only a database in trouble makes a lock
// wait longer than twice it.
const lockWaits = 2

// errBusy is a next batch that could not take its orders' locks at once.
var errBusy = errors.New("another transaction holds one of its orders")

// lockNamespace is the first key of the two-key advisory locks taken per
// order. Two-key locks live apart from single-bigint ones (goose's migration
// lock), so the two cannot collide.
const lockNamespace int32 = 0x70726f6a // "proj"

// The first round trip: the batch's transaction begins, sets how its
// statements are planned, takes its orders' locks, and reads, under them,
// what the database holds of its orders and which of its event IDs the
// ledger knows. The lock keys come sorted, so two batches always lock in
// the same order and cannot deadlock; a hash collision only serializes two
// unrelated orders. The reads are statements of their own, after the locks,
// so they see what the last holder of a lock committed.
//
// Every statement of a batch finds at most a batch of rows by key. Left to
// itself, the planner chose a sequential scan (or a hash join over one) for
// a few hundred keys in a table of tens of thousands of rows, which it
// costs as cheaper than as many index probes: a scan of a table that grows
// with every batch, 2 to 14 ms a statement at 60,000 events, and the
// consumer's drain fell to a third. planSQL turns those plans off for the
// batch's transaction only (set_config's is_local), leaving index probes,
// and bounds how long any of its statements waits for a lock (lockTimeout).
//
// A batch begun on its own (Begin) waits for its orders' locks; one begun
// in the round trip of the last one's commit (CommitAndBegin) only tries
// them (tryLockOrdersSQL): PostgreSQL answers a round trip's statements
// together, so waiting there would hold back the news that the last batch
// committed, and its offsets, behind a lock someone else holds.
const (
	planSQL = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
       set_config('enable_mergejoin', 'off', true), set_config('lock_timeout', $1, true)`
	lockOrdersSQL    = `SELECT pg_advisory_xact_lock($1::int, k) FROM unnest($2::int[]) AS k`
	tryLockOrdersSQL = `SELECT coalesce(bool_and(pg_try_advisory_xact_lock($1::int, k)), true) FROM unnest($2::int[]) AS k`
	heldSQL          = `SELECT order_id, version, status, customer_id, currency, total_minor, created_at
FROM order_versions WHERE order_id = ANY($1::uuid[])`
	knownSQL  = `SELECT event_id FROM processed_events WHERE event_id = ANY($1::uuid[])`
	parkedSQL = `SELECT event FROM parked_events WHERE order_id = ANY($1::uuid[]) AND leaving IS NULL`
)

// The second round trip writes the verdicts and commits: the new ledger
// rows (event IDs the read did not find: under the locks nothing else can
// have recorded them since), stamped with the time they are written under
// the orders' locks, not when the transaction began (which may be before
// another transaction applied an earlier version of the same order), the deliveries of those it found, and each
// order's newest applied version and status, guarded by version so that
// nothing ever moves an order backwards, with the terms it was placed with
// (written when it is first held; an event that changes them is never
// applied).
const (
	recordSQL = `
INSERT INTO processed_events (event_id, order_id, version, event_type, outcome, deliveries, applied_at)
SELECT *, clock_timestamp() FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::int[])`
	countDeliveriesSQL = `
UPDATE processed_events p SET deliveries = p.deliveries + d.n
FROM unnest($1::uuid[], $2::int[]) AS d(event_id, n)
WHERE p.event_id = d.event_id`
	parkSQL = `
INSERT INTO parked_events (event_id, order_id, version, event, topic, partition, "offset",
    msg_key, msg_value, header_keys, header_values, msg_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	unparkSQL = `DELETE FROM parked_events WHERE event_id = ANY($1::uuid[])`
	expelSQL  = `
UPDATE parked_events p SET leaving = e.leaving, leaving_reason = e.reason
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS e(event_id, leaving, reason)
WHERE p.event_id = e.event_id`
	versionsSQL = `
INSERT INTO order_versions AS v (order_id, version, status, customer_id, currency, total_minor, created_at)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::timestamptz[])
ON CONFLICT (order_id) DO UPDATE SET version = EXCLUDED.version, status = EXCLUDED.status, updated_at = now()
WHERE v.version < EXCLUDED.version`
)

// Apply applies events in slice order, in one transaction, and returns one
// outcome per event (same index): applied, duplicate, stale, parked, or out
// of sequence or with its terms changed (not applied, not recorded: the
// caller dead-letters it). Events of
// one order must come in the order they were produced (Kafka's per-partition
// order); events of different orders may interleave freely. The events must
// have passed the store's machine's CheckEvent: Apply trusts their type,
// status and version. Apply is Begin, then Commit.
//
// Error contract: on error nothing of the batch is stored (it may be retried
// as a whole; if the commit was lost in transit, the retry finds the events
// recorded and reports them as duplicates). IsPermanent(err) reports whether
// some event's data can never be stored (retrying the same batch cannot
// succeed; apply its events one by one to find it); any other error is
// transient (database unreachable or restarting, timeouts, cancellation).
//
// Apply parks events without the message they came in (tests); the
// consumer uses ApplyFrom.
func (s *Store) Apply(ctx context.Context, events []order.Event) ([]order.Outcome, error) {
	return s.ApplyFrom(ctx, events, nil)
}

// ApplyFrom is Apply of events that came in the messages origins returns
// (by index), which a parked event keeps, so that it can be dead-lettered
// intact.
func (s *Store) ApplyFrom(ctx context.Context, events []order.Event, origins Origins) ([]order.Outcome, error) {
	if len(events) == 0 {
		return nil, nil
	}
	p, err := s.Begin(ctx, events, origins)
	if err != nil {
		return nil, err
	}
	return p.Commit(ctx)
}

// Pending is a batch whose transaction has begun: its orders are locked and
// what the database holds of them is read. Commit or Rollback it, once.
type Pending struct {
	s       *Store
	conn    *pgxpool.Conn
	events  []order.Event
	origins Origins
	held    map[uuid.UUID]order.Held
	known   map[uuid.UUID]bool
	parked  []order.Event
}

// Origin is the message an event came in, as it was read: a parked event
// keeps it, so that if it never applies it is dead-lettered intact.
type Origin struct {
	Topic      string
	Partition  int
	Offset     int64
	Key, Value []byte // nil: null
	Headers    []Header
	Time       time.Time
}

// Origins returns the message of a batch's event i; it is asked only of
// the events parked. A nil Origins parks events without their message.
type Origins func(i int) Origin

// Header is a message header; a nil Value is null.
type Header struct {
	Key   string
	Value []byte
}

// Begin is the first half of Apply, its first round trip: it begins the
// batch's transaction, takes its orders' locks (waiting for any transaction
// holding one of them to end) and reads what the database then holds of
// them. Until Commit or Rollback, it holds a connection and the locks.
//
// So a caller may begin the next batch while the last one commits, once
// the last one's Begin returned: the next one's reads of an order both
// batches touch wait for the last one's commit, and see it. If the last one
// fails, the next one must be rolled back (what it read is not what its
// events will meet) and begun again.
func (s *Store) Begin(ctx context.Context, events []order.Event, origins Origins) (*Pending, error) {
	ctx, cancel := s.roundTrip.Bound(ctx)
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply %d events: %w", len(events), s.explain(err))
	}
	p := &Pending{s: s, conn: conn, events: events, origins: origins}
	b := &pgx.Batch{}
	orders := queueBegin(b, events, true, s.lockTimeout)
	br := conn.SendBatch(ctx, b)
	err = p.readBegin(br, orders, true)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, p.fail(ctx, err)
	}
	return p, nil
}

// Commit is the second half of Apply, its second round trip: the store's
// machine judges every event against what Begin read, and the verdicts are
// written and committed. It returns one outcome per event, with Apply's
// error contract, and releases the connection either way.
func (p *Pending) Commit(ctx context.Context) ([]order.Outcome, error) {
	outcomes, _, err := p.CommitAndBegin(ctx, nil, nil)
	return outcomes, err
}

// CommitAndBegin is Commit, and then, in the same round trip and on the same
// connection, Begin of next: the next batch's transaction begins as soon as
// this one has committed, its locks taken and its orders read without a
// round trip of their own, so that in a steady flow each batch costs one.
// It returns this batch's outcomes, with Commit's error contract, and the
// next batch's transaction, or nil if next is empty, or its beginning failed,
// or another transaction held one of its orders (the next batch only tries
// the locks here, so that this one's outcome never waits on them): the
// caller then begins it again; this batch is committed all the same.
func (p *Pending) CommitAndBegin(ctx context.Context, next []order.Event, nextOrigins Origins) ([]order.Outcome, *Pending, error) {
	s := p.s
	ctx, cancel := s.roundTrip.Bound(ctx)
	defer cancel()
	j := s.machine.Judge(p.events, p.held, p.parked, func(id uuid.UUID) bool { return p.known[id] })
	w, err := s.plan(p.events, p.origins, j)
	if err != nil {
		return nil, nil, p.fail(ctx, err)
	}
	nextOrders := 0
	if len(next) > 0 {
		nextOrders = queueBegin(&w.batch, next, false, s.lockTimeout)
	}
	br := p.conn.Conn().SendBatch(ctx, &w.batch)
	if err := w.read(br); err != nil {
		_ = br.Close()
		var me *ReadModelError
		if errors.As(err, &me) {
			s.metrics.failed(me.Model)
		}
		return nil, nil, p.fail(ctx, err)
	}
	s.metrics.applied(s.models, len(w.applied))
	outcomes := make([]order.Outcome, len(j.Verdicts))
	for i, v := range j.Verdicts {
		outcomes[i] = v.Outcome
	}
	if len(j.Expelled) > 0 && s.OnLeaving != nil {
		s.OnLeaving()
	}
	var np *Pending
	if len(next) > 0 {
		np = &Pending{s: s, conn: p.conn, events: next, origins: nextOrigins}
		err = np.readBegin(br, nextOrders, false)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	switch {
	case np == nil:
		p.conn.Release()
	case err != nil:
		_ = np.fail(ctx, err) // this batch is committed; the next begins again
		np = nil
	}
	return outcomes, np, nil
}

// Rollback ends the batch's transaction without writing anything, and
// releases its locks and connection.
func (p *Pending) Rollback(ctx context.Context) {
	_ = p.fail(ctx, nil)
}

// fail rolls back the transaction, if one is open, releases the connection
// and returns err wrapped with the batch's size.
func (p *Pending) fail(ctx context.Context, err error) error {
	if p.conn.Conn().PgConn().TxStatus() != 'I' {
		// The pool would close a connection left in a transaction; roll
		// back and keep it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, _ = p.conn.Exec(rctx, "ROLLBACK")
		cancel()
	}
	p.conn.Release()
	if err == nil {
		return nil
	}
	return fmt.Errorf("apply %d events: %w", len(p.events), p.s.explain(err))
}

// queueBegin queues a batch's first round trip for events: BEGIN, the
// plans, the locks (waiting for them, or only trying them), and the reads of
// what the database holds of their orders and which of their event IDs it
// knows. It returns how many orders the events have, which readBegin needs.
func queueBegin(b *pgx.Batch, events []order.Event, wait bool, lockTimeout string) int {
	orders := make([][16]byte, 0, len(events))
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
	b.Queue("BEGIN")
	b.Queue(planSQL, lockTimeout)
	if wait {
		b.Queue(lockOrdersSQL, lockNamespace, pgdb.Int4s(locks))
	} else {
		b.Queue(tryLockOrdersSQL, lockNamespace, pgdb.Int4s(locks))
	}
	b.Queue(heldSQL, pgdb.UUIDs(orders))
	b.Queue(knownSQL, pgdb.UUIDs(ids))
	b.Queue(parkedSQL, pgdb.UUIDs(orders))
	return len(orders)
}

// readBegin reads the results of what queueBegin queued into p; when the
// locks were only tried and one was held, it returns errBusy.
func (p *Pending) readBegin(br pgx.BatchResults, orders int, wait bool) (err error) {
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("set the batch's plans: %w", err)
	}
	locked := true
	if wait {
		_, err = br.Exec()
	} else {
		err = br.QueryRow().Scan(&locked)
	}
	if err != nil {
		return fmt.Errorf("lock orders: %w", err)
	}
	p.held = make(map[uuid.UUID]order.Held, orders)
	var (
		id      uuid.UUID
		version int64
		status  string
		terms   order.Terms
	)
	rows, _ := br.Query() // its error is rows'
	_, err = pgx.ForEachRow(rows, []any{&id, &version, &status, &terms.CustomerID, &terms.Currency, &terms.TotalMinor, &terms.CreatedAt}, func() error {
		p.held[id] = order.Held{Version: version, Status: order.Status(status), Terms: terms}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read order versions: %w", err)
	}
	p.known = map[uuid.UUID]bool{}
	rows, _ = br.Query()
	if _, err = pgx.ForEachRow(rows, []any{&id}, func() error { p.known[id] = true; return nil }); err != nil {
		return fmt.Errorf("read the ledger: %w", err)
	}
	p.parked = nil
	var doc []byte
	rows, _ = br.Query()
	_, err = pgx.ForEachRow(rows, []any{&doc}, func() error {
		ev, err := unmarshalEvent(doc)
		p.parked = append(p.parked, ev)
		return err
	})
	if err != nil {
		return fmt.Errorf("read the parked events: %w", err)
	}
	if !locked {
		return errBusy // what was read may change before the locks are had
	}
	return nil
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

// plan returns the writes of a judgement: the ledger's new rows and its
// counts of deliveries, the events parked, applied from the parked ones or
// expelled from them, the orders' new versions, every read model's
// statements, and the commit.
func (s *Store) plan(events []order.Event, origins Origins, j order.Judgement) (*writes, error) {
	w := &writes{applied: j.Applied}
	n := len(events) + len(j.Unparked)
	var (
		rec struct {
			ids, orders [][16]byte
			versions    []int64
			types       []string
			outcomes    []string
			deliveries  []int32
		}
		recorded   = make(map[uuid.UUID]int, n) // event ID → its row in rec
		counted    = map[uuid.UUID]int32{}      // known event ID → deliveries in this batch
		countOrder [][16]byte
		last       = make(map[uuid.UUID]int, n) // order ID → its newest applied event, in j.Applied
		lastOrder  = make([]uuid.UUID, 0, n)
	)
	rec.ids, rec.orders, rec.versions = make([][16]byte, 0, n), make([][16]byte, 0, n), make([]int64, 0, n)
	rec.types, rec.outcomes, rec.deliveries = make([]string, 0, n), make([]string, 0, n), make([]int32, 0, n)
	record := func(ev order.Event, outcome order.Outcome) {
		recorded[ev.ID] = len(rec.ids)
		rec.ids = append(rec.ids, ev.ID)
		rec.orders = append(rec.orders, ev.Order.ID)
		rec.versions = append(rec.versions, ev.Order.Version)
		rec.types = append(rec.types, string(ev.Type))
		rec.outcomes = append(rec.outcomes, string(outcome))
		rec.deliveries = append(rec.deliveries, 1)
	}
	for i, a := range j.Applied {
		record(a.Event, order.OutcomeApplied)
		id := a.Event.Order.ID
		if _, ok := last[id]; !ok {
			lastOrder = append(lastOrder, id)
		}
		last[id] = i
	}
	for i, v := range j.Verdicts {
		ev := events[i]
		switch v.Outcome {
		case order.OutcomeStale:
			record(ev, v.Outcome)
		case order.OutcomeParked:
			var o Origin
			if origins != nil {
				o = origins(i)
			}
			doc, err := marshalEvent(ev)
			if err != nil {
				return nil, &ReadModelError{Model: "parked_events", Err: err, unwritable: true}
			}
			keys, values := make([]string, len(o.Headers)), make([][]byte, len(o.Headers))
			for k, h := range o.Headers {
				keys[k], values[k] = h.Key, h.Value
			}
			w.queue("", parkSQL, ev.ID, ev.Order.ID, ev.Order.Version, doc, o.Topic, o.Partition, o.Offset,
				o.Key, o.Value, keys, values, o.Time)
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
		w.queue("", recordSQL, pgdb.UUIDs(rec.ids), pgdb.UUIDs(rec.orders), pgdb.Int8s(rec.versions),
			pgdb.Texts(rec.types), pgdb.Texts(rec.outcomes), pgdb.Int4s(rec.deliveries))
	}
	if len(countOrder) > 0 {
		n := make([]int32, len(countOrder))
		for i, id := range countOrder {
			n[i] = counted[id]
		}
		w.queue("", countDeliveriesSQL, pgdb.UUIDs(countOrder), pgdb.Int4s(n))
	}
	if len(j.Unparked) > 0 {
		ids := make([][16]byte, len(j.Unparked))
		for i, id := range j.Unparked {
			ids[i] = id
		}
		w.queue("", unparkSQL, pgdb.UUIDs(ids))
	}
	if len(j.Expelled) > 0 {
		ids, leaving, reasons := make([][16]byte, len(j.Expelled)), make([]string, len(j.Expelled)), make([]string, len(j.Expelled))
		for i, e := range j.Expelled {
			ids[i], leaving[i] = e.Event.ID, string(e.Outcome)
			reasons[i] = fmt.Sprintf("parked %s event at version %d of order %s cannot apply once version %d is: %s",
				e.Event.Type, e.Event.Order.Version, e.Event.Order.ID, e.Event.Order.Version-1, e.Outcome)
		}
		w.queue("", expelSQL, pgdb.UUIDs(ids), pgdb.Texts(leaving), pgdb.Texts(reasons))
	}
	if len(lastOrder) > 0 {
		n := len(lastOrder)
		ids, versions, statuses := make([][16]byte, n), make([]int64, n), make([]string, n)
		customers, currencies, totals, created := make([]string, n), make([]string, n), make([]int64, n), make([]time.Time, n)
		for i, id := range lastOrder {
			o := j.Applied[last[id]].Event.Order // its terms are the order's: Judge applies no other
			ids[i], versions[i], statuses[i] = id, o.Version, string(o.Status)
			customers[i], currencies[i], totals[i], created[i] = o.CustomerID, o.Currency, o.TotalMinor, o.CreatedAt
		}
		w.queue("", versionsSQL, pgdb.UUIDs(ids), pgdb.Int8s(versions), pgdb.Texts(statuses),
			pgdb.Texts(customers), pgdb.Texts(currencies), pgdb.Int8s(totals), pgdb.Timestamps(created))
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

// read reads the result of every statement of the writes, naming the read
// model whose statement failed.
func (w *writes) read(br pgx.BatchResults) error {
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
