package orderstore_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/producer/orderstore"
	"github.com/ordersonkafka/orders/migrations"
)

// statements counts the statements a pool sends (pgx's own tracer hook).
type statements struct{ n atomic.Int64 }

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	s.n.Add(1)
	return ctx
}

func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// replica is a Store of its own (its own pool and memory) on db, as each
// order-api replica has, counting its statements.
func replica(t *testing.T, db *pgtest.DB) (*orderstore.Store, *statements) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	count := &statements{}
	cfg.ConnConfig.Tracer = count
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	enc, err := eventcodec.NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	return orderstore.New(pool, enc, "order-events", nil, 0), count
}

func act(a order.Action) func(*order.Order) (order.Event, error) {
	c := order.Change{Action: a, Reason: "r"}
	if a == order.ActionPay {
		c = order.Change{Action: a, PaymentReference: "psp-1"}
	}
	return func(o *order.Order) (order.Event, error) {
		return order.Standard.Apply(o, c, order.Now(), order.Meta{})
	}
}

// A change of an order this replica wrote last takes one statement, not a
// read and a write; and what another replica changed meanwhile is never
// overwritten: the remembered order is only a guess, checked by the write.
func TestAChangeAfterThisReplicasWriteSkipsTheRead(t *testing.T) {
	t.Parallel()
	db := pgtest.MustDB(t, migrations.Orders())
	a, aCount := replica(t, db)
	b, _ := replica(t, db)
	ctx := context.Background()
	place := func() order.Order {
		t.Helper()
		o, ev, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 1}}}, order.Now(), order.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Create(ctx, o, ev, nil); err != nil {
			t.Fatal(err)
		}
		return o
	}
	statementsOf := func(what string, f func()) int64 {
		t.Helper()
		before := aCount.n.Load()
		f()
		return aCount.n.Load() - before
	}

	// Placed and paid here, refunded here: one statement each.
	o := place()
	var paid order.Order
	if n := statementsOf("pay", func() {
		var err error
		if paid, err = a.Update(ctx, o.ID, nil, act(order.ActionPay)); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("a pay of an order this replica placed took %d statements, want 1", n)
	}
	if got, err := b.Get(ctx, o.ID); err != nil || got.Status != order.StatusPaid || got.Version != 2 || got.UpdatedAt != paid.UpdatedAt {
		t.Fatalf("the paid order as the other replica reads it: %+v %v", got, err)
	}
	if n := statementsOf("refund", func() {
		if _, err := a.Update(ctx, o.ID, func(v int64) bool { return v == 2 }, act(order.ActionRefund)); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("a refund matching the version this replica wrote took %d statements, want 1", n)
	}

	// Another replica paid it: this one's memory says placed.
	o = place()
	if _, err := b.Update(ctx, o.ID, nil, act(order.ActionPay)); err != nil {
		t.Fatal(err)
	}
	// A cancel is valid on the memory, refused by the write, then read: 409.
	if _, err := a.Update(ctx, o.ID, nil, act(order.ActionCancel)); !errors.Is(err, order.ErrInvalidTransition) {
		t.Fatalf("cancel of an order another replica paid: %v, want ErrInvalidTransition", err)
	}
	// A match on the remembered version is checked against the order: 412.
	if _, err := a.Update(ctx, o.ID, func(v int64) bool { return v == 1 }, act(order.ActionRefund)); !errors.Is(err, order.ErrVersionMismatch) {
		t.Fatalf("refund matching version 1 of an order another replica paid: %v, want ErrVersionMismatch", err)
	}
	// A refund is invalid on the memory (placed), valid on the order (paid).
	refunded, err := a.Update(ctx, o.ID, nil, act(order.ActionRefund))
	if err != nil || refunded.Status != order.StatusRefunded || refunded.Version != 3 {
		t.Fatalf("refund of an order another replica paid: %+v %v, want refunded at version 3", refunded, err)
	}
	if got, err := b.Get(ctx, o.ID); err != nil || got.Status != order.StatusRefunded || got.Version != 3 {
		t.Fatalf("the order after both replicas: %+v %v", got, err)
	}
	if rows := outboxRows(t, db, o.ID); rows != 3 {
		t.Errorf("%d outbox rows for placed, paid, refunded, want 3", rows)
	}
}
