package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/devkit/memstore"
	"github.com/ordersonkafka/orders/internal/devkit/storetest"
	"github.com/ordersonkafka/orders/internal/order"
)

func TestStoreKeepsTheOrderStoreContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) order.Store { return memstore.New() })
}

func newOrder(t *testing.T, customer string) (order.Order, order.Event) {
	t.Helper()
	o, ev, err := order.Place(order.NewOrder{CustomerID: customer, Currency: "EUR", Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 1}}},
		order.Now(), order.Meta{CorrelationID: "c-" + customer})
	if err != nil {
		t.Fatal(err)
	}
	return o, ev
}

// storeWithAnOrder is a new store holding one placed order, o, placed by ev.
func storeWithAnOrder(t *testing.T) (*memstore.Store, order.Order, order.Event) {
	t.Helper()
	s := memstore.New()
	o, ev := newOrder(t, "c")
	if _, _, err := s.Create(context.Background(), o, ev, nil); err != nil {
		t.Fatal(err)
	}
	return s, o, ev
}

func pay(o *order.Order) (order.Event, error) {
	return order.Standard.Apply(o, order.Change{Action: order.ActionPay}, order.Now(), order.Meta{})
}

// As the outbox would: every accepted change records its event, in the
// order written, and a refused or replayed one records none.
func TestEveryAcceptedChangeAndOnlyItRecordsAnEvent(t *testing.T) {
	t.Parallel()
	s := memstore.New()
	ctx := context.Background()
	place := func(customer string, idem *order.Idempotency) order.Event {
		t.Helper()
		o, ev := newOrder(t, customer)
		if _, _, err := s.Create(ctx, o, ev, idem); err != nil && !errors.Is(err, order.ErrIdempotencyConflict) {
			t.Fatal(err)
		}
		return ev
	}
	plain := place("plain", nil)
	keyed := place("keyed", &order.Idempotency{Key: "k", Fingerprint: []byte("a"), Response: []byte("r")})
	place("replayed", &order.Idempotency{Key: "k", Fingerprint: []byte("a"), Response: []byte("r")})
	place("conflicting", &order.Idempotency{Key: "k", Fingerprint: []byte("b"), Response: []byte("r")})
	if _, err := s.Update(ctx, plain.Order.ID, nil, pay); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, plain.Order.ID, nil, pay); !errors.Is(err, order.ErrInvalidTransition) {
		t.Fatalf("paying twice: %v", err)
	}
	if _, err := s.Update(ctx, keyed.Order.ID, func(int64) bool { return false }, pay); !errors.Is(err, order.ErrVersionMismatch) {
		t.Fatalf("a refused match: %v", err)
	}
	var got []string
	for _, ev := range s.Events() {
		got = append(got, fmt.Sprintf("%s %s v%d %s", ev.Order.CustomerID, ev.Type, ev.Order.Version, ev.Meta.CorrelationID))
	}
	want := []string{"plain PLACED v1 c-plain", "keyed PLACED v1 c-keyed", "plain PAID v2 "}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if n := len(s.Orders()); n != 2 {
		t.Errorf("%d orders, want 2", n)
	}
	if keys := s.IdempotencyKeys(); !slices.Equal(keys, []string{"k"}) {
		t.Errorf("keys %q, want [k]", keys)
	}
}

// Concurrent changes of one order record one event per version, in version
// order.
func TestOneOrdersEventsFollowItsVersions(t *testing.T) {
	t.Parallel()
	s, o, _ := storeWithAnOrder(t)
	ctx := context.Background()
	done := make(chan error)
	for i := range 20 {
		action := []order.Action{order.ActionPay, order.ActionRefund, order.ActionCancel}[i%3]
		go func() {
			_, err := s.Update(ctx, o.ID, nil, func(o *order.Order) (order.Event, error) {
				return order.Standard.Apply(o, order.Change{Action: action}, order.Now(), order.Meta{})
			})
			done <- err
		}()
	}
	for range 20 {
		if err := <-done; err != nil && !errors.Is(err, order.ErrInvalidTransition) {
			t.Error(err)
		}
	}
	final, err := s.Get(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	events := s.Events()
	if int64(len(events)) != final.Version {
		t.Fatalf("%d events for an order at version %d", len(events), final.Version)
	}
	for i, ev := range events {
		if ev.Order.Version != int64(i+1) {
			t.Errorf("event %d is of version %d", i, ev.Order.Version)
		}
	}
}

// Fail stands for an unreachable database: every call fails with its error
// and writes nothing, until Fail(nil).
func TestFailFailsEveryCallAndWritesNothing(t *testing.T) {
	t.Parallel()
	s, o, _ := storeWithAnOrder(t)
	ctx := context.Background()
	outage := fmt.Errorf("%w: the test's outage", order.ErrUnavailable)
	s.Fail(outage)
	other, oev := newOrder(t, "d")
	calls := map[string]func() error{
		"Ping":   func() error { return s.Ping(ctx) },
		"Create": func() error { _, _, err := s.Create(ctx, other, oev, &order.Idempotency{Key: "k"}); return err },
		"Get":    func() error { _, err := s.Get(ctx, o.ID); return err },
		"List":   func() error { _, _, err := s.List(ctx, order.ListFilter{Limit: 10}); return err },
		"Update": func() error { _, err := s.Update(ctx, o.ID, nil, pay); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, order.ErrUnavailable) {
			t.Errorf("%s while failing: %v, want ErrUnavailable", name, err)
		}
	}
	if n, e, k := len(s.Orders()), len(s.Events()), len(s.IdempotencyKeys()); n != 1 || e != 1 || k != 0 {
		t.Errorf("while failing it wrote: %d orders, %d events, %d keys", n, e, k)
	}
	s.Fail(nil)
	for name, call := range calls {
		if err := call(); err != nil {
			t.Errorf("%s after Fail(nil): %v", name, err)
		}
	}
}

// What a caller gets is its own: changing it changes nothing stored.
func TestCallersShareNothingWithTheStore(t *testing.T) {
	t.Parallel()
	s, o, ev := storeWithAnOrder(t)
	ctx := context.Background()
	o.Items[0].SKU, ev.Order.Items[0].SKU = "changed by the caller", "changed by the caller"
	got, err := s.Get(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Items[0].SKU = "changed by a reader"
	listed, _, _ := s.List(ctx, order.ListFilter{Limit: 1})
	listed[0].Items[0].SKU = "changed by a lister"
	s.Events()[0].Order.Items[0].SKU = "changed by a test"
	s.Orders()[0].Items[0].SKU = "changed by a test"
	if again, _ := s.Get(ctx, o.ID); again.Items[0].SKU != "s" {
		t.Errorf("the stored order's SKU is %q", again.Items[0].SKU)
	}
	if sku := s.Events()[0].Order.Items[0].SKU; sku != "s" {
		t.Errorf("the recorded event's SKU is %q", sku)
	}
	if _, err := s.Get(ctx, uuid.New()); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("an unknown order: %v", err)
	}
}
