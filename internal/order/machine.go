package order

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ordersonkafka/orders/internal/text"
)

// Transition is one edge of a state machine: Action takes an order that is
// From to To and emits an event of type Event.
type Transition struct {
	From   Status
	Action Action
	To     Status
	Event  EventType
}

// Machine is an order state machine: every order starts as StatusPlaced at
// version 1 with an EventPlaced event (Place), and moves only along its
// transitions, one version at a time. Each status but StatusPlaced is
// reached by exactly one transition, so a status has one version (the
// number of transitions on its path, plus one) and one path of actions,
// and an event type names the one transition that emits it.
//
// Everything that judges an order by the machine takes it as a value: the
// API (Apply), the consumer's check of an event (CheckEvent) and its judge
// (Judge). Standard is the machine this service runs; a test may build
// another with NewMachine. A Machine is immutable and safe for concurrent
// use.
type Machine struct {
	transitions []Transition
	next        map[Status]map[Action]Transition
	emitting    map[EventType]Transition // the transition emitting each type; EventPlaced has none
	statuses    []Status
	actions     []Action
	events      []EventType
	version     map[Status]int64
	path        map[Status][]Action
}

// Standard is the order lifecycle this service runs: placed → paid →
// refunded, and placed → cancelled. Its lists are in lifecycle order:
// statuses placed, paid, refunded, cancelled; actions pay, refund, cancel;
// event types PLACED, PAID, REFUNDED, CANCELLED. The Avro enums
// (schemas/), the SQL CHECKs (migrations/) and the OpenAPI documents are
// tested against them.
var Standard = mustMachine(
	Transition{From: StatusPlaced, Action: ActionPay, To: StatusPaid, Event: EventPaid},
	Transition{From: StatusPaid, Action: ActionRefund, To: StatusRefunded, Event: EventRefunded},
	Transition{From: StatusPlaced, Action: ActionCancel, To: StatusCancelled, Event: EventCancelled},
)

func mustMachine(ts ...Transition) *Machine {
	m, err := NewMachine(ts...)
	if err != nil {
		panic(err)
	}
	return m
}

// NewMachine returns the machine whose transitions are ts. Its lists follow
// the order of ts: statuses are StatusPlaced, then each transition's To;
// actions each first use; event types EventPlaced, then each transition's
// Event. It refuses a table in which a value is empty, a transition leads
// to StatusPlaced or emits EventPlaced, a status is reached or an event type
// emitted by two transitions, an action appears twice from one status, or
// a transition starts from a status no transition leads to.
func NewMachine(ts ...Transition) (*Machine, error) {
	m := &Machine{
		transitions: slices.Clone(ts),
		next:        map[Status]map[Action]Transition{},
		emitting:    map[EventType]Transition{},
		statuses:    []Status{StatusPlaced},
		events:      []EventType{EventPlaced},
		version:     map[Status]int64{StatusPlaced: 1},
		path:        map[Status][]Action{StatusPlaced: nil},
	}
	var errs []error
	reached := map[Status]bool{StatusPlaced: true}
	for _, t := range ts {
		switch {
		case t.From == "" || t.Action == "" || t.To == "" || t.Event == "":
			errs = append(errs, fmt.Errorf("transition %+v: every field is required", t))
			continue
		case t.To == StatusPlaced || reached[t.To]:
			errs = append(errs, fmt.Errorf("transition %+v: %s is reached by another transition (or is where Place starts)", t, t.To))
			continue
		case t.Event == EventPlaced || m.emitting[t.Event] != Transition{}:
			errs = append(errs, fmt.Errorf("transition %+v: %s is emitted by another transition (or by Place)", t, t.Event))
			continue
		case m.next[t.From][t.Action] != Transition{}:
			errs = append(errs, fmt.Errorf("transition %+v: %s from %s is defined twice", t, t.Action, t.From))
			continue
		}
		reached[t.To] = true
		if m.next[t.From] == nil {
			m.next[t.From] = map[Action]Transition{}
		}
		m.next[t.From][t.Action] = t
		m.emitting[t.Event] = t
		m.statuses = append(m.statuses, t.To)
		m.events = append(m.events, t.Event)
		if !slices.Contains(m.actions, t.Action) {
			m.actions = append(m.actions, t.Action)
		}
	}
	for from := range m.next {
		if !reached[from] {
			errs = append(errs, fmt.Errorf("transitions from %s: no transition leads to %s", from, from))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("order: state machine: %w", err)
	}
	// Walk from placed: each status is reached once, so its depth is its
	// version and the actions on the way its path.
	for frontier := []Status{StatusPlaced}; len(frontier) > 0; frontier = frontier[1:] {
		from := frontier[0]
		for _, t := range ts {
			if t.From == from {
				m.version[t.To] = m.version[from] + 1
				m.path[t.To] = append(slices.Clone(m.path[from]), t.Action)
				frontier = append(frontier, t.To)
			}
		}
	}
	for _, s := range m.statuses {
		if m.version[s] == 0 { // reached only from a cycle that never meets placed
			errs = append(errs, fmt.Errorf("status %s cannot be reached from %s", s, StatusPlaced))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("order: state machine: %w", err)
	}
	return m, nil
}

// Transitions returns the machine's transitions, in the order it was given them.
func (m *Machine) Transitions() []Transition { return slices.Clone(m.transitions) }

// Statuses returns every status: StatusPlaced, then each one a transition
// leads to.
func (m *Machine) Statuses() []Status { return slices.Clone(m.statuses) }

// Actions returns every action a client can request, each once.
func (m *Machine) Actions() []Action { return slices.Clone(m.actions) }

// EventTypes returns every event type: EventPlaced, then each one a
// transition emits.
func (m *Machine) EventTypes() []EventType { return slices.Clone(m.events) }

// HasStatus reports whether s is one of the machine's statuses.
func (m *Machine) HasStatus(s Status) bool { return m.version[s] != 0 }

// HasAction reports whether a is one of the machine's actions.
func (m *Machine) HasAction(a Action) bool { return slices.Contains(m.actions, a) }

// Version returns the version an order in status s is at, or 0 for a
// status the machine does not have.
func (m *Machine) Version(s Status) int64 { return m.version[s] }

// PathTo returns the actions that take a placed order to s, in order, and
// false if the machine has no status s.
func (m *Machine) PathTo(s Status) ([]Action, bool) {
	p, ok := m.path[s]
	return slices.Clone(p), ok
}

// EventStatus returns the status an event of type t leaves the order in, or
// "" for a type the machine does not have.
func (m *Machine) EventStatus(t EventType) Status {
	if t == EventPlaced {
		return StatusPlaced
	}
	return m.emitting[t].To
}

// Follows returns the status an order is in before an event of type t, and
// false for EventPlaced (which follows nothing) or a type the machine does
// not have.
func (m *Machine) Follows(t EventType) (Status, bool) {
	tr, ok := m.emitting[t]
	return tr.From, ok
}

// Apply performs c on the order in place, incrementing its version, and
// returns the resulting event. It returns a *ValidationError if c's details
// are not acceptable or the machine has no action c.Action, and a
// *TransitionError (errors.Is ErrInvalidTransition) if the order's status
// has no such transition; o is left untouched then.
func (m *Machine) Apply(o *Order, c Change, now time.Time, meta Meta) (Event, error) {
	err := c.Validate()
	if !m.HasAction(c.Action) {
		ve := ValidationError{Fields: []FieldError{{Field: "action", Detail: "unknown action " + text.Quote(string(c.Action), 32)}}}
		if err != nil {
			ve.Fields = append(ve.Fields, err.(*ValidationError).Fields...)
		}
		return Event{}, &ve
	}
	if err != nil {
		return Event{}, err
	}
	t, ok := m.next[o.Status][c.Action]
	if !ok {
		return Event{}, &TransitionError{From: o.Status, Action: c.Action}
	}
	o.Status = t.To
	o.Version++
	o.UpdatedAt = now
	switch c.Action {
	case ActionPay:
		o.PaymentReference = c.PaymentReference
	case ActionCancel:
		o.CancelReason = c.Reason
	case ActionRefund:
		o.RefundReason = c.Reason
	}
	return newEvent(t.Event, *o, now, meta), nil
}
