package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/migrations"
)

// `order-consumer parked list` as an operator runs it: one line per event
// parked and a count, -json one object per event, -order selecting one
// order's, and an -order that is not an order ID refused.
func TestParkedListCommand(t *testing.T) {
	_, getenv := operatorEnv(t, migrations.Projection())
	o, placed, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 1}}}, order.Now(), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	paid, err := order.Standard.Apply(&o, order.Change{Action: order.ActionPay}, order.Now(), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, getenv("DATABASE_URL"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if got, err := projectionstore.New(pool, order.Standard, nil).Apply(ctx, []order.Event{paid}); err != nil || got[0] != order.OutcomeParked {
		t.Fatalf("a PAID before its PLACED: %v %v, want parked", got, err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"parked", "list"}, getenv, &out, &out); err != nil ||
		!strings.Contains(out.String(), paid.ID.String()+" order "+o.ID.String()+" version 2 PAID") || !strings.HasSuffix(out.String(), "1 parked\n") {
		t.Fatalf("parked list: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"parked", "list", "-json", "-order", o.ID.String()}, getenv, &out, &out); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got["event_id"] != paid.ID.String() || got["version"] != 2.0 || got["leaving"] != "" {
		t.Fatalf("parked list -json: %v %v\n%s", got, err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"parked", "list", "-order", placed.ID.String()}, getenv, &out, &out); err != nil || out.String() != "0 parked\n" {
		t.Fatalf("parked list of an order with none: %v\n%s", err, out.String())
	}
	if err := run(ctx, []string{"parked", "list", "-order", "nope"}, getenv, &out, &out); err == nil || !strings.Contains(err.Error(), `-order "nope" is not an order ID`) {
		t.Fatalf("parked list -order nope: %v", err)
	}
}
