// Package customertotals is a read model of order-consumer: per customer,
// how many orders are in each status and what they add up to per currency
// (customer_orders, migrations/projection). The read API serves it at GET
// /customers/{customer_id}/orders.
//
// Guarantees: it receives only applied events, in the order they were
// applied (projectionstore), and each moves its order from the status it
// was in (order.Applied.From) to the one it leaves, with the order's total:
// so the table always equals counting and summing the order projection by
// customer, status and currency (tested). An order's customer, currency and
// total are fixed when it is placed; no transition changes them. A batch is
// one statement adding what each (customer, status, currency) gains or
// loses, in key order, so two batches updating the same customers take
// their row locks in the same order.
package customertotals

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/text"
)

// Totals is the read model. It is safe for concurrent use.
type Totals struct {
	pool  *pgxpool.Pool
	calls pgdb.Calls // each read's bound, and the server for errors
}

// New returns the read model, reading through pool, each read bounded by
// pgdb.CallTimeout.
func New(pool *pgxpool.Pool) *Totals { return &Totals{pool: pool, calls: pgdb.CallsTo(pool, 0)} }

// WithTimeout bounds each read by d (DATABASE_TIMEOUT) instead, and returns
// t. Call it before t is used.
func (t *Totals) WithTimeout(d time.Duration) *Totals {
	t.calls = pgdb.CallsTo(t.pool, d)
	return t
}

// Name is the read model's name in metrics and errors.
func (*Totals) Name() string { return "customer_orders" }

// Tables are the tables a rebuild moves in.
func (*Totals) Tables() []string { return []string{"customer_orders"} }

const addSQL = `
INSERT INTO customer_orders AS c (customer_id, status, currency, orders, total_minor)
SELECT customer_id, status, currency, orders, total_minor::numeric
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
     AS d(customer_id, status, currency, orders, total_minor)
ORDER BY customer_id, status, currency
ON CONFLICT (customer_id, status, currency) DO UPDATE SET
    orders = c.orders + EXCLUDED.orders, total_minor = c.total_minor + EXCLUDED.total_minor`

type key struct {
	customer string
	status   order.Status
	currency string
}

type delta struct {
	orders int64
	total  big.Int
}

// Queue adds what applied moves between statuses: each event takes its
// order out of the status it was in (none for a new order) and into its
// own.
func (t *Totals) Queue(b *pgx.Batch, applied []order.Applied) error {
	deltas := map[key]*delta{}
	var keys []key
	add := func(k key, orders int64, total int64) {
		d, ok := deltas[k]
		if !ok {
			d = &delta{}
			deltas[k] = d
			keys = append(keys, k)
		}
		d.orders += orders
		d.total.Add(&d.total, big.NewInt(total))
	}
	for _, a := range applied {
		o := a.Event.Order
		if a.From.Status != "" {
			add(key{o.CustomerID, a.From.Status, o.Currency}, -1, -o.TotalMinor)
		}
		add(key{o.CustomerID, o.Status, o.Currency}, 1, o.TotalMinor)
	}
	var (
		customers, statuses, currencies, totals []string
		orders                                  []int64
	)
	for _, k := range keys {
		d := deltas[k]
		if d.orders == 0 && d.total.Sign() == 0 {
			continue // moved in and out within the batch
		}
		customers, statuses, currencies = append(customers, k.customer), append(statuses, string(k.status)), append(currencies, k.currency)
		orders, totals = append(orders, d.orders), append(totals, d.total.String())
	}
	if len(customers) > 0 {
		b.Queue(addSQL, pgdb.Texts(customers), pgdb.Texts(statuses), pgdb.Texts(currencies), pgdb.Int8s(orders), pgdb.Texts(totals))
	}
	return nil
}

const selectSQL = `
SELECT status, currency, orders, total_minor::text FROM customer_orders
WHERE customer_id = $1 AND orders > 0`

// Get returns what the orders of customer come to, or an error wrapping
// order.ErrNotFound if none of the customer's orders has been applied, or
// one wrapping order.ErrUnavailable (naming the server, and the driver's
// cause) if the database could not be reached or used within the bound.
func (t *Totals) Get(ctx context.Context, customer string) (order.CustomerOrders, error) {
	bctx, cancel := t.calls.Bound(ctx)
	defer cancel()
	c := order.CustomerOrders{CustomerID: customer, Orders: map[order.Status]int64{}, Totals: map[order.Status]map[string]*big.Int{}}
	var (
		status, currency, total string
		orders                  int64
	)
	rows, err := t.pool.Query(bctx, selectSQL, customer)
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&status, &currency, &orders, &total}, func() error {
			sum, ok := new(big.Int).SetString(total, 10)
			if !ok {
				return fmt.Errorf("total %q of %s orders in %s is not an integer", total, status, currency)
			}
			s := order.Status(status)
			c.Orders[s] += orders
			if c.Totals[s] == nil {
				c.Totals[s] = map[string]*big.Int{}
			}
			c.Totals[s][currency] = sum
			return nil
		})
	}
	switch {
	case pgdb.Unavailable(ctx, err):
		return order.CustomerOrders{}, fmt.Errorf("get orders of customer %s: %w: %w", text.Quote(customer, 64), order.ErrUnavailable, t.calls.Explain(err))
	case err != nil:
		return order.CustomerOrders{}, fmt.Errorf("get orders of customer %s: %w", text.Quote(customer, 64), err)
	case len(c.Orders) == 0:
		return order.CustomerOrders{}, fmt.Errorf("get orders of customer %s: %w", text.Quote(customer, 64), order.ErrNotFound)
	}
	return c, nil
}
