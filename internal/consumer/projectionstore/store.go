// Package projection is order-consumer's PostgreSQL read model: one row per
// order holding the state carried by the newest event applied to it, and a
// ledger (processed_events) recording every event_id once.
//
// Guarantees: Apply is idempotent and order-safe. An event whose event_id is
// already recorded is a duplicate and changes nothing but a delivery counter;
// an event whose version is not newer than the order's projection is recorded
// as stale and changes nothing else; an event that is newer but does not
// follow the state held (order.RuleOutOfSequence) changes nothing and is not
// recorded, and the caller dead-letters it. So the projection only ever holds
// states the order's state machine went through, in order. A batch is applied in one transaction,
// in slice order, in one network round trip; concurrent Apply calls touching
// the same order are serialized (transaction-scoped advisory locks per
// order), so the outcome each returns is the one recorded.
package projectionstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
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

// Store is the projection in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool, whose database has migrations.Projection applied.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Ping reports whether the database answers, for readiness checks.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// lockNamespace is the first key of the two-key advisory locks taken per
// order. Two-key locks live apart from single-bigint ones (goose's migration
// lock), so the two cannot collide.
const lockNamespace int32 = 0x70726f6a // "proj"

// lockOrdersSQL serializes Apply calls touching the same order. Keys come
// sorted, so two batches always lock in the same order and cannot deadlock; a
// hash collision only serializes two unrelated orders.
const lockOrdersSQL = `SELECT pg_advisory_xact_lock($1::int, k) FROM unnest($2::int[]) AS k`

// applySQL applies a whole batch as one set-based statement, with the same
// outcome as applying its events one at a time in slice order. Every CTE sees
// the same snapshot (taken after the locks above were granted), so the
// in-batch order is computed rather than executed. The stored state is read
// with correlated subqueries in a materialized CTE: they probe the primary
// keys once per event, where a join (or a lateral subquery, which the
// planner turns into one) would be planned as a hash join scanning both
// tables whole, which grow with every batch; MATERIALIZED keeps the later
// CTEs, which read the results several times, from re-running the probes.
// The judging CTEs carry only the narrow columns they judge by; the
// projected state is joined back from input by position.
//   - probed: whether the ledger knows the event_id (a duplicate), and the
//     order's stored version and status;
//   - step1..step5: an event applies only if it follows the state the order
//     is in when it comes: its version is one more, and the status it follows
//     ($16, from the domain's state machine; empty for PLACED, which follows
//     no row) is the status held. Per order the applied events form a chain
//     from the stored state: c1 is the first unknown event following the
//     stored state, c2 the first after c1 following c1's, c3 the first after
//     c2 following c2's. No order's history is longer than three events;
//   - judged: held is the version the order is at when an event comes; an
//     event not in the chain is stale if its version is not newer than held,
//     and out of sequence otherwise (a PAID for an order never placed, a
//     REFUNDED after a cancellation). Since held only grows, an event_id's
//     deliveries in the batch are out of sequence up to a point, and from
//     there applied or stale once, then duplicates (settled);
//   - bump/record: the ledger counts every delivery of an event_id it knows;
//     a new event_id applied or stale gets one row with that outcome and the
//     deliveries from then on; one out of sequence gets none, so it can
//     still apply once what precedes it has (a DLQ replay);
//   - project: each order is upserted once, from its newest applied event,
//     guarded by version so nothing ever moves a projection backwards.
const applySQL = `
WITH input AS (
    SELECT *
    FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[],
                $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], $16::text[])
         WITH ORDINALITY AS e(event_id, event_type, order_id, version, status, customer_id, currency,
                              items, total_minor, payment_reference, cancel_reason, refund_reason,
                              created_at, updated_at, occurred_at, follows, ord)
),
probed AS MATERIALIZED (
    SELECT k.*, coalesce(o.version, 0) AS stored_version, coalesce(o.status, '') AS stored_status
    FROM (
        SELECT i.ord, i.event_id, i.event_type, i.order_id, i.version, i.status, i.follows,
               row_number() OVER (PARTITION BY i.event_id ORDER BY i.ord) = 1 AS is_first,
               count(*) OVER (PARTITION BY i.event_id) AS copies,
               (SELECT true FROM processed_events p WHERE p.event_id = i.event_id) IS NOT NULL AS known
        FROM input i
        OFFSET 0 -- a fence: known is probed once per event, not once per use
    ) k
    -- One probe per event not known (a known one is a duplicate whatever the
    -- order holds); OFFSET 0 keeps it a probe, not a join.
    LEFT JOIN LATERAL (SELECT o.version, o.status FROM order_projection o
                       WHERE o.id = k.order_id AND NOT k.known OFFSET 0) o ON true
),
step1 AS (
    SELECT p.*, min(ord) FILTER (WHERE NOT known AND version = stored_version + 1 AND follows = stored_status) OVER w AS c1
    FROM probed p WINDOW w AS (PARTITION BY order_id)
),
step2 AS (
    SELECT s.*, max(status) FILTER (WHERE ord = c1) OVER w AS st1
    FROM step1 s WINDOW w AS (PARTITION BY order_id)
),
step3 AS (
    SELECT s.*, min(ord) FILTER (WHERE NOT known AND ord > c1 AND version = stored_version + 2 AND follows = st1) OVER w AS c2
    FROM step2 s WINDOW w AS (PARTITION BY order_id)
),
step4 AS (
    SELECT s.*, max(status) FILTER (WHERE ord = c2) OVER w AS st2
    FROM step3 s WINDOW w AS (PARTITION BY order_id)
),
step5 AS (
    SELECT s.*, min(ord) FILTER (WHERE NOT known AND ord > c2 AND version = stored_version + 3 AND follows = st2) OVER w AS c3
    FROM step4 s WINDOW w AS (PARTITION BY order_id)
),
judged AS (
    SELECT s.*, applied, NOT known AND (applied OR version <= held) AS recorded
    FROM step5 s,
         LATERAL (SELECT coalesce(ord = c1 OR ord = c2 OR ord = c3, false) AS applied) a,
         LATERAL (SELECT CASE WHEN c3 < ord THEN stored_version + 3 WHEN c2 < ord THEN stored_version + 2
                              WHEN c1 < ord THEN stored_version + 1 ELSE stored_version END AS held) h
),
settled AS (
    SELECT j.*,
           min(ord) FILTER (WHERE recorded) OVER w AS first_recorded,
           count(*) FILTER (WHERE recorded) OVER w AS deliveries
    FROM judged j WINDOW w AS (PARTITION BY event_id)
),
bump AS (
    UPDATE processed_events p SET deliveries = p.deliveries + s.copies
    FROM settled s
    WHERE s.known AND s.is_first AND p.event_id = s.event_id
),
record AS (
    INSERT INTO processed_events (event_id, order_id, version, event_type, outcome, deliveries)
    SELECT event_id, order_id, version, event_type, CASE WHEN applied THEN 'applied' ELSE 'stale' END, deliveries
    FROM settled
    WHERE ord = first_recorded
    ON CONFLICT (event_id) DO UPDATE SET deliveries = processed_events.deliveries + EXCLUDED.deliveries
),
project AS (
    INSERT INTO order_projection (id, status, version, customer_id, currency, items, total_minor,
                                  payment_reference, cancel_reason, refund_reason, created_at, updated_at,
                                  last_event_id, last_event_at)
    SELECT DISTINCT ON (i.order_id)
           i.order_id, i.status, i.version, i.customer_id, i.currency, i.items::jsonb, i.total_minor,
           i.payment_reference, i.cancel_reason, i.refund_reason, i.created_at, i.updated_at,
           i.event_id, i.occurred_at
    FROM settled s JOIN input i ON i.ord = s.ord
    WHERE s.applied
    ORDER BY i.order_id, i.version DESC
    ON CONFLICT (id) DO UPDATE SET
        status = EXCLUDED.status, version = EXCLUDED.version, customer_id = EXCLUDED.customer_id,
        currency = EXCLUDED.currency, items = EXCLUDED.items, total_minor = EXCLUDED.total_minor,
        payment_reference = EXCLUDED.payment_reference, cancel_reason = EXCLUDED.cancel_reason,
        refund_reason = EXCLUDED.refund_reason, created_at = EXCLUDED.created_at,
        updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id,
        last_event_at = EXCLUDED.last_event_at, projected_at = now()
    WHERE order_projection.version < EXCLUDED.version
)
SELECT CASE WHEN known OR ord > first_recorded THEN 'duplicate'
            WHEN NOT recorded THEN 'out_of_sequence'
            WHEN applied THEN 'applied'
            ELSE 'stale' END
FROM settled
ORDER BY ord`

// Apply applies events in slice order, in one transaction, and returns one
// outcome per event (same index): applied, duplicate, stale, or out of
// sequence (not applied, not recorded: the caller dead-letters it). Events of
// one order must come in the order they were produced (Kafka's per-partition
// order); events of different orders may interleave freely. The events must
// have passed order.CheckEvent: Apply trusts their status and version.
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
	n := len(events)
	var (
		eventIDs   = make([][16]byte, n) // not uuid.UUID: its driver.Valuer costs a string round trip per element
		types      = make([]string, n)
		orderIDs   = make([][16]byte, n)
		versions   = make([]int64, n)
		statuses   = make([]string, n)
		customers  = make([]string, n)
		currencies = make([]string, n)
		items      = make([]string, n)
		totals     = make([]int64, n)
		payRefs    = make([]string, n)
		cancels    = make([]string, n)
		refunds    = make([]string, n)
		created    = make([]time.Time, n)
		updated    = make([]time.Time, n)
		occurred   = make([]time.Time, n)
		follows    = make([]string, n)
		locks      = make([]int32, 0, n)
	)
	for i, ev := range events {
		o := ev.Order
		it := o.Items
		if it == nil {
			it = []order.Item{} // "null" is not an item list
		}
		b, err := json.Marshal(it)
		if err != nil {
			return nil, fmt.Errorf("apply events: encode items of event %s: %w", ev.ID, err)
		}
		eventIDs[i], types[i], orderIDs[i], versions[i] = ev.ID, string(ev.Type), o.ID, o.Version
		statuses[i], customers[i], currencies[i], items[i], totals[i] = string(o.Status), o.CustomerID, o.Currency, string(b), o.TotalMinor
		payRefs[i], cancels[i], refunds[i] = o.PaymentReference, o.CancelReason, o.RefundReason
		created[i], updated[i], occurred[i] = o.CreatedAt, o.UpdatedAt, ev.OccurredAt
		if prev, ok := order.Standard.Follows(ev.Type); ok {
			follows[i] = string(prev)
		}
		locks = append(locks, lockKey(o.ID))
	}
	slices.Sort(locks)
	locks = slices.Compact(locks)

	// Without BEGIN, the pipelined statements of a batch run in one implicit
	// transaction that commits at its Sync: one round trip for the lot.
	b := &pgx.Batch{}
	b.Queue(lockOrdersSQL, lockNamespace, locks)
	b.Queue(applySQL, eventIDs, types, orderIDs, versions, statuses, customers, currencies,
		items, totals, payRefs, cancels, refunds, created, updated, occurred, follows)
	br := s.pool.SendBatch(ctx, b)
	outcomes, err := readApply(br, n)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("apply %d events: %w", n, err)
	}
	return outcomes, nil
}

func readApply(br pgx.BatchResults, n int) ([]order.Outcome, error) {
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("lock orders: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	outcomes := make([]order.Outcome, 0, n)
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			rows.Close()
			return nil, err
		}
		outcomes = append(outcomes, order.Outcome(o))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(outcomes) != n {
		return nil, fmt.Errorf("got %d outcomes for %d events", len(outcomes), n)
	}
	return outcomes, nil
}

// lockKey folds an order ID into an advisory lock key. UUIDv7 IDs spread
// their randomness over the last bytes, so those are folded in too.
func lockKey(id uuid.UUID) int32 {
	a := binary.BigEndian.Uint64(id[:8])
	b := binary.BigEndian.Uint64(id[8:])
	x := a ^ b
	return int32(uint32(x) ^ uint32(x>>32))
}

const selectProjectionSQL = `
SELECT id, status, version, customer_id, currency, items, total_minor,
       payment_reference, cancel_reason, refund_reason, created_at, updated_at,
       last_event_id, last_event_at, projected_at
FROM order_projection WHERE id = $1`

// Get returns the projection of order id, or an error wrapping
// order.ErrNotFound if no event of it has been applied, or one wrapping
// order.ErrUnavailable (and the driver's cause) if the database could not be
// reached or used within pgdb.CallTimeout.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (order.Projection, error) {
	var (
		p      order.Projection
		o      = &p.Order
		status string
		items  []byte
	)
	// Bounded, so a read API request never waits on a pool that cannot
	// connect for longer than a client would.
	bctx, cancel := context.WithTimeout(ctx, pgdb.CallTimeout)
	defer cancel()
	err := s.pool.QueryRow(bctx, selectProjectionSQL, id).Scan(&o.ID, &status, &o.Version, &o.CustomerID,
		&o.Currency, &items, &o.TotalMinor, &o.PaymentReference, &o.CancelReason, &o.RefundReason,
		&o.CreatedAt, &o.UpdatedAt, &p.LastEventID, &p.LastEventAt, &p.ProjectedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return order.Projection{}, fmt.Errorf("get projection %s: %w", id, order.ErrNotFound)
	}
	if pgdb.Unavailable(ctx, err) {
		return order.Projection{}, fmt.Errorf("get projection %s: %w: %w", id, order.ErrUnavailable, err)
	}
	if err != nil {
		return order.Projection{}, fmt.Errorf("get projection %s: %w", id, err)
	}
	o.Status = order.Status(status)
	if err := json.Unmarshal(items, &o.Items); err != nil {
		return order.Projection{}, fmt.Errorf("get projection %s: decode items: %w", id, err)
	}
	for _, t := range []*time.Time{&o.CreatedAt, &o.UpdatedAt, &p.LastEventAt, &p.ProjectedAt} {
		*t = t.UTC()
	}
	return p, nil
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
// PostgreSQL SQLSTATE class 22 (data exception: a value out of range, too
// long, malformed) or 23 (integrity constraint violation: a CHECK or NOT NULL
// the event breaks). Everything else, including connection failures, server
// shutdown (57P01), serialization failures and deadlocks (40001, 40P01),
// timeouts and cancellation, is transient.
func IsPermanent(err error) bool {
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
// than what it produced) and is recorded as a new, stale event.
func (s *Store) PurgeLedger(ctx context.Context, retention time.Duration, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, purgeLedgerSQL, retention, limit)
	if err != nil {
		return 0, fmt.Errorf("purge ledger: %w", err)
	}
	return tag.RowsAffected(), nil
}
