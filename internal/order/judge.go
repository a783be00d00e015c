package order

import (
	"time"

	"github.com/google/uuid"
)

// Outcome is what applying one event to a projection of orders did.
type Outcome string

// The outcomes of applying an event. Applying is idempotent: an event_id seen
// before is a duplicate, and an event whose version is not newer than the
// projection's is stale; neither changes the projection. An event that is
// newer but does not follow the state the projection holds (RuleOutOfSequence)
// is out of sequence: it changes nothing and is not recorded, so it can still
// apply later, once what precedes it has. An event that follows it but
// claims other terms than the order was placed with (RuleTermsChanged) is
// refused: it changes nothing and is not recorded either.
const (
	OutcomeApplied       Outcome = "applied"
	OutcomeDuplicate     Outcome = "duplicate"
	OutcomeStale         Outcome = "stale"
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

// Judge decides what applying events does, in slice order and one at a
// time, to a projection that holds held of their orders (an order absent
// from it holds nothing) and has recorded the event IDs known reports, and
// returns one verdict per event (same index):
//   - an event whose ID is known, or came earlier in events and was applied
//     or stale there, is a duplicate;
//   - an event that follows what its order holds — its version is one more,
//     and its type's transition starts from the status held (PLACED follows
//     nothing) — is applied, and its order then holds its version and status
//     (and, placed, its terms), unless it claims other terms than the order
//     holds: then its terms changed;
//   - otherwise an event whose version is not newer than what its order
//     holds is stale, and a newer one out of sequence.
//
// So a history of any length applies in one call, however its events
// interleave with other orders', and a batch's verdicts are those of its
// events judged one batch each. The events must have passed CheckEvent
// with m: Judge trusts their type, status and version. It changes neither
// held nor anything known reports.
func (m *Machine) Judge(events []Event, held map[uuid.UUID]Held, known func(eventID uuid.UUID) bool) []Verdict {
	verdicts := make([]Verdict, len(events))
	holds := make(map[uuid.UUID]Held, len(held))      // what each order holds as the batch goes
	recorded := make(map[uuid.UUID]bool, len(events)) // event IDs applied or stale in this batch
	for i, ev := range events {
		o := ev.Order
		h, ok := holds[o.ID]
		if !ok {
			h = held[o.ID]
		}
		v := Verdict{From: h}
		prev, follows := m.Follows(ev.Type)
		follows = (follows || ev.Type == EventPlaced) && prev == h.Status && o.Version == h.Version+1
		switch {
		case recorded[ev.ID] || known(ev.ID):
			v.Outcome = OutcomeDuplicate
		case follows && h.Version > 0 && !o.Terms().Equal(h.Terms):
			v.Outcome = OutcomeTermsChanged
		case follows:
			v.Outcome = OutcomeApplied
			if h.Version == 0 {
				h.Terms = o.Terms()
			}
			holds[o.ID] = Held{Version: o.Version, Status: o.Status, Terms: h.Terms}
			recorded[ev.ID] = true
		case o.Version <= h.Version:
			v.Outcome = OutcomeStale
			recorded[ev.ID] = true
		default:
			v.Outcome = OutcomeOutOfSequence
		}
		verdicts[i] = v
	}
	return verdicts
}

// Applied is an event a projection applied, with what it held of the order
// before: what a read model needs to move the order from one state to the
// next.
type Applied struct {
	Event Event
	From  Held
}
