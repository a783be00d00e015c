// Package storetest is the contract of order.Store as one suite, run against
// every implementation: Run asserts what the interface's documentation
// promises — places, reads and lists, idempotent places, version-matched
// and racing updates, and the errors each refusal returns — through the
// interface alone, so any store that passes it can stand in for another.
//
// What only an implementation can arrange (making its storage unreachable
// for order.ErrUnavailable, looking inside it for the outbox rows) is
// tested beside it, not here.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/order"
)

// Run runs the suite: one subtest per contract, in parallel, each on a
// store of its own that newStore returns empty (newStore may call t.Fatal,
// and should release the store in t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) order.Store) {
	tests := []struct {
		name string
		test func(t *testing.T, s order.Store)
	}{
		{"a placed order reads back as it was placed", placeAndGet},
		{"an unknown order is ErrNotFound to Get and Update", notFound},
		{"a place retried with the same key and body replays the stored response and writes nothing", idempotentReplay},
		{"a key reused with another body is ErrIdempotencyConflict and writes nothing", idempotencyConflict},
		{"places racing with one key place one order", idempotentRace},
		{"an update stores what fn made of the order", update},
		{"a version match refused is ErrVersionMismatch, calls no fn and changes nothing", versionMismatch},
		{"fn's error is returned unchanged and nothing is written", fnError},
		{"an invalid transition is fn's TransitionError and changes nothing", invalidTransition},
		{"concurrent changes of one order are serialized: one wins, the others see its result", concurrentChanges},
		{"a change that raced another starts again from the new state", racedChange},
		{"a change that raced another checks the version match again", racedMatch},
		{"list filters by customer and status, in ascending ID order, a page at a time", list},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, newStore(t))
		})
	}
}

// timeout bounds every call of the suite.
const timeout = 30 * time.Second

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return c
}

// newOrder makes an order of customer at version 1 and its PLACED event.
func newOrder(t *testing.T, customer string) (order.Order, order.Event) {
	t.Helper()
	o, ev, err := order.Place(order.NewOrder{CustomerID: customer, Currency: "EUR",
		Items: []order.Item{{SKU: "BOOK", Quantity: 2, UnitPriceMinor: 1250}, {SKU: "PEN", Quantity: 1, UnitPriceMinor: 150}}},
		order.Now(), order.Meta{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", CorrelationID: "storetest"})
	if err != nil {
		t.Fatal(err)
	}
	return o, ev
}

// place stores a new order of customer without an idempotency key.
func place(t *testing.T, s order.Store, customer string) order.Order {
	t.Helper()
	o, ev := newOrder(t, customer)
	if _, replayed, err := s.Create(ctx(t), o, ev, nil); err != nil || replayed {
		t.Fatalf("Create: replayed %v, %v", replayed, err)
	}
	return o
}

// change is an Update's fn applying action.
func change(action order.Action) func(*order.Order) (order.Event, error) {
	return func(o *order.Order) (order.Event, error) {
		return order.Standard.Apply(o, order.Change{Action: action}, order.Now(), order.Meta{})
	}
}

// get reads order id, failing t if it cannot.
func get(t *testing.T, s order.Store, id uuid.UUID) order.Order {
	t.Helper()
	o, err := s.Get(ctx(t), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return o
}

// wantSame fails t unless got is want (times compared as instants).
func wantSame(t *testing.T, what string, got, want order.Order) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s: created %s updated %s, want %s and %s", what, got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	got.CreatedAt, got.UpdatedAt = want.CreatedAt, want.UpdatedAt
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// wantAbsent fails t unless order id is ErrNotFound.
func wantAbsent(t *testing.T, s order.Store, id uuid.UUID, why string) {
	t.Helper()
	if o, err := s.Get(ctx(t), id); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("%s: Get = %+v, %v; want ErrNotFound", why, o, err)
	}
}

func placeAndGet(t *testing.T, s order.Store) {
	o, ev := newOrder(t, "c-1")
	if _, replayed, err := s.Create(ctx(t), o, ev, nil); err != nil || replayed {
		t.Fatalf("Create: replayed %v, %v", replayed, err)
	}
	wantSame(t, "the order read back", get(t, s, o.ID), o)
}

func notFound(t *testing.T, s order.Store) {
	place(t, s, "c-1") // the store is not empty
	id := uuid.New()
	if o, err := s.Get(ctx(t), id); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("Get of an unknown order: %+v, %v; want ErrNotFound", o, err)
	}
	called := false
	_, err := s.Update(ctx(t), id, nil, func(o *order.Order) (order.Event, error) {
		called = true
		return change(order.ActionPay)(o)
	})
	if !errors.Is(err, order.ErrNotFound) || called {
		t.Errorf("Update of an unknown order: %v, fn called %v; want ErrNotFound and no call", err, called)
	}
	wantAbsent(t, s, id, "after the Update of an unknown order")
}

func idempotentReplay(t *testing.T, s order.Store) {
	first, ev := newOrder(t, "c-1")
	idem := &order.Idempotency{Key: "key-1", Fingerprint: []byte("body-a"), Response: []byte(`{"id":"` + first.ID.String() + `"}`)}
	if _, replayed, err := s.Create(ctx(t), first, ev, idem); err != nil || replayed {
		t.Fatalf("first Create with key-1: replayed %v, %v", replayed, err)
	}
	// The retry is a new order (a new ID) from the same request.
	retry, rev := newOrder(t, "c-1")
	resp, replayed, err := s.Create(ctx(t), retry, rev, &order.Idempotency{Key: "key-1", Fingerprint: []byte("body-a"), Response: []byte("another response")})
	if err != nil || !replayed || !bytes.Equal(resp, idem.Response) {
		t.Fatalf("retried Create: %q, replayed %v, %v; want the first response %q replayed", resp, replayed, err, idem.Response)
	}
	wantAbsent(t, s, retry.ID, "the retried place's order")
	wantSame(t, "the first order", get(t, s, first.ID), first)
	// Another key is another request.
	other, oev := newOrder(t, "c-1")
	if _, replayed, err := s.Create(ctx(t), other, oev, &order.Idempotency{Key: "key-2", Fingerprint: []byte("body-a"), Response: []byte("r2")}); err != nil || replayed {
		t.Fatalf("Create with key-2: replayed %v, %v", replayed, err)
	}
	get(t, s, other.ID)
}

func idempotencyConflict(t *testing.T, s order.Store) {
	first, ev := newOrder(t, "c-1")
	if _, _, err := s.Create(ctx(t), first, ev, &order.Idempotency{Key: "key-1", Fingerprint: []byte("body-a"), Response: []byte("r1")}); err != nil {
		t.Fatal(err)
	}
	other, oev := newOrder(t, "c-2")
	resp, replayed, err := s.Create(ctx(t), other, oev, &order.Idempotency{Key: "key-1", Fingerprint: []byte("body-b"), Response: []byte("r2")})
	if !errors.Is(err, order.ErrIdempotencyConflict) || replayed {
		t.Fatalf("Create with key-1 and another body: %q, replayed %v, %v; want ErrIdempotencyConflict", resp, replayed, err)
	}
	wantAbsent(t, s, other.ID, "the conflicting place's order")
	wantSame(t, "the first order", get(t, s, first.ID), first)
}

func idempotentRace(t *testing.T, s order.Store) {
	const n = 8
	type result struct {
		id         uuid.UUID
		sent, resp []byte
		replayed   bool
		err        error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	for i := range n {
		o, ev := newOrder(t, "c-1")
		sent := fmt.Appendf(nil, "response %d", i)
		go func() {
			<-start
			resp, replayed, err := s.Create(context.Background(), o, ev, &order.Idempotency{Key: "same", Fingerprint: []byte("body"), Response: sent})
			results <- result{o.ID, sent, resp, replayed, err}
		}()
	}
	close(start)
	var placed, replays []result
	for range n {
		r := <-results
		switch {
		case r.err != nil:
			t.Errorf("Create: %v", r.err)
		case r.replayed:
			replays = append(replays, r)
		default:
			placed = append(placed, r)
		}
	}
	if len(placed) != 1 {
		t.Fatalf("%d of %d racing places with one key placed an order, want 1", len(placed), n)
	}
	get(t, s, placed[0].id)
	for _, r := range replays {
		wantAbsent(t, s, r.id, "a replayed place's order")
		if !bytes.Equal(r.resp, placed[0].sent) {
			t.Errorf("a replay answered %q, want the stored response %q", r.resp, placed[0].sent)
		}
	}
}

func update(t *testing.T, s order.Store) {
	o := place(t, s, "c-1")
	var seen []int64
	paid, err := s.Update(ctx(t), o.ID, func(v int64) bool { seen = append(seen, v); return v == 1 }, func(o *order.Order) (order.Event, error) {
		return order.Standard.Apply(o, order.Change{Action: order.ActionPay, PaymentReference: "psp-1"}, order.Now(), order.Meta{})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []int64{1}) {
		t.Errorf("match was asked about versions %v, want [1]", seen)
	}
	if paid.Status != order.StatusPaid || paid.Version != 2 || paid.PaymentReference != "psp-1" || paid.ID != o.ID {
		t.Errorf("Update returned %+v", paid)
	}
	wantSame(t, "the order read after the update", get(t, s, o.ID), paid)
	refunded, err := s.Update(ctx(t), o.ID, nil, change(order.ActionRefund))
	if err != nil || refunded.Status != order.StatusRefunded || refunded.Version != 3 {
		t.Fatalf("refund with no match: %+v, %v", refunded, err)
	}
	wantSame(t, "the order read after the refund", get(t, s, o.ID), refunded)
}

func versionMismatch(t *testing.T, s order.Store) {
	o := place(t, s, "c-1")
	paid, err := s.Update(ctx(t), o.ID, nil, change(order.ActionPay))
	if err != nil {
		t.Fatal(err)
	}
	called := false
	_, err = s.Update(ctx(t), o.ID, func(v int64) bool { return v == 1 }, func(o *order.Order) (order.Event, error) {
		called = true
		return change(order.ActionRefund)(o)
	})
	if !errors.Is(err, order.ErrVersionMismatch) || called {
		t.Fatalf("Update matching version 1 of an order at version 2: %v, fn called %v; want ErrVersionMismatch and no call", err, called)
	}
	wantSame(t, "the order after a refused match", get(t, s, o.ID), paid)
}

func fnError(t *testing.T, s order.Store) {
	o := place(t, s, "c-1")
	refusal := errors.New("the payment provider said no")
	_, err := s.Update(ctx(t), o.ID, nil, func(o *order.Order) (order.Event, error) {
		o.Status, o.Version = order.StatusPaid, o.Version+1 // changed, then refused: nothing may be kept
		return order.Event{}, refusal
	})
	if err != refusal { //nolint:errorlint // the contract: fn's error unchanged
		t.Fatalf("Update whose fn failed: %v, want fn's error itself", err)
	}
	wantSame(t, "the order after fn failed", get(t, s, o.ID), o)
}

func invalidTransition(t *testing.T, s order.Store) {
	o := place(t, s, "c-1")
	_, err := s.Update(ctx(t), o.ID, nil, change(order.ActionRefund))
	var te *order.TransitionError
	if !errors.Is(err, order.ErrInvalidTransition) || !errors.As(err, &te) || te.From != order.StatusPlaced || te.Action != order.ActionRefund {
		t.Fatalf("refund of a placed order: %v, want a TransitionError from placed", err)
	}
	wantSame(t, "the order after a refused transition", get(t, s, o.ID), o)
}

func concurrentChanges(t *testing.T, s order.Store) {
	o := place(t, s, "c-1")
	const n = 10
	type result struct {
		o   order.Order
		err error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	for i := range n {
		action := []order.Action{order.ActionPay, order.ActionCancel}[i%2]
		go func() {
			<-start
			changed, err := s.Update(context.Background(), o.ID, nil, change(action))
			results <- result{changed, err}
		}()
	}
	close(start)
	var won []order.Order
	for range n {
		r := <-results
		switch {
		case r.err == nil:
			won = append(won, r.o)
		case !errors.Is(r.err, order.ErrInvalidTransition):
			t.Errorf("a losing change: %v, want ErrInvalidTransition (it saw the winner's result)", r.err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent changes of a placed order won, want 1", len(won), n)
	}
	if won[0].Version != 2 {
		t.Errorf("the winner is at version %d, want 2", won[0].Version)
	}
	wantSame(t, "the order after the race", get(t, s, o.ID), won[0])
}

// race runs outer as an Update of a placed order whose fn, the first time it
// runs, makes another change (a pay) commit — or try to: a store that locks
// the order for the length of fn makes it wait, and fn goes on after a
// while. It returns outer's result, the pay's, and the orders fn was
// given.
func race(t *testing.T, s order.Store, o order.Order, match order.VersionMatch, outer order.Action) (outerErr, payErr error, given []order.Order) {
	t.Helper()
	payDone := make(chan error, 1)
	_, outerErr = s.Update(ctx(t), o.ID, match, func(cur *order.Order) (order.Event, error) {
		given = append(given, *cur)
		if len(given) == 1 {
			go func() {
				_, err := s.Update(context.Background(), o.ID, nil, change(order.ActionPay))
				payDone <- err
			}()
			select {
			case err := <-payDone:
				payDone <- err
			case <-time.After(2 * time.Second): // the store holds the order for us
			}
		}
		return change(outer)(cur)
	})
	select {
	case payErr = <-payDone:
	case <-time.After(timeout):
		t.Fatal("the racing pay never returned")
	}
	return outerErr, payErr, given
}

func racedChange(t *testing.T, s order.Store) {
	o := place(t, s, "c-1")
	cancelErr, payErr, given := race(t, s, o, nil, order.ActionCancel)
	final := get(t, s, o.ID)
	switch {
	case payErr == nil && cancelErr == nil:
		t.Fatalf("both the pay and the cancel of a placed order were accepted: a lost update (now %s v%d)", final.Status, final.Version)
	case payErr == nil: // the pay won: the cancel started again from paid
		if !errors.Is(cancelErr, order.ErrInvalidTransition) || final.Status != order.StatusPaid {
			t.Errorf("cancel after a racing pay: %v, order %s; want ErrInvalidTransition, paid", cancelErr, final.Status)
		}
		if last := given[len(given)-1]; len(given) < 2 || last.Status != order.StatusPaid || last.Version != 2 {
			t.Errorf("fn was given %+v: want it called again with the paid order", given)
		}
	case cancelErr == nil: // the store held the order: the pay came second
		if !errors.Is(payErr, order.ErrInvalidTransition) || final.Status != order.StatusCancelled {
			t.Errorf("pay after the cancel: %v, order %s; want ErrInvalidTransition, cancelled", payErr, final.Status)
		}
	default:
		t.Fatalf("neither change was accepted: pay %v, cancel %v", payErr, cancelErr)
	}
	if final.Version != 2 {
		t.Errorf("order at version %d after one accepted change, want 2", final.Version)
	}
}

func racedMatch(t *testing.T, s order.Store) {
	o := place(t, s, "c-1")
	cancelErr, payErr, _ := race(t, s, o, func(v int64) bool { return v == 1 }, order.ActionCancel)
	final := get(t, s, o.ID)
	switch {
	case payErr == nil && cancelErr == nil:
		t.Fatalf("both the pay and the cancel matching version 1 were accepted (now %s v%d)", final.Status, final.Version)
	case payErr == nil:
		if !errors.Is(cancelErr, order.ErrVersionMismatch) || final.Status != order.StatusPaid {
			t.Errorf("cancel matching version 1 after a racing pay: %v, order %s; want ErrVersionMismatch, paid", cancelErr, final.Status)
		}
	case cancelErr == nil:
		if !errors.Is(payErr, order.ErrInvalidTransition) || final.Status != order.StatusCancelled {
			t.Errorf("pay after the cancel: %v, order %s", payErr, final.Status)
		}
	default:
		t.Fatalf("neither change was accepted: pay %v, cancel %v", payErr, cancelErr)
	}
}

func list(t *testing.T, s order.Store) {
	var a, b []order.Order // customers a and b, in the order placed
	for i := range 5 {
		a = append(a, place(t, s, "customer-a"))
		if i < 2 {
			b = append(b, place(t, s, "customer-b"))
		}
	}
	for _, i := range []int{1, 3} { // two of a's orders paid
		paid, err := s.Update(ctx(t), a[i].ID, nil, change(order.ActionPay))
		if err != nil {
			t.Fatal(err)
		}
		a[i] = paid
	}
	paidB, err := s.Update(ctx(t), b[0].ID, nil, change(order.ActionPay))
	if err != nil {
		t.Fatal(err)
	}
	b[0] = paidB
	ascending := func(os []order.Order) []order.Order {
		return slices.SortedFunc(slices.Values(os), func(x, y order.Order) int { return bytes.Compare(x.ID[:], y.ID[:]) })
	}
	ids := func(os []order.Order) []uuid.UUID {
		out := make([]uuid.UUID, len(os))
		for i, o := range os {
			out[i] = o.ID
		}
		return out
	}
	wantList := func(what string, f order.ListFilter, want []order.Order, wantMore bool) []order.Order {
		t.Helper()
		got, more, err := s.List(ctx(t), f)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !slices.Equal(ids(got), ids(want)) || more != wantMore {
			t.Fatalf("%s: %v (more %v), want %v (more %v)", what, ids(got), more, ids(want), wantMore)
		}
		for i := range got {
			wantSame(t, what, got[i], want[i])
		}
		return got
	}

	all := ascending(append(slices.Clone(a), b...))
	wantList("everything", order.ListFilter{Limit: order.MaxListLimit}, all, false)
	wantList("exactly a page", order.ListFilter{Limit: len(all)}, all, false)
	sortedA := ascending(a)
	page := wantList("customer a, first page", order.ListFilter{CustomerID: "customer-a", Limit: 2}, sortedA[:2], true)
	page = wantList("customer a, second page", order.ListFilter{CustomerID: "customer-a", After: page[1].ID, Limit: 2}, sortedA[2:4], true)
	wantList("customer a, last page", order.ListFilter{CustomerID: "customer-a", After: page[1].ID, Limit: 2}, sortedA[4:], false)
	var paidA, placedB []order.Order
	for _, o := range sortedA {
		if o.Status == order.StatusPaid {
			paidA = append(paidA, o)
		}
	}
	for _, o := range ascending(b) {
		if o.Status == order.StatusPlaced {
			placedB = append(placedB, o)
		}
	}
	wantList("customer a's paid orders", order.ListFilter{CustomerID: "customer-a", Status: order.StatusPaid, Limit: 50}, paidA, false)
	wantList("customer b's placed orders", order.ListFilter{CustomerID: "customer-b", Status: order.StatusPlaced, Limit: 50}, placedB, false)
	wantList("an unknown customer", order.ListFilter{CustomerID: "nobody", Limit: 50}, nil, false)
	wantList("nothing after the last", order.ListFilter{After: all[len(all)-1].ID, Limit: 50}, nil, false)
	var paid []order.Order
	for _, o := range all {
		if o.Status == order.StatusPaid {
			paid = append(paid, o)
		}
	}
	wantList("every paid order", order.ListFilter{Status: order.StatusPaid, Limit: 50}, paid, false)
}
