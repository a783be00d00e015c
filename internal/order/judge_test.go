package order_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/devkit/ordertest"
	"github.com/ordersonkafka/orders/internal/order"
)

func nothingKnown(uuid.UUID) bool { return false }

// Each outcome, on the smallest case that shows it.
func TestJudgeDecidesEachOutcome(t *testing.T) {
	m := order.Standard
	start := order.Now().Add(-time.Hour)
	paid := ordertest.Full(m, order.StatusRefunded, "c-1", "EUR", start)       // PLACED, PAID, REFUNDED
	cancelled := ordertest.Full(m, order.StatusCancelled, "c-2", "EUR", start) // PLACED, CANCELLED
	refundAfterCancel := paid[2]
	refundAfterCancel.Order.ID = cancelled[0].Order.ID // a REFUNDED at v3 for the cancelled order
	placedV1 := order.Held{Version: 1, Status: order.StatusPlaced, Terms: paid[0].Order.Terms()}
	otherCustomer, otherTotal, otherCreation := paid[1], paid[1], paid[1] // PAIDs under other terms
	otherCustomer.Order.CustomerID = "c-9"
	otherTotal.Order.Items = append(slices.Clone(otherTotal.Order.Items), order.Item{SKU: "extra", Quantity: 1, UnitPriceMinor: 1})
	otherTotal.Order.TotalMinor++
	otherCreation.Order.CreatedAt = otherCreation.Order.CreatedAt.Add(-time.Second)
	for _, ev := range []*order.Event{&otherCustomer, &otherTotal, &otherCreation} {
		ev.ID = uuid.New()
	}
	otherRefund := paid[2]
	otherRefund.ID = uuid.New()
	sameTermsInAnotherZone := paid[1]
	sameTermsInAnotherZone.Order.CreatedAt = sameTermsInAnotherZone.Order.CreatedAt.In(time.FixedZone("X", 3600))
	for _, tc := range []struct {
		name   string
		held   map[uuid.UUID]order.Held
		known  []uuid.UUID
		events []order.Event
		want   []order.Outcome
	}{
		{"a new order's PLACED is applied", nil, nil, paid[:1], []order.Outcome{order.OutcomeApplied}},
		{"an event_id recorded before is a duplicate", map[uuid.UUID]order.Held{paid[0].Order.ID: placedV1}, []uuid.UUID{paid[0].ID},
			paid[:1], []order.Outcome{order.OutcomeDuplicate}},
		{"a second copy in the batch is a duplicate", nil, nil, []order.Event{paid[0], paid[0]},
			[]order.Outcome{order.OutcomeApplied, order.OutcomeDuplicate}},
		{"an older version, never recorded, is stale", map[uuid.UUID]order.Held{paid[0].Order.ID: {Version: 3, Status: order.StatusRefunded}}, nil,
			paid[1:2], []order.Outcome{order.OutcomeStale}},
		{"a PAID before its PLACED is parked, applied right after it, and a duplicate when it comes again", nil, nil,
			[]order.Event{paid[1], paid[0], paid[1]}, []order.Outcome{order.OutcomeApplied, order.OutcomeApplied, order.OutcomeDuplicate}},
		{"a version that skips one is parked", map[uuid.UUID]order.Held{paid[0].Order.ID: placedV1}, nil,
			paid[2:3], []order.Outcome{order.OutcomeParked}},
		{"a parked event delivered again is a duplicate", map[uuid.UUID]order.Held{paid[0].Order.ID: placedV1}, nil,
			[]order.Event{paid[2], paid[2]}, []order.Outcome{order.OutcomeParked, order.OutcomeDuplicate}},
		{"a history backwards applies in one batch", nil, nil,
			[]order.Event{paid[2], paid[1], paid[0]}, []order.Outcome{order.OutcomeApplied, order.OutcomeApplied, order.OutcomeApplied}},
		{"a parked REFUNDED that the CANCELLED before it turns out not to lead to is out of sequence", nil, nil,
			[]order.Event{refundAfterCancel, cancelled[0], cancelled[1]},
			[]order.Outcome{order.OutcomeOutOfSequence, order.OutcomeApplied, order.OutcomeApplied}},
		{"a second event parked at one version is out of sequence", map[uuid.UUID]order.Held{paid[0].Order.ID: placedV1}, nil,
			[]order.Event{paid[2], otherRefund}, []order.Outcome{order.OutcomeParked, order.OutcomeOutOfSequence}},
		{"a REFUNDED after a cancellation is out of sequence", map[uuid.UUID]order.Held{cancelled[0].Order.ID: {Version: 2, Status: order.StatusCancelled}}, nil,
			[]order.Event{refundAfterCancel}, []order.Outcome{order.OutcomeOutOfSequence}},
		{"a whole history applies in one batch", nil, nil, paid, []order.Outcome{order.OutcomeApplied, order.OutcomeApplied, order.OutcomeApplied}},
		{"an event under another customer, total or creation time than the order was placed with changes nothing", nil, nil,
			[]order.Event{paid[0], otherCustomer, otherTotal, otherCreation, paid[1]},
			[]order.Outcome{order.OutcomeApplied, order.OutcomeTermsChanged, order.OutcomeTermsChanged, order.OutcomeTermsChanged, order.OutcomeApplied}},
		{"terms held are compared as they were placed", map[uuid.UUID]order.Held{paid[0].Order.ID: placedV1}, nil,
			[]order.Event{otherCustomer, sameTermsInAnotherZone}, []order.Outcome{order.OutcomeTermsChanged, order.OutcomeApplied}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			known := func(id uuid.UUID) bool { return slices.Contains(tc.known, id) }
			var got []order.Outcome
			for _, v := range m.Judge(tc.events, tc.held, nil, known).Verdicts {
				got = append(got, v.Outcome)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("outcomes %v, want %v", got, tc.want)
			}
		})
	}
}

// The longest history of the longer machine — four events, one more than
// any history of Standard — applies in one batch, each event from the
// state the one before left.
func TestAHistoryOfAnyLengthAppliesInOneBatch(t *testing.T) {
	m := ordertest.Longer
	h := ordertest.Full(m, ordertest.StatusDelivered, "c-1", "EUR", order.Now().Add(-time.Hour))
	from := order.Held{}
	for i, v := range m.Judge(h, nil, nil, nothingKnown).Verdicts {
		if v.Outcome != order.OutcomeApplied || v.From != from {
			t.Fatalf("event %d (%s): %+v, want applied from %+v", i, h[i].Type, v, from)
		}
		from = order.Held{Version: h[i].Order.Version, Status: h[i].Order.Status, Terms: h[0].Order.Terms()}
	}
}

// projection is what a store holds, as Judge sees it, and what its
// judgements did: the events applied, in order, and those dead-lettered.
type projection struct {
	held   map[uuid.UUID]order.Held
	known  map[uuid.UUID]bool
	parked map[uuid.UUID]order.Event // by event ID
	// applied lists the IDs of the events applied, in the order applied,
	// each with the state it moved its order from; dead the IDs of those
	// that can never apply (the batch's and the parked ones expelled).
	applied []string
	dead    []uuid.UUID
}

func newProjection() *projection {
	return &projection{held: map[uuid.UUID]order.Held{}, known: map[uuid.UUID]bool{}, parked: map[uuid.UUID]order.Event{}}
}

// judge judges a batch and records what its judgement says, as a store
// does: an applied event's order holds its version, status and terms, an
// applied or stale event's ID is known, a parked event is parked until it
// is applied or expelled.
func (p *projection) judge(m *order.Machine, events []order.Event) {
	var parked []order.Event
	for _, ev := range p.parked {
		parked = append(parked, ev)
	}
	j := m.Judge(events, p.held, parked, func(id uuid.UUID) bool { return p.known[id] })
	for _, a := range j.Applied {
		ev := a.Event
		p.held[ev.Order.ID] = order.Held{Version: ev.Order.Version, Status: ev.Order.Status, Terms: ev.Order.Terms()}
		p.known[ev.ID] = true
		p.applied = append(p.applied, fmt.Sprintf("%s from v%d", ev.ID, a.From.Version))
	}
	for i, v := range j.Verdicts {
		switch v.Outcome {
		case order.OutcomeStale:
			p.known[events[i].ID] = true
		case order.OutcomeParked:
			p.parked[events[i].ID] = events[i]
		case order.OutcomeOutOfSequence, order.OutcomeTermsChanged:
			p.dead = append(p.dead, events[i].ID)
		}
	}
	for _, id := range j.Unparked {
		delete(p.parked, id)
	}
	for _, e := range j.Expelled {
		delete(p.parked, e.Event.ID)
		p.dead = append(p.dead, e.Event.ID)
	}
}

// A batch is judged as its events one at a time, whatever the machine: the
// same events are applied in the same order, from the same states, the
// same ones can never apply, and the same ones end parked. Random
// histories walked from each machine, interleaved and redelivered as a
// partition holds them; then, for some, events moved ahead of their
// predecessors (parked, as when partitions were added), and for others
// besides some old ones delivered again late (duplicates), some old
// versions under new event IDs (stale, as after the ledger forgot them)
// and some under another customer (their terms changed, if they follow);
// cut into batches at random. In order, or only moved, every order ends
// at its history's last event, nothing parked and nothing dead.
func TestAJudgedBatchIsItsEventsJudgedOneAtATime(t *testing.T) {
	for _, m := range []*order.Machine{order.Standard, ordertest.Longer} {
		for seed := range uint64(200) {
			rng := rand.New(rand.NewPCG(seed, 7))
			start := order.Now().Add(-time.Hour)
			var histories [][]order.Event
			for range 1 + rng.IntN(12) {
				histories = append(histories, ordertest.Walk(m, rng, start, 0.15, 3))
			}
			events := ordertest.Deliver(rng, 0.1, histories...)
			if seed%4 != 0 {
				for range 1 + rng.IntN(4) { // an event ahead of its predecessor
					i := rng.IntN(len(events))
					j := rng.IntN(i + 1)
					ev := events[i]
					events = slices.Insert(slices.Delete(events, i, i+1), j, ev)
				}
			}
			if seed%4 >= 2 {
				for range rng.IntN(3) { // an old event again, late
					events = append(events, events[rng.IntN(len(events))])
				}
				for range 1 + rng.IntN(3) { // an old version under a new event_id, late, twice
					ev := events[rng.IntN(len(events))]
					ev.ID = uuid.New()
					events = append(events, ev, ev)
				}
				for range rng.IntN(3) { // an event under another customer, anywhere
					ev := events[rng.IntN(len(events))]
					ev.ID = uuid.New()
					ev.Order.CustomerID += "-other"
					events = slices.Insert(events, rng.IntN(len(events)+1), ev)
				}
			}
			name := fmt.Sprintf("machine of %d statuses, seed %d", len(m.Statuses()), seed)
			want := newProjection()
			for i := range events {
				want.judge(m, events[i:i+1])
			}
			got := newProjection()
			for rest := events; len(rest) > 0; {
				n := 1 + rng.IntN(len(rest))
				got.judge(m, rest[:n])
				rest = rest[n:]
			}
			// Which can never apply is the same; when each is found may not be.
			slices.SortFunc(got.dead, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
			slices.SortFunc(want.dead, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
			if !slices.Equal(got.applied, want.applied) || !slices.Equal(got.dead, want.dead) || !maps.Equal(got.held, want.held) ||
				!maps.EqualFunc(got.parked, want.parked, func(a, b order.Event) bool { return a.ID == b.ID }) {
				t.Fatalf("%s: batched judgements differ from one at a time\n got applied %v, dead %v, parked %d\nwant applied %v, dead %v, parked %d",
					name, got.applied, got.dead, len(got.parked), want.applied, want.dead, len(want.parked))
			}
			held := got.held
			if seed%4 < 2 && (len(got.parked) > 0 || len(got.dead) > 0) {
				t.Fatalf("%s: %d events parked and %d dead at the end, want none", name, len(got.parked), len(got.dead))
			}
			if seed%4 < 2 {
				for _, h := range histories {
					last := h[len(h)-1].Order
					if got := held[last.ID]; got.Version != last.Version || got.Status != last.Status {
						t.Fatalf("%s: order %s holds %+v, want its last event's version %d, %s", name, last.ID, got, last.Version, last.Status)
					}
				}
			}
		}
	}
}
