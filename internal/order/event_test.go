package order_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/order"
)

// lifecycle returns one event of each type, as the API writes them.
func lifecycle(t *testing.T) []order.Event {
	t.Helper()
	now := order.Now()
	o, placed, err := order.Place(order.NewOrder{CustomerID: "c-1", Currency: "EUR",
		Items: []order.Item{{SKU: "A", Quantity: 2, UnitPriceMinor: 150}}}, now, order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	paid, _ := order.Standard.Apply(&o, order.Change{Action: order.ActionPay, PaymentReference: "psp"}, now.Add(time.Second), order.Meta{})
	refunded, _ := order.Standard.Apply(&o, order.Change{Action: order.ActionRefund, Reason: "broken"}, now.Add(2*time.Second), order.Meta{})
	o2, _, _ := order.Place(order.NewOrder{CustomerID: "c-2", Currency: "USD", Items: []order.Item{{SKU: "B", Quantity: 1, UnitPriceMinor: 5}}}, now, order.Meta{})
	cancelled, _ := order.Standard.Apply(&o2, order.Change{Action: order.ActionCancel, Reason: "changed mind"}, now.Add(time.Second), order.Meta{})
	return []order.Event{placed, paid, refunded, cancelled}
}

func key(ev order.Event) []byte { return []byte(ev.Order.ID.String()) }

func TestEventsTheAPIWritesPassCheckEvent(t *testing.T) {
	for _, ev := range lifecycle(t) {
		if err := order.Standard.CheckEvent(ev, key(ev), time.Now()); err != nil {
			t.Errorf("%s: %v", ev.Type, err)
		}
	}
}

// Each way a buggy or hostile producer can write valid Avro that the API
// never would is refused, naming the rule it breaks.
func TestCheckEventRefusesWhatTheAPICouldNotHaveWritten(t *testing.T) {
	evs := lifecycle(t)
	placed, paid, refunded, cancelled := evs[0], evs[1], evs[2], evs[3]
	edit := func(ev order.Event, f func(*order.Event)) order.Event {
		ev.Order.Items = append([]order.Item(nil), ev.Order.Items...)
		f(&ev)
		return ev
	}
	other := uuid.Must(uuid.NewV7())
	for _, tc := range []struct {
		name string
		ev   order.Event
		key  []byte
		rule order.EventRule
	}{
		{"keyed by another order", placed, []byte(other.String()), order.RuleKeyMismatch},
		{"key in upper case", placed, []byte("X" + placed.Order.ID.String()[1:]), order.RuleKeyMismatch},
		{"no key", placed, nil, order.RuleKeyMismatch},
		{"PLACED with status refunded", edit(placed, func(e *order.Event) { e.Order.Status = order.StatusRefunded }), nil, order.RuleTypeStatusMismatch},
		{"PAID with status cancelled", edit(paid, func(e *order.Event) { e.Order.Status = order.StatusCancelled }), nil, order.RuleTypeStatusMismatch},
		{"unknown event type", edit(paid, func(e *order.Event) { e.Type = "NO_SUCH_TYPE" }), nil, order.RuleTypeStatusMismatch},
		{"version MaxInt64", edit(paid, func(e *order.Event) { e.Order.Version = math.MaxInt64 }), nil, order.RuleVersionStatusMismatch},
		{"placed at version 2", edit(placed, func(e *order.Event) { e.Order.Version = 2 }), nil, order.RuleVersionStatusMismatch},
		{"refunded at version 2", edit(refunded, func(e *order.Event) { e.Order.Version = 2 }), nil, order.RuleVersionStatusMismatch},
		{"negative quantity", edit(placed, func(e *order.Event) { e.Order.Items[0].Quantity = -2; e.Order.TotalMinor = -300 }), nil, order.RuleInvalidOrder},
		{"negative price", edit(placed, func(e *order.Event) { e.Order.Items[0].UnitPriceMinor = -150; e.Order.TotalMinor = -300 }), nil, order.RuleInvalidOrder},
		{"currency €", edit(placed, func(e *order.Event) { e.Order.Currency = "€" }), nil, order.RuleInvalidOrder},
		{"empty SKU", edit(placed, func(e *order.Event) { e.Order.Items[0].SKU = "" }), nil, order.RuleInvalidOrder},
		{"no items", edit(placed, func(e *order.Event) { e.Order.Items = nil; e.Order.TotalMinor = 0 }), nil, order.RuleInvalidOrder},
		{"NUL in customer_id", edit(placed, func(e *order.Event) { e.Order.CustomerID = "c\x00" }), nil, order.RuleInvalidOrder},
		{"invalid UTF-8 in a SKU", edit(placed, func(e *order.Event) { e.Order.Items[0].SKU = "\xff" }), nil, order.RuleInvalidOrder},
		{"nil event_id", edit(placed, func(e *order.Event) { e.ID = uuid.Nil }), nil, order.RuleInvalidOrder},
		{"cancel reason on a paid order", edit(paid, func(e *order.Event) { e.Order.CancelReason = "x" }), nil, order.RuleInvalidOrder},
		{"payment reference on a placed order", edit(placed, func(e *order.Event) { e.Order.PaymentReference = "x" }), nil, order.RuleInvalidOrder},
		{"refund reason of 300 bytes", edit(refunded, func(e *order.Event) { e.Order.RefundReason = string(make([]byte, 300)) }), nil, order.RuleInvalidOrder},
		{"NUL in a reason", edit(cancelled, func(e *order.Event) { e.Order.CancelReason = "\x00" }), nil, order.RuleInvalidOrder},
		{"total not the sum of the items", edit(placed, func(e *order.Event) { e.Order.TotalMinor = 1 }), nil, order.RuleTotalMismatch},
		{"occurred_at 1970", edit(placed, func(e *order.Event) { e.OccurredAt = time.Unix(0, 0).UTC() }), nil, order.RuleImplausibleTime},
		{"created_at next year", edit(placed, func(e *order.Event) { e.Order.CreatedAt = time.Now().AddDate(1, 0, 0) }), nil, order.RuleImplausibleTime},
		{"created after updated", edit(paid, func(e *order.Event) { e.Order.CreatedAt = e.Order.UpdatedAt.Add(time.Second) }), nil, order.RuleImplausibleTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.key
			if k == nil && tc.rule != order.RuleKeyMismatch {
				k = key(tc.ev)
			}
			err := order.Standard.CheckEvent(tc.ev, k, time.Now())
			var ee *order.EventError
			if !errors.As(err, &ee) || ee.Rule != tc.rule {
				t.Fatalf("err %v, want rule %s", err, tc.rule)
			}
			if ee.Class() != "order.InvalidEvent."+string(tc.rule) {
				t.Errorf("class %q", ee.Class())
			}
		})
	}
}

func TestStatusVersionsAndPredecessorsFollowTheStateMachine(t *testing.T) {
	for s, v := range map[order.Status]int64{order.StatusPlaced: 1, order.StatusPaid: 2, order.StatusCancelled: 2, order.StatusRefunded: 3, "no-such-status": 0} {
		if got := order.Standard.Version(s); got != v {
			t.Errorf("Version(%s) = %d, want %d", s, got, v)
		}
	}
	for typ, want := range map[order.EventType]order.Status{order.EventPaid: order.StatusPlaced, order.EventCancelled: order.StatusPlaced, order.EventRefunded: order.StatusPaid} {
		if got, ok := order.Standard.Follows(typ); !ok || got != want {
			t.Errorf("%s follows %q %v, want %s", typ, got, ok, want)
		}
	}
	if _, ok := order.Standard.Follows(order.EventPlaced); ok {
		t.Error("PLACED follows something")
	}
}

func TestRequestsWithTextPostgreSQLCannotStoreAreRefused(t *testing.T) {
	for name, n := range map[string]order.NewOrder{
		"customer_id":  {CustomerID: "a\x00b", Currency: "EUR", Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 1}}},
		"items[0].sku": {CustomerID: "c", Currency: "EUR", Items: []order.Item{{SKU: "\xc3", Quantity: 1, UnitPriceMinor: 1}}},
	} {
		var ve *order.ValidationError
		if err := n.Validate(); !errors.As(err, &ve) || ve.Fields[0].Field != name {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, c := range map[string]order.Change{
		"payment_reference": {Action: order.ActionPay, PaymentReference: "\x00"},
		"reason":            {Action: order.ActionCancel, Reason: "ok\x00"},
	} {
		var ve *order.ValidationError
		if err := c.Validate(); !errors.As(err, &ve) || ve.Fields[0].Field != name {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func BenchmarkCheckEvent(b *testing.B) {
	o, placed, _ := order.Place(order.NewOrder{CustomerID: "c-1", Currency: "EUR",
		Items: []order.Item{{SKU: "A", Quantity: 2, UnitPriceMinor: 150}, {SKU: "B", Quantity: 1, UnitPriceMinor: 99}}}, order.Now(), order.Meta{})
	key := []byte(o.ID.String())
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := order.Standard.CheckEvent(placed, key, now); err != nil {
			b.Fatal(err)
		}
	}
}
