package customertotals_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/consumer/customertotals"
	"github.com/ordersonkafka/orders/internal/consumer/orderview"
	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/devkit/ordertest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/migrations"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newStore is the consumer's store with both read models, judging with m.
// For a machine other than the service's, the order projection's status
// CHECK (which lists order.Standard's statuses) is dropped, as a
// deployment of that machine would.
func newStore(t *testing.T, m *order.Machine) (*projectionstore.Store, *customertotals.Totals, *pgtest.DB) {
	t.Helper()
	db := pgtest.MustDB(t, migrations.Projection())
	if m != order.Standard {
		if _, err := db.Pool.Exec(context.Background(), `ALTER TABLE order_projection DROP CONSTRAINT order_projection_status_check`); err != nil {
			t.Fatal(err)
		}
	}
	totals := customertotals.New(db.Pool)
	return projectionstore.New(db.Pool, m, nil, orderview.New(db.Pool), totals), totals, db
}

// table reads a query of rows (customer, status, currency, orders, total)
// as one line each, sorted.
func table(t *testing.T, db *pgtest.DB, query string) string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var (
			customer, status, currency, total string
			orders                            int64
		)
		if err := rows.Scan(&customer, &status, &currency, &orders, &total); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%s %s %s: %d orders, %s", customer, status, currency, orders, total))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

const (
	readModel = `SELECT customer_id, status, currency, orders, total_minor::text FROM customer_orders
WHERE orders <> 0 OR total_minor <> 0 ORDER BY 1, 2, 3`
	recomputed = `SELECT customer_id, status, currency, count(*), sum(total_minor)::text FROM order_projection
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`
)

// The read model always equals counting and summing the order projection
// by customer, status and currency: after every batch of random histories
// walked from the machine, delivered as a partition holds them, with
// redeliveries, events ahead of their predecessors, old versions under
// new event IDs and events claiming another customer, currency or total
// than their order was placed with, in two currencies and a few customers.
func TestTheTotalsAlwaysEqualARecomputationFromTheProjection(t *testing.T) {
	t.Parallel()
	for _, m := range []*order.Machine{order.Standard, ordertest.Longer} {
		t.Run(fmt.Sprintf("a machine of %d statuses", len(m.Statuses())), func(t *testing.T) {
			t.Parallel()
			s, _, db := newStore(t, m)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(3, 2026))
			batches := 0
			for range 5 {
				var histories [][]order.Event
				for range 12 {
					histories = append(histories, ordertest.Walk(m, rng, t0, 0.2, 4, "EUR", "USD"))
				}
				events := ordertest.Deliver(rng, 0.1, histories...)
				for range 3 {
					i := rng.IntN(len(events))
					j := rng.IntN(i + 1)
					ev := events[i]
					events = append(events[:i], events[i+1:]...)
					events = append(events[:j], append([]order.Event{ev}, events[j:]...)...)
					again := events[rng.IntN(len(events))]
					again.ID = uuid.New()
					events = append(events, again)
					events = slices.Insert(events, rng.IntN(len(events)+1), otherTerms(rng, events[rng.IntN(len(events))]))
				}
				for rest := events; len(rest) > 0; batches++ {
					n := 1 + rng.IntN(len(rest))
					if _, err := s.Apply(ctx, rest[:n]); err != nil {
						t.Fatal(err)
					}
					rest = rest[n:]
					if got, want := table(t, db, readModel), table(t, db, recomputed); got != want {
						t.Fatalf("after batch %d the read model holds\n%s\nrecomputed from the projection\n%s", batches, got, want)
					}
				}
			}
			if got := table(t, db, readModel); strings.Count(got, "\n") < 10 {
				t.Fatalf("too little to compare, the test proves nothing:\n%s", got)
			}
		})
	}
}

// otherTerms is ev under a new event ID, claiming another customer,
// currency or total (with an item more) than its order was placed with.
func otherTerms(rng *rand.Rand, ev order.Event) order.Event {
	ev.ID = uuid.New()
	o := &ev.Order
	switch rng.IntN(3) {
	case 0:
		o.CustomerID += "-other"
	case 1:
		o.Currency = map[string]string{"EUR": "USD", "USD": "EUR"}[o.Currency]
	default:
		o.Items = append(slices.Clone(o.Items), order.Item{SKU: "extra", Quantity: 1, UnitPriceMinor: 7})
		o.TotalMinor += 7
	}
	return ev
}

// Get answers with what a customer's orders come to, as big integers: two
// orders of the largest total an order can have sum past an int64.
func TestGetAddsTotalsPastAnInt64(t *testing.T) {
	t.Parallel()
	s, totals, _ := newStore(t, order.Standard)
	ctx := context.Background()
	var events []order.Event
	for i := range 3 {
		o, placed, err := order.Place(order.NewOrder{CustomerID: "c-big", Currency: "EUR",
			Items: []order.Item{{SKU: "gold", Quantity: 1, UnitPriceMinor: math.MaxInt64}}}, t0, order.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, placed)
		if i > 0 {
			paid, err := order.Standard.Apply(&o, order.Change{Action: order.ActionPay}, t0.Add(time.Second), order.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, paid)
		}
	}
	if _, err := s.Apply(ctx, events); err != nil {
		t.Fatal(err)
	}
	got, err := totals.Get(ctx, "c-big")
	if err != nil {
		t.Fatal(err)
	}
	two := new(big.Int).Mul(big.NewInt(math.MaxInt64), big.NewInt(2))
	want := order.CustomerOrders{CustomerID: "c-big",
		Orders: map[order.Status]int64{order.StatusPlaced: 1, order.StatusPaid: 2},
		Totals: map[order.Status]map[string]*big.Int{
			order.StatusPlaced: {"EUR": big.NewInt(math.MaxInt64)},
			order.StatusPaid:   {"EUR": two},
		}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %+v, want %+v", got, want)
	}
	if _, err := totals.Get(ctx, "c-nobody"); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("a customer with no order: %v, want order.ErrNotFound", err)
	}
}
