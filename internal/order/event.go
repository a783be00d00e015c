package order

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/text"
)

// What an event must be for a consumer to accept it: one the API could have
// written. Machine.CheckEvent applies the same rules the API applies to
// requests (NewOrder.Validate, Change.Validate), plus what the state machine
// implies.

// EventRule names a rule an event can break. The names are stable: they end
// the dead-letter class of a refused event ("order.InvalidEvent.KeyMismatch").
type EventRule string

// The rules of CheckEvent, and OutOfSequence and TermsChanged, which a
// projection checks against what it holds.
const (
	// RuleKeyMismatch: the message key is the order_id, in its canonical
	// text form, as the outbox writes it (and as partitioning needs).
	RuleKeyMismatch EventRule = "KeyMismatch"
	// RuleTypeStatusMismatch: the status is the one the event type leads to
	// (PLACED → placed, PAID → paid, REFUNDED → refunded, CANCELLED → cancelled).
	RuleTypeStatusMismatch EventRule = "TypeStatusMismatch"
	// RuleVersionStatusMismatch: the version is the one the status implies
	// (Machine.Version; in Standard placed 1, paid and cancelled 2, refunded
	// 3): a status is reached by one path, and the version counts it.
	RuleVersionStatusMismatch EventRule = "VersionStatusMismatch"
	// RuleInvalidOrder: the order's fields obey the rules a request must obey
	// (NewOrder.Validate, Change.Validate), and carry only the details its
	// status can have (a cancel reason only when cancelled, ...).
	RuleInvalidOrder EventRule = "InvalidOrder"
	// RuleTotalMismatch: total_minor is the sum of quantity × unit price.
	RuleTotalMismatch EventRule = "TotalMismatch"
	// RuleImplausibleTime: every timestamp lies between EarliestEventTime
	// and MaxClockSkew after the checker's clock, and created_at is not after
	// updated_at.
	RuleImplausibleTime EventRule = "ImplausibleTime"
	// RuleOutOfSequence: the event does not follow the state the projection
	// holds (a PAID for an order never placed, a REFUNDED after a
	// cancellation, a version that skips one). Only a projection can tell;
	// the event may apply once what precedes it has (DLQ replay).
	RuleOutOfSequence EventRule = "OutOfSequence"
	// RuleTermsChanged: the event claims other terms than its order was
	// placed with (Terms: customer, currency, total, created_at), which no
	// transition changes. Only a projection can tell.
	RuleTermsChanged EventRule = "TermsChanged"
)

// EventRules lists every rule, for documentation and tests.
var EventRules = []EventRule{RuleKeyMismatch, RuleTypeStatusMismatch, RuleVersionStatusMismatch,
	RuleInvalidOrder, RuleTotalMismatch, RuleImplausibleTime, RuleOutOfSequence, RuleTermsChanged}

// Bounds of a plausible event time.
var (
	// EarliestEventTime precedes every order this service can have taken.
	EarliestEventTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	// MaxClockSkew is how far in the future of the checker's clock an event
	// may be: more than any NTP-kept clock drifts, less than a wrong year.
	MaxClockSkew = time.Hour
)

// EventError is an event the API could not have written. Fields lists the
// fields at fault for RuleInvalidOrder.
type EventError struct {
	Rule   EventRule
	Detail string
	Fields []FieldError
}

func (e *EventError) Error() string {
	return fmt.Sprintf("event breaks rule %s: %s", e.Rule, e.Detail)
}

// Class is the stable name of the refusal, for dead-letter headers and metrics.
func (e *EventError) Class() string { return "order.InvalidEvent." + string(e.Rule) }

// CheckEvent returns nil if ev, delivered with message key key, is an event
// the API running m could have written, and an *EventError naming the first
// rule it breaks otherwise. now is the checker's clock, for
// RuleImplausibleTime.
func (m *Machine) CheckEvent(ev Event, key []byte, now time.Time) error {
	o := ev.Order
	fail := func(rule EventRule, format string, args ...any) error {
		return &EventError{Rule: rule, Detail: fmt.Sprintf(format, args...)}
	}
	if !isKeyOf(key, o.ID) {
		return fail(RuleKeyMismatch, "message key %s is not order_id %s", text.Quote(string(key), 64), o.ID)
	}
	want := m.EventStatus(ev.Type)
	if want == "" {
		return fail(RuleTypeStatusMismatch, "unknown event type %s", text.Quote(string(ev.Type), 32))
	}
	if o.Status != want {
		return fail(RuleTypeStatusMismatch, "a %s event leaves the order %s, not %s", ev.Type, want, text.Quote(string(o.Status), 32))
	}
	if v := m.Version(o.Status); o.Version != v {
		return fail(RuleVersionStatusMismatch, "an order that is %s is at version %d, not %d", o.Status, v, o.Version)
	}
	var ve ValidationError
	if ev.ID == uuid.Nil {
		ve.add("event_id", "must not be the nil UUID")
	}
	if o.ID == uuid.Nil {
		ve.add("order_id", "must not be the nil UUID")
	}
	if err := (NewOrder{CustomerID: o.CustomerID, Currency: o.Currency, Items: o.Items}).Validate(); err != nil {
		ve.Fields = append(ve.Fields, err.(*ValidationError).Fields...)
	}
	path := m.path[o.Status]
	details := []struct {
		field, value string
		allowed      bool
	}{
		{"payment_reference", o.PaymentReference, slices.Contains(path, ActionPay)},
		{"cancel_reason", o.CancelReason, slices.Contains(path, ActionCancel)},
		{"refund_reason", o.RefundReason, slices.Contains(path, ActionRefund)},
	}
	for _, d := range details {
		switch {
		case d.value != "" && !d.allowed:
			ve.add(d.field, "cannot be set on an order that is %s", o.Status)
		case len(d.value) > MaxTextLength:
			ve.add(d.field, "must be at most %d bytes", MaxTextLength)
		case !text.Valid(d.value):
			ve.add(d.field, text.Rule)
		}
	}
	if len(ve.Fields) > 0 {
		f := ve.Fields[0]
		return &EventError{Rule: RuleInvalidOrder, Detail: f.Field + ": " + f.Detail, Fields: ve.Fields}
	}
	if sum, _ := total(o.Items); o.TotalMinor != sum {
		return fail(RuleTotalMismatch, "total_minor %d is not the sum of the items, %d", o.TotalMinor, sum)
	}
	latest := now.Add(MaxClockSkew)
	for _, t := range []struct {
		field string
		at    time.Time
	}{{"occurred_at", ev.OccurredAt}, {"created_at", o.CreatedAt}, {"updated_at", o.UpdatedAt}} {
		if t.at.Before(EarliestEventTime) || t.at.After(latest) {
			return fail(RuleImplausibleTime, "%s %s is not between %s and %s",
				t.field, t.at.UTC().Format(time.RFC3339Nano), EarliestEventTime.Format(time.RFC3339), latest.UTC().Format(time.RFC3339))
		}
	}
	if o.CreatedAt.After(o.UpdatedAt) {
		return fail(RuleImplausibleTime, "created_at %s is after updated_at %s",
			o.CreatedAt.Format(time.RFC3339Nano), o.UpdatedAt.Format(time.RFC3339Nano))
	}
	return nil
}

// isKeyOf reports whether key is id in its canonical text form (lower-case
// hex, 8-4-4-4-12), as the outbox writes it; without allocating.
func isKeyOf(key []byte, id uuid.UUID) bool {
	if len(key) != 36 {
		return false
	}
	parsed, err := uuid.ParseBytes(key)
	if err != nil || parsed != id {
		return false
	}
	for _, c := range key {
		if 'A' <= c && c <= 'F' {
			return false
		}
	}
	return true
}
