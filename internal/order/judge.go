package order

import (
	"time"

	"github.com/google/uuid"
)

// Outcome is what applying one event to a projection of orders did.
type Outcome string

// The outcomes of applying an event. Applying is idempotent: an event_id seen
// before is a duplicate, and an event whose version is not newer than the
// projection's is stale; neither changes the projection. An event newer by
// more than one version than what the projection holds is parked: its
// predecessor has not been applied yet (it sits on another partition, since
// partitions were added, or in the DLQ), and it applies once that has. An
// event that is next by version but does not follow the state the
// projection holds (RuleOutOfSequence, a REFUNDED after a CANCELLED) is out
// of sequence, and one that follows it but claims other terms than the
// order was placed with (RuleTermsChanged) is refused: neither can ever
// apply, neither changes anything or is recorded.
const (
	OutcomeApplied       Outcome = "applied"
	OutcomeDuplicate     Outcome = "duplicate"
	OutcomeStale         Outcome = "stale"
	OutcomeParked        Outcome = "parked"
	OutcomeOutOfSequence Outcome = "out_of_sequence"
	OutcomeTermsChanged  Outcome = "terms_changed"
)

// Held is what a projection holds of an order: the version and status the
// newest event applied to it left, and the terms it was placed with. The
// zero Held is an order none of whose events has been applied.
type Held struct {
	Version int64
	Status  Status
	Terms   Terms
}

// Terms is what an order is placed with and no transition changes: who
// placed it, in which currency, for what total, and when. A projection
// holds them with the order's version and status and refuses an event that
// claims others (RuleTermsChanged), so that what it accounts per customer
// or per currency is what each order was placed with. The items are held
// through their total, which CheckEvent has checked.
type Terms struct {
	CustomerID string
	Currency   string
	TotalMinor int64
	CreatedAt  time.Time
}

// Terms returns the terms o was placed with, as its events carry them.
func (o Order) Terms() Terms {
	return Terms{CustomerID: o.CustomerID, Currency: o.Currency, TotalMinor: o.TotalMinor, CreatedAt: o.CreatedAt}
}

// Equal reports whether t and u are the same terms, their times compared to
// the microsecond (what events and PostgreSQL carry).
func (t Terms) Equal(u Terms) bool {
	return t.CustomerID == u.CustomerID && t.Currency == u.Currency && t.TotalMinor == u.TotalMinor &&
		t.CreatedAt.Truncate(time.Microsecond).Equal(u.CreatedAt.Truncate(time.Microsecond))
}

// Verdict is what applying one event does.
type Verdict struct {
	Outcome Outcome
	// From is what the projection held of the order when the event came:
	// for an applied event, the state it moves the order from.
	From Held
}

// Judgement is what applying a batch of events does.
type Judgement struct {
	// Verdicts has one verdict per event of the batch (same index).
	Verdicts []Verdict
	// Applied lists every event applied, in the order applied: the
	// batch's, and events parked before that now follow.
	Applied []Applied
	// Unparked lists the events parked before the batch that it applied
	// (they are in Applied too).
	Unparked []uuid.UUID
	// Expelled lists the events parked before the batch that are next by
	// version now but can never apply (OutcomeOutOfSequence or
	// OutcomeTermsChanged): they leave the parked events, to be
	// dead-lettered.
	Expelled []Expelled
}

// Expelled is an event parked before that can never apply, and why.
type Expelled struct {
	Event   Event
	Outcome Outcome
}

// Judge decides what applying events does, in slice order and one at a
// time, to a projection that holds held of their orders (an order absent
// from it holds nothing), has parked the events parked (those of the
// batch's orders) and has recorded the event IDs known reports:
//   - an event whose ID is known, or parked, or came earlier in events and
//     was applied, stale or parked there, is a duplicate;
//   - an event that follows what its order holds — its version is one more,
//     and its type's transition starts from the status held (PLACED follows
//     nothing) — is applied, and its order then holds its version and status
//     (and, placed, its terms), unless it claims other terms than the order
//     holds: then its terms changed;
//   - an event whose version is not newer than what its order holds is
//     stale; one that is next by version but does not follow the status
//     held is out of sequence;
//   - an event newer by more than one version is parked, unless another
//     event of its order is parked at its version: then it is out of
//     sequence.
//
// Once an event is applied, the event parked at its order's next version,
// if any — parked before the batch or earlier in it — is judged as if it
// came then: applied (and so on, in version order), or expelled, out of
// sequence or with its terms changed. An event of the batch parked and
// then applied or expelled has that verdict.
//
// So a history of any length applies in one call, in whatever order its
// events come, however they interleave with other orders', and a batch's
// verdicts are those of its events judged one batch each. The events must
// have passed CheckEvent with m: Judge trusts their type, status and
// version. It changes neither held, parked nor anything known reports.
func (m *Machine) Judge(events []Event, held map[uuid.UUID]Held, parked []Event, known func(eventID uuid.UUID) bool) Judgement {
	j := Judgement{Verdicts: make([]Verdict, len(events))}
	holds := make(map[uuid.UUID]Held, len(held))      // what each order holds as the batch goes
	recorded := make(map[uuid.UUID]bool, len(events)) // event IDs applied or stale in this batch
	type waitingEvent struct {
		ev    Event
		index int // in events; -1: parked before the batch
	}
	waiting := map[uuid.UUID]map[int64]waitingEvent{} // order → version → its parked event
	waitingIDs := map[uuid.UUID]bool{}
	park := func(w waitingEvent) {
		o := w.ev.Order
		if waiting[o.ID] == nil {
			waiting[o.ID] = map[int64]waitingEvent{}
		}
		waiting[o.ID][o.Version] = w
		waitingIDs[w.ev.ID] = true
	}
	for _, ev := range parked {
		park(waitingEvent{ev, -1})
	}
	hold := func(id uuid.UUID) Held {
		if h, ok := holds[id]; ok {
			return h
		}
		return held[id]
	}
	// judge returns ev's outcome against h, as if it were next by version.
	judge := func(ev Event, h Held) Outcome {
		prev, follows := m.Follows(ev.Type)
		follows = (follows || ev.Type == EventPlaced) && prev == h.Status && ev.Order.Version == h.Version+1
		switch {
		case follows && h.Version > 0 && !ev.Order.Terms().Equal(h.Terms):
			return OutcomeTermsChanged
		case follows:
			return OutcomeApplied
		case ev.Order.Version <= h.Version:
			return OutcomeStale
		}
		return OutcomeOutOfSequence
	}
	apply := func(ev Event, h Held) {
		if h.Version == 0 {
			h.Terms = ev.Order.Terms()
		}
		j.Applied = append(j.Applied, Applied{Event: ev, From: h})
		holds[ev.Order.ID] = Held{Version: ev.Order.Version, Status: ev.Order.Status, Terms: h.Terms}
		recorded[ev.ID] = true
	}
	// unpark applies what is parked at order id's next versions, in order,
	// until a version is missing or an event there cannot apply.
	unpark := func(id uuid.UUID) {
		for {
			h := hold(id)
			w, ok := waiting[id][h.Version+1]
			if !ok {
				return
			}
			delete(waiting[id], h.Version+1)
			delete(waitingIDs, w.ev.ID)
			outcome := judge(w.ev, h)
			switch {
			case w.index >= 0:
				j.Verdicts[w.index] = Verdict{Outcome: outcome, From: h}
			case outcome == OutcomeApplied:
				j.Unparked = append(j.Unparked, w.ev.ID)
			default:
				j.Expelled = append(j.Expelled, Expelled{Event: w.ev, Outcome: outcome})
			}
			if outcome != OutcomeApplied {
				return
			}
			apply(w.ev, h)
		}
	}
	for i, ev := range events {
		o := ev.Order
		h := hold(o.ID)
		v := Verdict{From: h}
		switch {
		case recorded[ev.ID] || waitingIDs[ev.ID] || known(ev.ID):
			v.Outcome = OutcomeDuplicate
		case o.Version > h.Version+1:
			v.Outcome = OutcomeParked
			if _, taken := waiting[o.ID][o.Version]; taken {
				v.Outcome = OutcomeOutOfSequence
			}
		default:
			v.Outcome = judge(ev, h)
		}
		j.Verdicts[i] = v
		switch v.Outcome {
		case OutcomeApplied:
			apply(ev, h)
			unpark(o.ID)
		case OutcomeStale:
			recorded[ev.ID] = true
		case OutcomeParked:
			park(waitingEvent{ev, i})
		}
	}
	return j
}

// Applied is an event a projection applied, with what it held of the order
// before: what a read model needs to move the order from one state to the
// next.
type Applied struct {
	Event Event
	From  Held
}
