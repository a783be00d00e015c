package order_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/ordertest"
	"github.com/ordersonkafka/orders/internal/order"
)

// A table NewMachine takes is one in which every status but placed is
// reached by exactly one transition from placed, so that a status has one
// version and one path: each way to break that is refused, naming it.
func TestNewMachineRefusesATableWithoutOnePathToEachStatus(t *testing.T) {
	pay := order.Transition{From: order.StatusPlaced, Action: order.ActionPay, To: order.StatusPaid, Event: order.EventPaid}
	for _, tc := range []struct {
		name string
		ts   []order.Transition
		want string
	}{
		{"a field left empty", []order.Transition{{From: order.StatusPlaced, Action: order.ActionPay, To: order.StatusPaid}}, "every field is required"},
		{"a status reached twice", []order.Transition{pay, {From: order.StatusPlaced, Action: order.ActionCancel, To: order.StatusPaid, Event: order.EventCancelled}}, "paid is reached by another transition"},
		{"a transition back to placed", []order.Transition{pay, {From: order.StatusPaid, Action: order.ActionRefund, To: order.StatusPlaced, Event: order.EventRefunded}}, "placed is reached by another transition"},
		{"an event type emitted twice", []order.Transition{pay, {From: order.StatusPlaced, Action: order.ActionCancel, To: order.StatusCancelled, Event: order.EventPaid}}, "PAID is emitted by another transition"},
		{"a transition emitting PLACED", []order.Transition{{From: order.StatusPlaced, Action: order.ActionPay, To: order.StatusPaid, Event: order.EventPlaced}}, "PLACED is emitted by another transition"},
		{"an action defined twice from one status", []order.Transition{pay, {From: order.StatusPlaced, Action: order.ActionPay, To: order.StatusCancelled, Event: order.EventCancelled}}, "pay from placed is defined twice"},
		{"a status nothing leads to", []order.Transition{pay, {From: "lost", Action: order.ActionRefund, To: order.StatusRefunded, Event: order.EventRefunded}}, "no transition leads to lost"},
		{"a cycle away from placed", []order.Transition{
			{From: "a", Action: "go", To: "b", Event: "B"}, {From: "b", Action: "go", To: "a", Event: "A"}}, "cannot be reached from placed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := order.NewMachine(tc.ts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewMachine = %v, %v; want an error saying %q", m, err, tc.want)
			}
		})
	}
}

// A machine is a value: the longer one moves orders along its own table,
// and Standard, which knows none of its transitions, refuses them.
func TestEachMachineMovesOrdersAlongItsOwnTable(t *testing.T) {
	m := ordertest.Longer
	if got := m.Version(ordertest.StatusDelivered); got != 4 {
		t.Fatalf("Longer.Version(delivered) = %d, want 4", got)
	}
	h := ordertest.Full(m, ordertest.StatusDelivered, "c-1", "EUR", order.Now().Add(-time.Minute))
	if len(h) != 4 || h[3].Type != ordertest.EventDelivered || h[3].Order.Version != 4 {
		t.Fatalf("history to delivered: %v", h)
	}
	for _, ev := range h {
		if err := m.CheckEvent(ev, []byte(ev.Order.ID.String()), time.Now()); err != nil {
			t.Errorf("Longer refuses its own %s event: %v", ev.Type, err)
		}
	}
	if err := order.Standard.CheckEvent(h[2], []byte(h[2].Order.ID.String()), time.Now()); err == nil {
		t.Error("Standard accepts a SHIPPED event")
	}
	o := h[1].Order // paid
	if _, err := order.Standard.Apply(&o, order.Change{Action: ordertest.ActionShip}, order.Now(), order.Meta{}); err == nil {
		t.Error("Standard ships an order")
	}
	if prev, ok := m.Follows(ordertest.EventDelivered); !ok || prev != ordertest.StatusShipped {
		t.Errorf("DELIVERED follows %q, %v; want shipped", prev, ok)
	}
}
