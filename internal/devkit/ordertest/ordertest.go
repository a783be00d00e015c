// Package ordertest makes order histories for tests from a state machine:
// random walks of order.Machine, a longer machine than the one the service
// runs, and deliveries of the histories as Kafka would make them (each
// order's events in version order, orders interleaved, some delivered
// twice). Tests that must hold for any machine take their histories from
// here, so a new transition needs no new test data.
package ordertest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ordersonkafka/orders/internal/order"
)

// The statuses, actions and event types only Longer has.
const (
	StatusShipped   order.Status    = "shipped"
	StatusDelivered order.Status    = "delivered"
	ActionShip      order.Action    = "ship"
	ActionDeliver   order.Action    = "deliver"
	EventShipped    order.EventType = "SHIPPED"
	EventDelivered  order.EventType = "DELIVERED"
)

// Longer is order.Standard with two more states, paid → shipped →
// delivered: its longest history, placed to delivered, has four events,
// one more than any of Standard's. The Avro schema and the SQL CHECKs know
// only Standard's vocabulary, so a test runs Longer's events on order
// values and on a database whose status CHECK it drops, never through the
// codec.
var Longer = func() *order.Machine {
	m, err := order.NewMachine(append(order.Standard.Transitions(),
		order.Transition{From: order.StatusPaid, Action: ActionShip, To: StatusShipped, Event: EventShipped},
		order.Transition{From: StatusShipped, Action: ActionDeliver, To: StatusDelivered, Event: EventDelivered},
	)...)
	if err != nil {
		panic(err)
	}
	return m
}()

// Walk returns the history of one new order: its PLACED event, then the
// events of actions chosen at random among those m allows, each a second
// after the last, until the order is in a status with no way out or, at
// each step, with probability stop. The order belongs to one of customers
// customers (c-0, c-1, …) and is in one of currencies.
func Walk(m *order.Machine, rng *rand.Rand, start time.Time, stop float64, customers int, currencies ...string) []order.Event {
	if len(currencies) == 0 {
		currencies = []string{"EUR"}
	}
	n := order.NewOrder{
		CustomerID: fmt.Sprintf("c-%d", rng.IntN(max(customers, 1))),
		Currency:   currencies[rng.IntN(len(currencies))],
		Items:      []order.Item{{SKU: "sku-1", Quantity: int32(1 + rng.IntN(3)), UnitPriceMinor: int64(100 + rng.IntN(10_000))}},
	}
	o, ev, err := order.Place(n, start, order.Meta{})
	if err != nil {
		panic(err)
	}
	history := []order.Event{ev}
	for at := start; rng.Float64() >= stop; {
		var next []order.Transition
		for _, t := range m.Transitions() {
			if t.From == o.Status {
				next = append(next, t)
			}
		}
		if len(next) == 0 {
			break
		}
		at = at.Add(time.Second)
		ev, err := m.Apply(&o, change(next[rng.IntN(len(next))].Action), at, order.Meta{})
		if err != nil {
			panic(err)
		}
		history = append(history, ev)
	}
	return history
}

// Full returns the history along the path to s in m: PLACED, then one
// event per action of m.PathTo(s), a second apart.
func Full(m *order.Machine, s order.Status, customer, currency string, start time.Time) []order.Event {
	path, ok := m.PathTo(s)
	if !ok {
		panic(fmt.Sprintf("ordertest: %s is not a status of the machine", s))
	}
	o, ev, err := order.Place(order.NewOrder{CustomerID: customer, Currency: currency,
		Items: []order.Item{{SKU: "sku-1", Quantity: 2, UnitPriceMinor: 1250}}}, start, order.Meta{})
	if err != nil {
		panic(err)
	}
	history := []order.Event{ev}
	for i, a := range path {
		ev, err := m.Apply(&o, change(a), start.Add(time.Duration(i+1)*time.Second), order.Meta{})
		if err != nil {
			panic(err)
		}
		history = append(history, ev)
	}
	return history
}

// change is a with every detail it can carry: a payment reference for pay,
// a reason for any other action.
func change(a order.Action) order.Change {
	if a == order.ActionPay {
		return order.Change{Action: a, PaymentReference: "psp-1"}
	}
	return order.Change{Action: a, Reason: "because of " + string(a)}
}

// Deliver interleaves histories as one partition would hold them: each
// history's events in order, the histories mixed at random, and each event
// delivered again right after itself with probability redeliver (a
// producer's retry, a consumer restarted before its commit).
func Deliver(rng *rand.Rand, redeliver float64, histories ...[]order.Event) []order.Event {
	next := make([]int, len(histories))
	var open []int
	total := 0
	for i, h := range histories {
		if len(h) > 0 {
			open = append(open, i)
		}
		total += len(h)
	}
	out := make([]order.Event, 0, total+total/4)
	for len(open) > 0 {
		k := rng.IntN(len(open))
		h := open[k]
		ev := histories[h][next[h]]
		out = append(out, ev)
		if rng.Float64() < redeliver {
			out = append(out, ev)
		}
		if next[h]++; next[h] == len(histories[h]) {
			open = append(open[:k], open[k+1:]...)
		}
	}
	return out
}
