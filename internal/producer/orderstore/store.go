// Package orderstore is the PostgreSQL implementation of order.Store. Every
// accepted change writes the order row and its event's outbox row atomically
// (the transactional outbox): both commit or neither does. A place is one
// statement, sent with the concurrent places in one round trip and commit
// (groupCommit); a change is a read and then one version-checked statement that
// updates the row (taking its lock) and inserts the outbox row, so
// concurrent changes of one order are serialized — the loser finds the
// version moved and starts again — and its outbox rows follow its versions.
// The outbox row and its INSERT are the outbox package's, which owns that
// table (outbox.NewRow, outbox.InsertSQL): the store writes them inside its
// own statements and transactions.
//
// Each call waits for the database at most its bound (DATABASE_TIMEOUT,
// pgdb.CallTimeout by default), and a failure to reach or use it is
// reported as order.ErrUnavailable, naming the server (the driver's error
// kept in the chain), never mistaken for a refusal of the data.
package orderstore

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
)

// Encoder turns an event into the Avro body stored in the outbox, and names
// the schemas/ version it used. eventcodec.Encoder implements it.
type Encoder interface {
	Encode(order.Event) (payload []byte, schemaVersion int, err error)
}

// Store keeps orders and their outbox in PostgreSQL.
type Store struct {
	pool        *pgxpool.Pool
	places      *groupCommit // places without an Idempotency-Key, batched
	enc         Encoder
	topic       string
	afterCommit func()
	calls       pgdb.Calls // each call's bound, and the server for errors
	idemTTL     time.Duration
	recent      *recentOrders // the orders last written here: a change skips its read
}

var _ order.Store = (*Store)(nil)

// DefaultIdempotencyKeyTTL is how long an Idempotency-Key is honoured when
// New is given 0.
const DefaultIdempotencyKeyTTL = 24 * time.Hour

// New returns a Store writing events for topic. afterCommit, if not nil, is
// called after each commit that wrote outbox rows (to wake the relay); it
// must not block. An Idempotency-Key is honoured for idemTTL
// (DefaultIdempotencyKeyTTL if 0): past it, the same key places a new order.
func New(pool *pgxpool.Pool, enc Encoder, topic string, afterCommit func(), idemTTL time.Duration) *Store {
	if afterCommit == nil {
		afterCommit = func() {}
	}
	if idemTTL <= 0 {
		idemTTL = DefaultIdempotencyKeyTTL
	}
	calls := pgdb.CallsTo(pool, pgdb.CallTimeout)
	return &Store{pool: pool, places: &groupCommit{pool: pool, timeout: calls.Timeout}, enc: enc, topic: topic, afterCommit: afterCommit,
		calls: calls, idemTTL: idemTTL, recent: newRecentOrders(recentOrdersMax)}
}

// WithTimeout makes each call of s wait for the database at most d
// (DATABASE_TIMEOUT) instead of pgdb.CallTimeout, and returns s. Call it
// before s is used.
func (s *Store) WithTimeout(d time.Duration) *Store {
	s.calls = pgdb.CallsTo(s.pool, d)
	s.places.timeout = s.calls.Timeout
	return s
}

// bound limits how long one call waits for the database.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return s.calls.Bound(ctx)
}

// classify wraps err with order.ErrUnavailable, naming the server, when it
// says the database could not be reached or used; ctx is the caller's
// context, unbounded. Both errors stay in the chain: callers test for
// ErrUnavailable, logs show the server and the driver's cause.
func (s *Store) classify(ctx context.Context, err error) error {
	if pgdb.Unavailable(ctx, err) {
		return fmt.Errorf("%w: %w", order.ErrUnavailable, s.calls.Explain(err))
	}
	return err
}

// Ping reports whether the database answers, for readiness checks; its
// error names the server.
func (s *Store) Ping(ctx context.Context) error { return pgdb.Ping(ctx, s.pool) }

const insertOrderSQL = `
INSERT INTO orders (id, customer_id, currency, items, total_minor, status, version,
                    payment_reference, cancel_reason, refund_reason, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

// PlaceSQL writes an order ($7 on) and its outbox row ($1 to $6, see
// outbox.InsertSQL) in one statement: a data-modifying CTE runs whether or
// not the outer statement reads it.
const PlaceSQL = `
WITH o AS (
    INSERT INTO orders (id, customer_id, currency, items, total_minor, status, version,
                        payment_reference, cancel_reason, refund_reason, created_at, updated_at)
    VALUES ($7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
)` + outbox.InsertSQL

// insertIdempotencySQL records a key, or takes over one recorded more than
// the TTL ($5) ago, which is no longer honoured (the purge may not have
// reached it yet). A key recorded within the TTL is left as it is: 0 rows.
const insertIdempotencySQL = `
INSERT INTO idempotency_keys (key, fingerprint, order_id, response) VALUES ($1, $2, $3, $4)
ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, order_id = EXCLUDED.order_id,
    response = EXCLUDED.response, created_at = now()
WHERE idempotency_keys.created_at < now() - $5::interval`

const selectIdempotencySQL = `SELECT fingerprint, response FROM idempotency_keys WHERE key = $1`

// Create implements order.Store.
func (s *Store) Create(ctx context.Context, o order.Order, ev order.Event, idem *order.Idempotency) (resp []byte, replayed bool, err error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	resp, replayed, err = s.create(bctx, o, ev, idem)
	return resp, replayed, s.classify(ctx, err)
}

func (s *Store) create(ctx context.Context, o order.Order, ev order.Event, idem *order.Idempotency) (resp []byte, replayed bool, err error) {
	row, err := s.outboxRow(ev)
	if err != nil {
		return nil, false, err
	}
	items, err := json.Marshal(o.Items)
	if err != nil {
		return nil, false, fmt.Errorf("create order: %w", err)
	}
	if idem == nil {
		// One statement, so atomic without BEGIN/COMMIT; concurrent places
		// share a round trip and a commit (groupCommit).
		if _, err := outbox.Insert(ctx, s.places, PlaceSQL, row, o.ID, o.CustomerID, o.Currency, items, o.TotalMinor,
			o.Status, o.Version, o.PaymentReference, o.CancelReason, o.RefundReason, o.CreatedAt, o.UpdatedAt); err != nil {
			return nil, false, fmt.Errorf("create order: %w", err)
		}
		s.recent.put(o)
		s.afterCommit()
		return nil, false, nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("create order: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	if _, err := tx.Exec(ctx, insertOrderSQL, o.ID, o.CustomerID, o.Currency, items, o.TotalMinor,
		o.Status, o.Version, o.PaymentReference, o.CancelReason, o.RefundReason, o.CreatedAt, o.UpdatedAt); err != nil {
		return nil, false, fmt.Errorf("create order: insert order: %w", err)
	}
	// ON CONFLICT waits for a concurrent insert of the same key to commit or
	// roll back, then reports whether ours went in (or took over an expired
	// one).
	tag, err := tx.Exec(ctx, insertIdempotencySQL, idem.Key, idem.Fingerprint, o.ID, idem.Response, s.idemTTL)
	if err != nil {
		return nil, false, fmt.Errorf("create order: insert idempotency key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		var fp, stored []byte
		if err := tx.QueryRow(ctx, selectIdempotencySQL, idem.Key).Scan(&fp, &stored); err != nil {
			return nil, false, fmt.Errorf("create order: read idempotency key: %w", err)
		}
		if subtle.ConstantTimeCompare(fp, idem.Fingerprint) != 1 {
			return nil, false, order.ErrIdempotencyConflict
		}
		return stored, true, nil // the deferred rollback discards our order
	}
	if _, err := outbox.Insert(ctx, tx, outbox.InsertSQL, row); err != nil {
		return nil, false, fmt.Errorf("create order: insert outbox row: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, fmt.Errorf("create order: commit: %w", err)
	}
	s.recent.put(o)
	s.afterCommit()
	return idem.Response, false, nil
}

const selectOrderSQL = `
SELECT id, customer_id, currency, items, total_minor, status, version,
       payment_reference, cancel_reason, refund_reason, created_at, updated_at
FROM orders WHERE id = $1`

// Get implements order.Store.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (order.Order, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	o, err := scanOrder(s.pool.QueryRow(bctx, selectOrderSQL, id))
	if err != nil {
		return order.Order{}, fmt.Errorf("get order %s: %w", id, s.classify(ctx, err))
	}
	return o, nil
}

const listOrdersSQL = `
SELECT id, customer_id, currency, items, total_minor, status, version,
       payment_reference, cancel_reason, refund_reason, created_at, updated_at
FROM orders
WHERE ($1 = '' OR customer_id = $1)
  AND ($2 = '' OR status = $2)
  AND id > $3
ORDER BY id
LIMIT $4`

// List implements order.Store. IDs are UUIDv7, so ID order is creation
// order and the last ID seen is a stable cursor.
func (s *Store) List(ctx context.Context, f order.ListFilter) ([]order.Order, bool, error) {
	limit := f.Limit
	if limit <= 0 || limit > order.MaxListLimit {
		limit = order.DefaultListLimit
	}
	bctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(bctx, listOrdersSQL, f.CustomerID, string(f.Status), f.After, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("list orders: %w", s.classify(ctx, err))
	}
	orders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Order, error) { return scanOrder(r) })
	if err != nil {
		return nil, false, fmt.Errorf("list orders: %w", s.classify(ctx, err))
	}
	more := len(orders) > limit
	if more {
		orders = orders[:limit]
	}
	return orders, more, nil
}

// changeSQL applies a change ($7 on) only if the order is still at the
// version it was read at, and inserts its outbox row ($1 to $6, see
// outbox.InsertSQL) in the same statement, from u: only if the UPDATE
// changed the row. The UPDATE takes the row lock first, so a concurrent
// change of the same order waits, then finds the version moved and changes
// nothing (0 rows): outbox rows of one order are inserted in version order.
const changeSQL = `
WITH u AS (
    UPDATE orders SET status = $9, version = $10, payment_reference = $11, cancel_reason = $12,
                      refund_reason = $13, updated_at = $14
    WHERE id = $7 AND version = $8
    RETURNING id
)` + outbox.InsertSQL + ` FROM u`

// maxChangeAttempts bounds the optimistic retries of one change. Each lost
// race means another change of the same order committed meanwhile; after
// that the change usually becomes an invalid transition (409) at once.
const maxChangeAttempts = 16

// Update implements order.Store. It reads the order, lets fn change it, and
// writes the change with its outbox row in one version-checked statement (two
// round trips in all, no explicit transaction); if another change of the
// order committed in between, it starts again from the new version. When this
// store wrote the order last (placed or changed it), it first tries the
// change on the order as written, without reading it: one round trip, and
// anything else — a version the match refuses, fn refusing, another change
// in between — goes the way above, from a read. fn may therefore be called
// more than once, each time on a fresh copy. The whole call, retries
// included, waits for the database at most the store's bound.
func (s *Store) Update(ctx context.Context, id uuid.UUID, match order.VersionMatch, fn func(*order.Order) (order.Event, error)) (order.Order, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	o, err := s.update(bctx, id, match, fn)
	if err != nil {
		return o, s.classify(ctx, err)
	}
	return o, nil
}

func (s *Store) update(ctx context.Context, id uuid.UUID, match order.VersionMatch, fn func(*order.Order) (order.Event, error)) (order.Order, error) {
	if o, ok := s.recent.get(id); ok && (match == nil || match(o.Version)) {
		if changed, done, err := s.changeWritten(ctx, o, fn); done {
			return changed, err
		}
	}
	for attempt := 1; ; attempt++ {
		o, err := scanOrder(s.pool.QueryRow(ctx, selectOrderSQL, id))
		if err != nil {
			return order.Order{}, fmt.Errorf("update order %s: %w", id, err)
		}
		if match != nil && !match(o.Version) {
			return o, fmt.Errorf("update order %s: version %d does not match If-Match: %w", id, o.Version, order.ErrVersionMismatch)
		}
		read := o.Version
		ev, err := fn(&o)
		if err != nil {
			return o, err
		}
		row, err := s.outboxRow(ev)
		if err != nil {
			return order.Order{}, err
		}
		n, err := outbox.Insert(ctx, s.pool, changeSQL, row, o.ID, read, o.Status, o.Version, o.PaymentReference,
			o.CancelReason, o.RefundReason, o.UpdatedAt)
		if err != nil {
			return order.Order{}, fmt.Errorf("update order %s: %w", id, err)
		}
		if n == 1 {
			s.recent.put(o)
			s.afterCommit()
			return o, nil
		}
		if attempt == maxChangeAttempts {
			return order.Order{}, fmt.Errorf("update order %s: still changing concurrently after %d attempts", id, attempt)
		}
	}
}

// changeWritten tries fn's change on o, the order as this store last wrote
// it, without reading it first. done is false when the change must be made
// from a read instead: fn refused o (it may be stale), or the write changed
// nothing (the order has moved on, or is gone). A database error is final,
// as it would be for the write after a read.
func (s *Store) changeWritten(ctx context.Context, o order.Order, fn func(*order.Order) (order.Event, error)) (changed order.Order, done bool, err error) {
	read := o.Version
	ev, err := fn(&o)
	if err != nil {
		return order.Order{}, false, nil
	}
	row, err := s.outboxRow(ev)
	if err != nil {
		return order.Order{}, false, nil
	}
	n, err := outbox.Insert(ctx, s.pool, changeSQL, row, o.ID, read, o.Status, o.Version, o.PaymentReference,
		o.CancelReason, o.RefundReason, o.UpdatedAt)
	if err != nil {
		return order.Order{}, true, fmt.Errorf("update order %s: %w", o.ID, err)
	}
	if n != 1 {
		return order.Order{}, false, nil
	}
	s.recent.put(o)
	s.afterCommit()
	return o, true, nil
}

// outboxRow encodes ev and returns its outbox row.
func (s *Store) outboxRow(ev order.Event) (outbox.Row, error) {
	payload, version, err := s.enc.Encode(ev)
	if err != nil {
		return outbox.Row{}, err
	}
	return outbox.NewRow(s.topic, ev, payload, version)
}

func scanOrder(row pgx.Row) (order.Order, error) {
	var (
		o     order.Order
		items []byte
	)
	err := row.Scan(&o.ID, &o.CustomerID, &o.Currency, &items, &o.TotalMinor, &o.Status, &o.Version,
		&o.PaymentReference, &o.CancelReason, &o.RefundReason, &o.CreatedAt, &o.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return order.Order{}, order.ErrNotFound
	}
	if err != nil {
		return order.Order{}, err
	}
	if err := json.Unmarshal(items, &o.Items); err != nil {
		return order.Order{}, fmt.Errorf("items of order %s: %w", o.ID, err)
	}
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	return o, nil
}

// purgeIdempotencySQL deletes up to $2 keys recorded more than $1 ago,
// oldest first, skipping rows another purge (another replica) holds.
const purgeIdempotencySQL = `
DELETE FROM idempotency_keys WHERE key IN (
    SELECT key FROM idempotency_keys WHERE created_at < now() - $1::interval
    ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`

// PurgeIdempotencyKeys deletes at most limit keys past the TTL and returns
// how many it deleted. A key past the TTL is not honoured even before it is
// purged.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, purgeIdempotencySQL, s.idemTTL, limit)
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}
