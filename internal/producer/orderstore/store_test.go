package orderstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/devkit/storetest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/producer/orderstore"
	"github.com/ordersonkafka/orders/migrations"
)

// newStore is a Store on a fresh, migrated database of its own.
func newStore(t *testing.T) (*orderstore.Store, *pgtest.DB) {
	t.Helper()
	db := pgtest.MustDB(t, migrations.Orders())
	enc, err := eventcodec.NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	return orderstore.New(db.Pool, enc, "order-events", nil, 0), db
}

func TestStoreKeepsTheOrderStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) order.Store {
		s, _ := newStore(t)
		return s
	})
}

// outboxRows counts the outbox rows of order id (their key is its ID).
func outboxRows(t *testing.T, db *pgtest.DB, id uuid.UUID) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE message_key = $1", []byte(id.String())).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The transactional outbox: every accepted change writes its event's row
// with it, and a refused or replayed one writes none.
func TestEveryAcceptedChangeAndOnlyItWritesAnOutboxRow(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	place := func(idem *order.Idempotency) order.Order {
		t.Helper()
		o, ev, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 1}}}, order.Now(), order.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Create(ctx, o, ev, idem); err != nil && !errors.Is(err, order.ErrIdempotencyConflict) {
			t.Fatal(err)
		}
		return o
	}
	pay := func(o *order.Order) (order.Event, error) {
		return order.Standard.Apply(o, order.Change{Action: order.ActionPay}, order.Now(), order.Meta{})
	}

	plain := place(nil)
	keyed := place(&order.Idempotency{Key: "k", Fingerprint: []byte("a"), Response: []byte("r")})
	replayed := place(&order.Idempotency{Key: "k", Fingerprint: []byte("a"), Response: []byte("r")})
	conflicting := place(&order.Idempotency{Key: "k", Fingerprint: []byte("b"), Response: []byte("r")})
	if _, err := s.Update(ctx, plain.ID, nil, pay); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, plain.ID, nil, pay); !errors.Is(err, order.ErrInvalidTransition) {
		t.Fatalf("paying twice: %v", err)
	}
	if _, err := s.Update(ctx, keyed.ID, func(int64) bool { return false }, pay); !errors.Is(err, order.ErrVersionMismatch) {
		t.Fatalf("a refused match: %v", err)
	}
	for _, c := range []struct {
		name string
		id   uuid.UUID
		want int
	}{
		{"placed and paid", plain.ID, 2},
		{"placed with a key, then a refused match", keyed.ID, 1},
		{"a replayed place", replayed.ID, 0},
		{"a conflicting place", conflicting.ID, 0},
	} {
		if got := outboxRows(t, db, c.id); got != c.want {
			t.Errorf("%s: %d outbox rows, want %d", c.name, got, c.want)
		}
	}
}

// Every method's error wraps order.ErrUnavailable while the database is
// unreachable, and the store works again once it is back.
func TestAnUnreachableDatabaseIsErrUnavailable(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	o, ev, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 1}}}, order.Now(), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, o, ev, nil); err != nil {
		t.Fatal(err)
	}
	restart := db.Stop(t)
	other, oev, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 1}}}, order.Now(), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"Create": func() error { _, _, err := s.Create(ctx, other, oev, nil); return err },
		"Create with a key": func() error {
			_, _, err := s.Create(ctx, other, oev, &order.Idempotency{Key: "k", Fingerprint: []byte("a")})
			return err
		},
		"Get":  func() error { _, err := s.Get(ctx, o.ID); return err },
		"List": func() error { _, _, err := s.List(ctx, order.ListFilter{Limit: 10}); return err },
		"Update": func() error {
			_, err := s.Update(ctx, o.ID, nil, func(o *order.Order) (order.Event, error) {
				return order.Standard.Apply(o, order.Change{Action: order.ActionPay}, order.Now(), order.Meta{})
			})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, order.ErrUnavailable) {
			t.Errorf("%s with the database down: %v, want ErrUnavailable", name, err)
		}
	}
	restart()
	var got order.Order
	stacktest.WaitFor(t, "the store to read again (its pool's connections were ended)", 15*time.Second, func() bool {
		got, err = s.Get(ctx, o.ID)
		return err == nil
	})
	if got.Version != 1 {
		t.Fatalf("after the outage: %+v; want the order unchanged", got)
	}
	if _, err := s.Get(ctx, other.ID); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("an order placed during the outage: %v, want ErrNotFound (nothing written)", err)
	}
}
