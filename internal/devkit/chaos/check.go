package chaos

import (
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
)

// The figures the checker reports, by name. Every one but duplicates must
// be zero (converged: true) for a scenario to pass.
const (
	FigLost          = "lost"
	FigPhantom       = "phantom"
	FigDoubleApplied = "double-applied"
	FigReordered     = "reordered"
	FigDuplicates    = "duplicates"
	FigDeadLetters   = "dead letters"
	FigConverged     = "converged"
)

// Verdict is what the checker found in one run's records.
type Verdict struct {
	Requests, Orders                  int // logical requests made; orders acknowledged
	InDoubt                           int // requests left in doubt
	InDoubtApplied, InDoubtNotApplied int // of those: found applied; found nowhere (not applied)
	Lost, Phantom, DoubleApplied      int
	Reordered, Duplicates             int
	DeadLetters                       int
	Differ                            int // orders whose projection is not their orders row
	Unpublished, SetAside             int
	Parked                            int
	Events                            int // distinct events on the topic
	Partitions                        int // partitions holding events
	Moved                             int // orders whose events are on more than one partition
	// Examples describe the first violations of each figure, for a human.
	Examples map[string][]string
}

// Failed lists the figures that break a guarantee, by name.
func (v Verdict) Failed() []string {
	var out []string
	for _, f := range []struct {
		name string
		bad  bool
	}{
		{FigLost, v.Lost > 0}, {FigPhantom, v.Phantom > 0}, {FigDoubleApplied, v.DoubleApplied > 0},
		{FigReordered, v.Reordered > 0}, {FigDeadLetters, v.DeadLetters > 0},
		{FigConverged, v.Differ > 0 || v.Unpublished > 0 || v.SetAside > 0 || v.Parked > 0},
	} {
		if f.bad {
			out = append(out, f.name)
		}
	}
	return out
}

func (v *Verdict) example(fig, format string, args ...any) {
	if v.Examples == nil {
		v.Examples = map[string][]string{}
	}
	if len(v.Examples[fig]) < 5 {
		v.Examples[fig] = append(v.Examples[fig], fmt.Sprintf(format, args...))
	}
}

type orderVersion struct {
	order   uuid.UUID
	version int64
}

func (k orderVersion) String() string { return fmt.Sprintf("order %s version %d", k.order, k.version) }

// Check reads the three records against each other:
//
//   - lost: a version the API acknowledged (or that an in-doubt request is
//     seen to have made, on the topic) with no applied outcome in the
//     ledger, or a projection below it;
//   - phantom: an event on the topic, or applied in the ledger, that no
//     acknowledged request made and no in-doubt request explains (the same
//     correlation ID, order, version and type), or a second event for one
//     order and version;
//   - double-applied: two applied outcomes for one order and version, or a
//     read model counting more than the projection holds;
//   - reordered: on one partition, an order's versions first seen out of
//     order; an order on two partitions of a topic whose partitions did not
//     change; or in the ledger, a version applied before an earlier one;
//   - duplicates: copies of an event on the topic beyond the first (allowed);
//   - dead letters: records on the dead-letter topic (the load sends only
//     valid events);
//   - converged: the projection equals the orders table, nothing is left
//     unpublished, set aside or parked.
func Check(r *Records) Verdict {
	var v Verdict
	acked := map[orderVersion]Request{}
	doubtful := map[string]Request{}
	for _, q := range r.Requests {
		v.Requests++
		switch q.Outcome {
		case Acked, Confirmed:
			acked[orderVersion{q.OrderID, q.Version}] = q
			if q.Action == "place" {
				v.Orders++
			}
			if q.Outcome == Confirmed {
				v.InDoubt++
				v.InDoubtApplied++
			}
		case InDoubt:
			v.InDoubt++
			doubtful[q.Corr] = q
		}
	}

	// The topic: first occurrences, duplicates, reordering per partition,
	// and who made each event: one event per order and version, made by
	// the request that carries its correlation ID.
	made := map[orderVersion]uuid.UUID{} // version → the one event that made it
	onTopic := map[uuid.UUID]TopicEvent{}
	resolved := map[string]uuid.UUID{} // in-doubt request → the order its event is of
	type partOrder struct {
		partition int
		order     uuid.UUID
	}
	highest := map[partOrder]int64{}
	topic := append([]TopicEvent(nil), r.Topic...)
	sort.SliceStable(topic, func(i, j int) bool {
		if topic[i].Partition != topic[j].Partition {
			return topic[i].Partition < topic[j].Partition
		}
		return topic[i].Offset < topic[j].Offset
	})
	phantom := func(e TopicEvent, why string) {
		v.Phantom++
		v.example(FigPhantom, "%s event %s (order %s version %d, correlation %q) at partition %d offset %d: %s",
			e.Type, e.EventID, e.OrderID, e.Version, e.Corr, e.Partition, e.Offset, why)
	}
	for _, e := range topic {
		if _, seen := onTopic[e.EventID]; seen {
			v.Duplicates++
			continue
		}
		onTopic[e.EventID] = e
		v.Events++
		k := orderVersion{e.OrderID, e.Version}
		po := partOrder{e.Partition, e.OrderID}
		if h, ok := highest[po]; ok && e.Version < h {
			v.Reordered++
			v.example(FigReordered, "partition %d offset %d: %s after version %d", e.Partition, e.Offset, k, h)
		}
		highest[po] = max(highest[po], e.Version)
		if first, ok := made[k]; ok {
			phantom(e, fmt.Sprintf("a second event for that version (the first was %s)", first))
			continue
		}
		if q, ok := acked[k]; ok && eventType[q.Action] == e.Type && q.Corr == e.Corr {
			made[k] = e.EventID
			continue
		}
		q, ok := doubtful[e.Corr]
		if !ok || eventType[q.Action] != e.Type || q.Version != e.Version || (q.OrderID != uuid.Nil && q.OrderID != e.OrderID) {
			phantom(e, "no request acknowledged or in doubt made it")
			continue
		}
		if o, ok := resolved[q.Corr]; ok && o != e.OrderID {
			phantom(e, fmt.Sprintf("its request, in doubt, already made order %s", o))
			continue
		}
		made[k] = e.EventID
		resolved[q.Corr] = e.OrderID
		v.InDoubtApplied++
	}
	v.InDoubtNotApplied = v.InDoubt - v.InDoubtApplied
	parts, orderParts := map[int]bool{}, map[uuid.UUID][]int{}
	for po := range highest {
		parts[po.partition] = true
		orderParts[po.order] = append(orderParts[po.order], po.partition)
	}
	v.Partitions = len(parts)
	for id, ps := range orderParts {
		if len(ps) < 2 {
			continue
		}
		v.Moved++
		// An order's events stay on one partition unless partitions were
		// added, which moves some orders once.
		if r.TopicPartitions <= r.InitialPartitions {
			v.Reordered++
			sort.Ints(ps)
			v.example(FigReordered, "order %s has events on partitions %v of a topic whose partitions did not change", id, ps)
		}
	}
	for _, msg := range r.Undecodable {
		v.Phantom++
		v.example(FigPhantom, "not an order event: %s", msg)
	}

	// The ledger: applied outcomes per order and version, and the order in
	// which each order's versions were first applied.
	applied := map[orderVersion]int{}
	firstApplied := map[uuid.UUID]map[int64]time.Time{}
	for _, l := range r.Ledger {
		if l.Outcome != "applied" {
			continue
		}
		k := orderVersion{l.OrderID, l.Version}
		applied[k]++
		if applied[k] == 2 {
			v.example(FigDoubleApplied, "%s applied twice (event %s the second seen)", k, l.EventID)
		}
		if applied[k] > 1 {
			v.DoubleApplied++
		}
		if _, ok := onTopic[l.EventID]; !ok {
			if _, ok := made[k]; ok {
				// The version's own event is on the topic; this one is a
				// second applied for it, which double-applied counts.
			} else if _, ack := acked[k]; ack {
				v.Lost++
				v.example(FigLost, "%s: applied (event %s), but the topic no longer holds it", k, l.EventID)
			} else {
				v.Phantom++
				v.example(FigPhantom, "ledger: event %s (%s) applied but never on the topic nor acknowledged", l.EventID, k)
			}
		}
		if firstApplied[l.OrderID] == nil {
			firstApplied[l.OrderID] = map[int64]time.Time{}
		}
		if t, ok := firstApplied[l.OrderID][l.Version]; !ok || l.AppliedAt.Before(t) {
			firstApplied[l.OrderID][l.Version] = l.AppliedAt
		}
	}
	for id, byVersion := range firstApplied {
		versions := make([]int64, 0, len(byVersion))
		for ver := range byVersion {
			versions = append(versions, ver)
		}
		sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
		for i := 1; i < len(versions); i++ {
			if byVersion[versions[i]].Before(byVersion[versions[i-1]]) {
				v.Reordered++
				v.example(FigReordered, "ledger: order %s version %d applied at %s, before version %d at %s", id,
					versions[i], byVersion[versions[i]].Format(time.RFC3339Nano), versions[i-1], byVersion[versions[i-1]].Format(time.RFC3339Nano))
			}
		}
	}

	// Lost: what was acknowledged, or seen made by an in-doubt request,
	// and is not applied, or not in the projection.
	lost := func(k orderVersion, why string) {
		v.Lost++
		v.example(FigLost, "%s (%s): %s", k, why, lostReason(k, applied[k], r.Projection[k.order]))
	}
	for k := range acked {
		if applied[k] == 0 || r.Projection[k.order].Version < k.version {
			lost(k, "acknowledged")
		}
	}
	for k := range made {
		if _, ok := acked[k]; !ok && (applied[k] == 0 || r.Projection[k.order].Version < k.version) {
			lost(k, "in doubt, on the topic")
		}
	}

	// A read model that applied an event twice (or missed one) is off from
	// what order-api's orders table says it should hold.
	want := map[TotalsLine]Totals{}
	for id, o := range r.Orders {
		t := r.OrderTerms[id]
		l := TotalsLine{t.Customer, o.Status, t.Currency}
		w := want[l]
		w.Orders++
		w.TotalMinor += t.TotalMinor
		want[l] = w
	}
	for l := range mergeKeys(want, r.CustomerTotals) {
		got, w := r.CustomerTotals[l], want[l]
		if got == w {
			continue
		}
		msg := fmt.Sprintf("read model customer_orders: customer %s, %s in %s: %d orders totalling %d, the orders table says %d totalling %d",
			l.Customer, l.Status, l.Currency, got.Orders, got.TotalMinor, w.Orders, w.TotalMinor)
		if got.Orders > w.Orders || (got.Orders == w.Orders && got.TotalMinor > w.TotalMinor) {
			v.DoubleApplied++
			v.example(FigDoubleApplied, "%s", msg)
		} else {
			v.Lost++
			v.example(FigLost, "%s", msg)
		}
	}

	v.DeadLetters = len(r.DeadLetters)
	for _, d := range r.DeadLetters {
		v.example(FigDeadLetters, "partition %d offset %d: %s: %s", d.Partition, d.Offset, d.Class, d.Reason)
	}

	for id, o := range r.Orders {
		if p, ok := r.Projection[id]; !ok || p != o {
			v.Differ++
			v.example(FigConverged, "order %s: orders table %s v%d, projection %s v%d", id, o.Status, o.Version, p.Status, p.Version)
		}
	}
	for id := range r.Projection {
		if _, ok := r.Orders[id]; !ok {
			v.Differ++
			v.example(FigConverged, "order %s is in the projection and not in the orders table", id)
		}
	}
	v.Unpublished, v.SetAside, v.Parked = r.Unpublished, r.SetAside, r.Parked
	if r.Unpublished+r.SetAside+r.Parked > 0 {
		v.example(FigConverged, "left over: %d outbox rows unpublished, %d set aside, %d events parked", r.Unpublished, r.SetAside, r.Parked)
	}
	return v
}

func lostReason(k orderVersion, applied int, p State) string {
	switch {
	case applied == 0 && p.Version == 0:
		return "not applied, not in the projection"
	case applied == 0:
		return fmt.Sprintf("no applied outcome in the ledger (projection at version %d)", p.Version)
	default:
		return fmt.Sprintf("applied, but the projection is at version %d", p.Version)
	}
}

func mergeKeys[K comparable, V any](a, b map[K]V) map[K]bool {
	out := make(map[K]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
