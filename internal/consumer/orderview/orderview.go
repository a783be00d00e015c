// Package orderview is order-consumer's first read model: one row per order
// (order_projection, migrations/projection) holding the full state the
// newest event applied to it carries, and when that event occurred and was
// applied. The read API serves it at GET /orders/{id}.
//
// Guarantees: it receives only applied events, in the order they were
// applied (projectionstore), and writes each order once per batch, from its
// newest applied event, guarded by version: nothing ever moves an order
// backwards, and an order it has never seen (the read model added to a
// running service) is inserted.
package orderview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// View is the order projection. It is safe for concurrent use.
type View struct {
	db    Querier
	calls pgdb.Calls // each read's bound, and the server for errors
}

// Querier reads a row: a *pgxpool.Pool, whose database has the
// projection's migrations applied.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// New returns the view, reading through db, each read bounded by
// pgdb.CallTimeout.
func New(db Querier) *View {
	v := &View{db: db}
	return v.WithTimeout(pgdb.CallTimeout)
}

// WithTimeout bounds each read by d (DATABASE_TIMEOUT) instead, and returns
// v. Call it before v is used.
func (v *View) WithTimeout(d time.Duration) *View {
	if pool, ok := v.db.(*pgxpool.Pool); ok {
		v.calls = pgdb.CallsTo(pool, d)
	} else {
		v.calls = pgdb.Calls{Timeout: d, Server: "postgres"}
	}
	return v
}

// Name is the read model's name in metrics and errors.
func (*View) Name() string { return "orders" }

// Tables are the tables a rebuild moves in.
func (*View) Tables() []string { return []string{"order_projection"} }

const upsertSQL = `
INSERT INTO order_projection (id, status, version, customer_id, currency, items, total_minor,
                              payment_reference, cancel_reason, refund_reason, created_at, updated_at,
                              last_event_id, last_event_at)
SELECT id, status, version, customer_id, currency, items::jsonb, total_minor,
       payment_reference, cancel_reason, refund_reason, created_at, updated_at, last_event_id, last_event_at
FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[],
            $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[], $13::uuid[], $14::timestamptz[])
     AS e(id, status, version, customer_id, currency, items, total_minor, payment_reference, cancel_reason,
          refund_reason, created_at, updated_at, last_event_id, last_event_at)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, version = EXCLUDED.version, customer_id = EXCLUDED.customer_id,
    currency = EXCLUDED.currency, items = EXCLUDED.items, total_minor = EXCLUDED.total_minor,
    payment_reference = EXCLUDED.payment_reference, cancel_reason = EXCLUDED.cancel_reason,
    refund_reason = EXCLUDED.refund_reason, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id,
    last_event_at = EXCLUDED.last_event_at, projected_at = now()
WHERE order_projection.version < EXCLUDED.version`

// Queue writes each order of applied once, from its newest event.
func (v *View) Queue(b *pgx.Batch, applied []order.Applied) error {
	newest := make(map[uuid.UUID]int, len(applied))
	var ids []uuid.UUID
	for i, a := range applied {
		id := a.Event.Order.ID
		if _, ok := newest[id]; !ok {
			ids = append(ids, id)
		}
		newest[id] = i
	}
	n := len(ids)
	var (
		orderIDs   = make([][16]byte, n)
		statuses   = make([]string, n)
		versions   = make([]int64, n)
		customers  = make([]string, n)
		currencies = make([]string, n)
		items      = make([]string, n)
		totals     = make([]int64, n)
		payRefs    = make([]string, n)
		cancels    = make([]string, n)
		refunds    = make([]string, n)
		created    = make([]time.Time, n)
		updated    = make([]time.Time, n)
		eventIDs   = make([][16]byte, n)
		occurred   = make([]time.Time, n)
	)
	var buf []byte
	for i, id := range ids {
		ev := applied[newest[id]].Event
		o := ev.Order
		buf = appendItems(buf[:0], o.Items)
		orderIDs[i], statuses[i], versions[i], customers[i], currencies[i] = o.ID, string(o.Status), o.Version, o.CustomerID, o.Currency
		items[i], totals[i], payRefs[i], cancels[i], refunds[i] = string(buf), o.TotalMinor, o.PaymentReference, o.CancelReason, o.RefundReason
		created[i], updated[i], eventIDs[i], occurred[i] = o.CreatedAt, o.UpdatedAt, ev.ID, ev.OccurredAt
	}
	b.Queue(upsertSQL, pgdb.UUIDs(orderIDs), pgdb.Texts(statuses), pgdb.Int8s(versions), pgdb.Texts(customers),
		pgdb.Texts(currencies), pgdb.Texts(items), pgdb.Int8s(totals), pgdb.Texts(payRefs), pgdb.Texts(cancels),
		pgdb.Texts(refunds), pgdb.Timestamps(created), pgdb.Timestamps(updated), pgdb.UUIDs(eventIDs), pgdb.Timestamps(occurred))
	return nil
}

// appendItems appends items as the JSON array encoding/json would write
// ([] for none, "null" being no item list), without its reflection: this
// runs for every order of every batch. The strings are valid UTF-8
// (order.Machine.CheckEvent), so escaping the quote, the backslash and the
// control characters makes them JSON.
func appendItems(b []byte, items []order.Item) []byte {
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"sku":`...)
		b = appendJSONString(b, it.SKU)
		b = append(b, `,"quantity":`...)
		b = strconv.AppendInt(b, int64(it.Quantity), 10)
		b = append(b, `,"unit_price_minor":`...)
		b = strconv.AppendInt(b, it.UnitPriceMinor, 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

const selectSQL = `
SELECT id, status, version, customer_id, currency, items, total_minor,
       payment_reference, cancel_reason, refund_reason, created_at, updated_at,
       last_event_id, last_event_at, projected_at
FROM order_projection WHERE id = $1`

// Get returns the projection of order id, or an error wrapping
// order.ErrNotFound if no event of it has been applied, or one wrapping
// order.ErrUnavailable (naming the server, and the driver's cause) if the
// database could not be reached or used within the bound.
func (v *View) Get(ctx context.Context, id uuid.UUID) (order.Projection, error) {
	var (
		p      order.Projection
		o      = &p.Order
		status string
		items  []byte
	)
	// Bounded, so a read API request never waits on a pool that cannot
	// connect for longer than a client would.
	bctx, cancel := v.calls.Bound(ctx)
	defer cancel()
	err := v.db.QueryRow(bctx, selectSQL, id).Scan(&o.ID, &status, &o.Version, &o.CustomerID,
		&o.Currency, &items, &o.TotalMinor, &o.PaymentReference, &o.CancelReason, &o.RefundReason,
		&o.CreatedAt, &o.UpdatedAt, &p.LastEventID, &p.LastEventAt, &p.ProjectedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return order.Projection{}, fmt.Errorf("get projection %s: %w", id, order.ErrNotFound)
	}
	if pgdb.Unavailable(ctx, err) {
		return order.Projection{}, fmt.Errorf("get projection %s: %w: %w", id, order.ErrUnavailable, v.calls.Explain(err))
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
