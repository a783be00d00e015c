// Package memstore is an order.Store held in memory, for the tests of what
// sits on a store — the HTTP API's routing, validation, answers and headers —
// without a database. It keeps the whole order.Store contract, as
// internal/devkit/storetest holds every implementation to it: idempotency
// keys with their fingerprints (honoured for the store's life: no TTL),
// version matches, and changes of one order serialized optimistically, as
// the PostgreSQL store does: a change that lost a race starts again from the
// new state, so Update may call fn more than once.
//
// With each accepted change it records the change's event, as the outbox
// would hold it: one per change, none for a refusal or a replay, one order's
// in version order. Events, Orders and IdempotencyKeys show what was
// written; Fail makes every call fail, as an unreachable database would.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/order"
)

// Store is an order.Store in memory. Its zero value is not usable: use New.
type Store struct {
	mu     sync.Mutex
	orders map[uuid.UUID]order.Order
	keys   map[string]key
	events []order.Event
	fail   error // every call's error while set
}

// key is a recorded Idempotency-Key.
type key struct {
	fingerprint, response []byte
}

var _ order.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{orders: map[uuid.UUID]order.Order{}, keys: map[string]key{}}
}

// maxChangeAttempts bounds the optimistic retries of one change, as the
// PostgreSQL store's do: each lost race means another change of the order
// was written meanwhile.
const maxChangeAttempts = 16

// Fail makes every call, Ping's included, return err (wrap
// order.ErrUnavailable in it for an outage) and write nothing, until
// Fail(nil).
func (s *Store) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// Ping reports whether the store answers, for readiness checks: the error
// Fail set, or nil.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refuse(ctx)
}

// refuse is why a call must not go on: its context ended, or the store was
// made to fail. The caller holds mu.
func (s *Store) refuse(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.fail
}

// Create implements order.Store.
func (s *Store) Create(ctx context.Context, o order.Order, ev order.Event, idem *order.Idempotency) (resp []byte, replayed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refuse(ctx); err != nil {
		return nil, false, fmt.Errorf("create order: %w", err)
	}
	if idem != nil {
		if k, ok := s.keys[idem.Key]; ok {
			if !bytes.Equal(k.fingerprint, idem.Fingerprint) {
				return nil, false, order.ErrIdempotencyConflict
			}
			return bytes.Clone(k.response), true, nil
		}
	}
	if _, taken := s.orders[o.ID]; taken {
		return nil, false, fmt.Errorf("create order %s: the id is taken", o.ID)
	}
	s.orders[o.ID] = clone(o)
	s.events = append(s.events, cloneEvent(ev))
	if idem == nil {
		return nil, false, nil
	}
	s.keys[idem.Key] = key{fingerprint: bytes.Clone(idem.Fingerprint), response: bytes.Clone(idem.Response)}
	return bytes.Clone(idem.Response), false, nil
}

// Get implements order.Store.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (order.Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refuse(ctx); err != nil {
		return order.Order{}, fmt.Errorf("get order %s: %w", id, err)
	}
	o, ok := s.orders[id]
	if !ok {
		return order.Order{}, fmt.Errorf("get order %s: %w", id, order.ErrNotFound)
	}
	return clone(o), nil
}

// List implements order.Store, in ascending ID order as PostgreSQL orders
// uuids (bytewise).
func (s *Store) List(ctx context.Context, f order.ListFilter) ([]order.Order, bool, error) {
	limit := f.Limit
	if limit <= 0 || limit > order.MaxListLimit {
		limit = order.DefaultListLimit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refuse(ctx); err != nil {
		return nil, false, fmt.Errorf("list orders: %w", err)
	}
	var orders []order.Order
	for _, o := range s.sorted() {
		if (f.CustomerID == "" || o.CustomerID == f.CustomerID) && (f.Status == "" || o.Status == f.Status) &&
			bytes.Compare(o.ID[:], f.After[:]) > 0 {
			orders = append(orders, clone(o))
		}
	}
	more := len(orders) > limit
	if more {
		orders = orders[:limit]
	}
	return orders, more, nil
}

// Update implements order.Store as a compare-and-swap: fn changes a copy
// of the order outside the store's lock, and what it made is written only
// if the order is still at the version fn was given; if another change was
// written meanwhile, fn is given the new state instead (match checked
// again).
func (s *Store) Update(ctx context.Context, id uuid.UUID, match order.VersionMatch, fn func(*order.Order) (order.Event, error)) (order.Order, error) {
	var next *change
	for range maxChangeAttempts {
		cur, written, err := s.swap(ctx, id, match, next)
		if err != nil || written {
			return cur, err
		}
		from := cur.Version
		ev, err := fn(&cur)
		if err != nil {
			return cur, err
		}
		next = &change{from: from, to: cur, ev: ev}
	}
	return order.Order{}, fmt.Errorf("update order %s: still changing concurrently after %d attempts", id, maxChangeAttempts)
}

// change is what fn made of an order at version from.
type change struct {
	from int64
	to   order.Order
	ev   order.Event
}

// swap writes next, if not nil, when order id is still at version
// next.from, and reports written. Otherwise it returns the order as it is
// now, for fn, or ErrVersionMismatch if match refuses its version.
func (s *Store) swap(ctx context.Context, id uuid.UUID, match order.VersionMatch, next *change) (o order.Order, written bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refuse(ctx); err != nil {
		return order.Order{}, false, fmt.Errorf("update order %s: %w", id, err)
	}
	cur, ok := s.orders[id]
	switch {
	case !ok:
		return order.Order{}, false, fmt.Errorf("update order %s: %w", id, order.ErrNotFound)
	case next != nil && cur.Version == next.from:
		s.orders[id] = clone(next.to)
		s.events = append(s.events, cloneEvent(next.ev))
		return clone(next.to), true, nil
	case match != nil && !match(cur.Version):
		return clone(cur), false, fmt.Errorf("update order %s: version %d does not match If-Match: %w", id, cur.Version, order.ErrVersionMismatch)
	}
	return clone(cur), false, nil
}

// Events returns the event of every accepted change, in the order they
// were written: what the outbox would hold.
func (s *Store) Events() []order.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	events := make([]order.Event, len(s.events))
	for i, ev := range s.events {
		events[i] = cloneEvent(ev)
	}
	return events
}

// Orders returns every order stored, in ascending ID order.
func (s *Store) Orders() []order.Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	orders := s.sorted()
	for i, o := range orders {
		orders[i] = clone(o)
	}
	return orders
}

// IdempotencyKeys returns every Idempotency-Key recorded, sorted.
func (s *Store) IdempotencyKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.keys))
}

// sorted returns the orders in ascending ID order, sharing their items with
// the store. The caller holds mu.
func (s *Store) sorted() []order.Order {
	return slices.SortedFunc(maps.Values(s.orders), func(a, b order.Order) int { return bytes.Compare(a.ID[:], b.ID[:]) })
}

// clone is o with items of its own, so no caller shares them with the store.
func clone(o order.Order) order.Order {
	o.Items = slices.Clone(o.Items)
	return o
}

func cloneEvent(ev order.Event) order.Event {
	ev.Order = clone(ev.Order)
	return ev
}
