package order_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/order"
)

func placed(t *testing.T) order.Order {
	t.Helper()
	o, ev, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR",
		Items: []order.Item{{SKU: "a", Quantity: 3, UnitPriceMinor: 200}}}, order.Now(), order.Meta{CorrelationID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Version != 1 || o.Status != order.StatusPlaced || o.TotalMinor != 600 {
		t.Fatalf("placed order %+v", o)
	}
	if ev.Type != order.EventPlaced || ev.Order.Version != 1 || ev.Order.ID != o.ID || ev.Meta.CorrelationID != "x" {
		t.Fatalf("PLACED event %+v", ev)
	}
	return o
}

// at returns an order in status s, reached through the state machine.
func at(t *testing.T, s order.Status) order.Order {
	t.Helper()
	o := placed(t)
	path, ok := order.Standard.PathTo(s)
	if !ok {
		t.Fatalf("no transition leads to %s", s)
	}
	for _, a := range path {
		if _, err := order.Standard.Apply(&o, order.Change{Action: a}, order.Now(), order.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	if o.Status != s {
		t.Fatalf("path %v leads to %s, not %s", path, o.Status, s)
	}
	return o
}

// TestEveryStatusActionPair covers the whole state machine table of
// docs/design.md, written out here once more on purpose: a new status or
// action fails this test until its row is added. Each allowed pair changes
// status, bumps the version by one and emits its event with the order's
// full state; every other pair is refused and changes nothing.
func TestEveryStatusActionPair(t *testing.T) {
	allowed := map[order.Status]map[order.Action]struct {
		to    order.Status
		event order.EventType
	}{
		order.StatusPlaced: {order.ActionPay: {order.StatusPaid, order.EventPaid}, order.ActionCancel: {order.StatusCancelled, order.EventCancelled}},
		order.StatusPaid:   {order.ActionRefund: {order.StatusRefunded, order.EventRefunded}},
	}
	for _, from := range order.Standard.Statuses() {
		for _, action := range order.Standard.Actions() {
			want, ok := allowed[from][action]
			name := string(action) + " of a " + string(from) + " order is "
			if ok {
				name += "allowed"
			} else {
				name += "refused"
			}
			t.Run(name, func(t *testing.T) {
				o := at(t, from)
				before := o
				now := order.Now().Add(time.Minute)
				ev, err := order.Standard.Apply(&o, order.Change{Action: action}, now, order.Meta{})
				if !ok {
					if !errors.Is(err, order.ErrInvalidTransition) || !strings.Contains(err.Error(), string(from)) {
						t.Fatalf("err = %v, want ErrInvalidTransition naming %s", err, from)
					}
					if o.Status != before.Status || o.Version != before.Version || !o.UpdatedAt.Equal(before.UpdatedAt) {
						t.Fatalf("refused change altered the order: %+v", o)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if o.Status != want.to || o.Version != before.Version+1 || !o.UpdatedAt.Equal(now) {
					t.Fatalf("order after %s: %+v", action, o)
				}
				if ev.Type != want.event || ev.Order.Status != want.to || ev.Order.Version != o.Version || ev.Order.TotalMinor != o.TotalMinor || len(ev.Order.Items) != 1 {
					t.Fatalf("event %+v does not carry the full new state", ev)
				}
			})
		}
	}
}

func TestValidateRejectsBadOrders(t *testing.T) {
	item := order.Item{SKU: "a", Quantity: 1, UnitPriceMinor: 1}
	many := make([]order.Item, order.MaxItems+1)
	for i := range many {
		many[i] = item
	}
	cases := []struct {
		name  string
		n     order.NewOrder
		field string
	}{
		{"missing customer", order.NewOrder{Currency: "EUR", Items: []order.Item{item}}, "customer_id"},
		{"long customer", order.NewOrder{CustomerID: strings.Repeat("c", 65), Currency: "EUR", Items: []order.Item{item}}, "customer_id"},
		{"lower-case currency", order.NewOrder{CustomerID: "c", Currency: "eur", Items: []order.Item{item}}, "currency"},
		{"two-letter currency", order.NewOrder{CustomerID: "c", Currency: "EU", Items: []order.Item{item}}, "currency"},
		{"no items", order.NewOrder{CustomerID: "c", Currency: "EUR"}, "items"},
		{"too many items", order.NewOrder{CustomerID: "c", Currency: "EUR", Items: many}, "items"},
		{"empty sku", order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{Quantity: 1, UnitPriceMinor: 1}}}, "items[0].sku"},
		{"zero quantity", order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "a", UnitPriceMinor: 1}}}, "items[0].quantity"},
		{"negative price", order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "a", Quantity: 1, UnitPriceMinor: -1}}}, "items[0].unit_price_minor"},
		{"line overflows", order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "a", Quantity: 2, UnitPriceMinor: math.MaxInt64}}}, "items"},
		{"sum overflows", order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "a", Quantity: 1, UnitPriceMinor: math.MaxInt64}, item}}, "items"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.n.Validate()
			var ve *order.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			for _, f := range ve.Fields {
				if f.Field == tc.field {
					return
				}
			}
			t.Fatalf("errors %+v do not name %s", ve.Fields, tc.field)
		})
	}
	if _, _, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "a", Quantity: 1, UnitPriceMinor: math.MaxInt64}}}, order.Now(), order.Meta{}); err != nil {
		t.Fatalf("the largest total that fits was refused: %v", err)
	}
}
