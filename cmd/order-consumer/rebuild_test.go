package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/consumer/orderview"
	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/migrations"
)

// `order-consumer rebuild` as an operator runs it: refused, saying the
// projection is unchanged and how to go on, when the topic lacks an order
// the projection holds; carried out with -allow-partial.
func TestRebuildCommand(t *testing.T) {
	_, getenv := operatorEnv(t, migrations.Projection())
	_, placed, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 1}}}, order.Now(), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, getenv("DATABASE_URL"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	view := orderview.New(pool)
	store := projectionstore.New(pool, order.Standard, nil, view)
	if _, err := store.Apply(ctx, []order.Event{placed}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run(ctx, []string{"rebuild"}, getenv, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "lacks 1 orders") || !strings.Contains(err.Error(), "unchanged") ||
		!strings.Contains(err.Error(), "rebuild -allow-partial") {
		t.Fatalf("rebuild of an empty topic over a projection holding an order: %v", err)
	}
	if _, err := view.Get(ctx, placed.Order.ID); err != nil {
		t.Fatalf("the refused rebuild lost the order: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"rebuild", "-allow-partial"}, getenv, &out, &out); err != nil || !strings.Contains(out.String(), "rebuilt from order-events: 0 read") {
		t.Fatalf("rebuild -allow-partial: %v\n%s", err, out.String())
	}
	if err := run(ctx, []string{"rebuild", "-force"}, getenv, &out, &out); err == nil {
		t.Error("rebuild took a flag it does not have")
	}
}
