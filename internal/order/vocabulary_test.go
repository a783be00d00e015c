package order_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/order"
)

// TestVocabularyIsClosed keeps the lists (Statuses, Actions, EventTypes) and
// the transitions table in step: adding a status, action or event type to
// one and not the other fails here, naming what is missing.
func TestVocabularyIsClosed(t *testing.T) {
	noDuplicates(t, "Statuses", order.Statuses)
	noDuplicates(t, "Actions", order.Actions)
	noDuplicates(t, "EventTypes", order.EventTypes)

	reached := map[order.Status]bool{order.StatusPlaced: true}
	used := map[order.Action]bool{}
	emitted := map[order.EventType]int{order.EventPlaced: 1}
	for _, tr := range order.Transitions() {
		if !slices.Contains(order.Statuses, tr.From) || !slices.Contains(order.Statuses, tr.To) {
			t.Errorf("transition %+v: a status missing from order.Statuses", tr)
		}
		if !slices.Contains(order.EventTypes, tr.Event) {
			t.Errorf("transition %+v: event type missing from order.EventTypes", tr)
		}
		reached[tr.To], used[tr.Action] = true, true
		emitted[tr.Event]++
	}
	for _, s := range order.Statuses {
		if !s.Valid() {
			t.Errorf("%s in Statuses is not Valid", s)
		}
		if !reached[s] {
			t.Errorf("no transition leads to status %s", s)
		}
		path, _ := order.PathTo(s)
		if got, want := s.Version(), int64(len(path)+1); got != want {
			t.Errorf("%s.Version() = %d, want %d (its path is %v)", s, got, want, path)
		}
	}
	for _, a := range order.Actions {
		if !used[a] {
			t.Errorf("action %s is in no transition", a)
		}
	}
	for _, e := range order.EventTypes {
		if emitted[e] != 1 {
			t.Errorf("event type %s is emitted by %d transitions (PLACED counts for Place), want 1", e, emitted[e])
		}
		if s := e.Status(); !slices.Contains(order.Statuses, s) {
			t.Errorf("%s.Status() = %q, not in Statuses", e, s)
		}
	}
	for _, bad := range []order.Status{"", "PLACED", "no-such-status"} {
		if bad.Valid() {
			t.Errorf("%q is Valid", bad)
		}
	}
	var ve *order.ValidationError
	if err := (order.Change{Action: "no-such-action"}).Validate(); !errors.As(err, &ve) || ve.Fields[0].Field != "action" {
		t.Errorf("unknown action: %v", err)
	}
}

// TestEveryStatusReachedWithEveryDetailPassesCheckEvent walks the state
// machine with every detail a client can send (a payment reference, a
// reason): each event it writes is one the consumer accepts.
func TestEveryStatusReachedWithEveryDetailPassesCheckEvent(t *testing.T) {
	for _, s := range order.Statuses {
		t.Run(string(s), func(t *testing.T) {
			path, ok := order.PathTo(s)
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
				if ev, err = o.Apply(c, now.Add(time.Duration(i+1)*time.Second), order.Meta{}); err != nil {
					t.Fatalf("%s: %v", a, err)
				}
			}
			if ev.Order.Status != s || ev.Type.Status() != s {
				t.Fatalf("%s event leaves the order %s, want %s", ev.Type, ev.Order.Status, s)
			}
			if err := order.CheckEvent(ev, []byte(ev.Order.ID.String()), time.Now()); err != nil {
				t.Fatalf("%s event with every detail: %v", ev.Type, err)
			}
		})
	}
}

func noDuplicates[T comparable](t *testing.T, name string, list []T) {
	t.Helper()
	seen := map[T]bool{}
	for _, v := range list {
		if seen[v] {
			t.Errorf("%s lists %v twice", name, v)
		}
		seen[v] = true
	}
}
