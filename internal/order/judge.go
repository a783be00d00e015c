package order

import "github.com/google/uuid"

// Outcome is what applying one event to a projection of orders did.
type Outcome string

// The outcomes of applying an event. Applying is idempotent: an event_id seen
// before is a duplicate, and an event whose version is not newer than the
// projection's is stale; neither changes the projection. An event that is
// newer but does not follow the state the projection holds (RuleOutOfSequence)
// is out of sequence: it changes nothing and is not recorded, so it can still
// apply later, once what precedes it has.
const (
	OutcomeApplied       Outcome = "applied"
	OutcomeDuplicate     Outcome = "duplicate"
	OutcomeStale         Outcome = "stale"
	OutcomeOutOfSequence Outcome = "out_of_sequence"
)

// Held is what a projection holds of an order: the version and status the
// newest event applied to it left. The zero Held is an order none of whose
// events has been applied.
type Held struct {
	Version int64
	Status  Status
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
//     nothing) — is applied, and its order then holds its version and status;
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
		case follows:
			v.Outcome = OutcomeApplied
			holds[o.ID] = Held{Version: o.Version, Status: o.Status}
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
