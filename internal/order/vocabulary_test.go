package order_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/order"
)

// TestStandardListsAreInLifecycleOrder pins the Standard machine's lists:
// the API's messages, the docs and the Avro enums list them in this order,
// and every other list of the vocabulary (schemas, SQL CHECKs, OpenAPI) is
// tested against them.
func TestStandardListsAreInLifecycleOrder(t *testing.T) {
	m := order.Standard
	if got, want := m.Statuses(), []order.Status{order.StatusPlaced, order.StatusPaid, order.StatusRefunded, order.StatusCancelled}; !slices.Equal(got, want) {
		t.Errorf("Statuses() = %v, want %v", got, want)
	}
	if got, want := m.Actions(), []order.Action{order.ActionPay, order.ActionRefund, order.ActionCancel}; !slices.Equal(got, want) {
		t.Errorf("Actions() = %v, want %v", got, want)
	}
	if got, want := m.EventTypes(), []order.EventType{order.EventPlaced, order.EventPaid, order.EventRefunded, order.EventCancelled}; !slices.Equal(got, want) {
		t.Errorf("EventTypes() = %v, want %v", got, want)
	}
	for _, s := range m.Statuses() {
		path, _ := m.PathTo(s)
		if got, want := m.Version(s), int64(len(path)+1); got != want {
			t.Errorf("Version(%s) = %d, want %d (its path is %v)", s, got, want, path)
		}
	}
	for _, bad := range []order.Status{"", "PLACED", "no-such-status"} {
		if m.HasStatus(bad) {
			t.Errorf("HasStatus(%q)", bad)
		}
	}
	o, _, _ := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "a", Quantity: 1, UnitPriceMinor: 1}}}, order.Now(), order.Meta{})
	var ve *order.ValidationError
	if _, err := m.Apply(&o, order.Change{Action: "no-such-action"}, order.Now(), order.Meta{}); !errors.As(err, &ve) || ve.Fields[0].Field != "action" {
		t.Errorf("unknown action: %v", err)
	}
}

// TestEveryStatusReachedWithEveryDetailPassesCheckEvent walks the state
// machine with every detail a client can send (a payment reference, a
// reason): each event it writes is one the consumer accepts.
func TestEveryStatusReachedWithEveryDetailPassesCheckEvent(t *testing.T) {
	for _, s := range order.Standard.Statuses() {
		t.Run(string(s), func(t *testing.T) {
			path, ok := order.Standard.PathTo(s)
			if !ok {
				t.Fatalf("no transition leads to %s", s)
			}
			now := order.Now()
			o, ev, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR",
				Items: []order.Item{{SKU: "a", Quantity: 1, UnitPriceMinor: 1}}}, now, order.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range path {
				c := order.Change{Action: a}
				if a == order.ActionPay {
					c.PaymentReference = "psp-1"
				} else {
					c.Reason = "because"
				}
				if ev, err = order.Standard.Apply(&o, c, now.Add(time.Duration(i+1)*time.Second), order.Meta{}); err != nil {
					t.Fatalf("%s: %v", a, err)
				}
			}
			if ev.Order.Status != s || order.Standard.EventStatus(ev.Type) != s {
				t.Fatalf("%s event leaves the order %s, want %s", ev.Type, ev.Order.Status, s)
			}
			if err := order.Standard.CheckEvent(ev, []byte(ev.Order.ID.String()), time.Now()); err != nil {
				t.Fatalf("%s event with every detail: %v", ev.Type, err)
			}
		})
	}
}
