package orderstore

import (
	"slices"
	"sync"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/order"
)

// recentOrders remembers the orders this store last wrote, so that a change
// of one can skip reading it first: the change is written with the version
// remembered, and the write's version check (changeSQL) makes a stale memory
// harmless — another replica's change, or this one's own in flight, leaves 0
// rows changed, and the change starts again from a read. Most changes follow
// a place or a change made here moments before, so most take one round trip
// instead of two.
//
// It is bounded: when full, it forgets an arbitrary entry for each new one.
type recentOrders struct {
	mu     sync.Mutex
	max    int
	orders map[uuid.UUID]order.Order
}

// recentOrdersMax bounds the memory at a few MiB (an order is a few hundred
// bytes): minutes of orders at the rates make bench drives.
const recentOrdersMax = 8192

func newRecentOrders(max int) *recentOrders {
	return &recentOrders{max: max, orders: make(map[uuid.UUID]order.Order, max)}
}

// get returns a copy of the order remembered under id, if any.
func (r *recentOrders) get(id uuid.UUID) (order.Order, bool) {
	r.mu.Lock()
	o, ok := r.orders[id]
	r.mu.Unlock()
	if ok {
		o.Items = slices.Clone(o.Items)
	}
	return o, ok
}

// put remembers o as written, unless a later version of it is remembered.
func (r *recentOrders) put(o order.Order) {
	o.Items = slices.Clone(o.Items)
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.orders[o.ID]; ok {
		if cur.Version > o.Version {
			return
		}
	} else if len(r.orders) >= r.max {
		for id := range r.orders {
			delete(r.orders, id)
			break
		}
	}
	r.orders[o.ID] = o
}
