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
//     correlation ID, order, version and type);
//   - double-applied: two applied outcomes for one order and version;
//   - reordered: on one partition, an order's versions first seen out of
//     order; or in the ledger, a version applied before an earlier one;
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
		case Acked:
			acked[orderVersion{q.OrderID, q.Version}] = q
			if q.Action == "place" {
				v.Orders++
			}
		case InDoubt:
			v.InDoubt++
			doubtful[q.Corr] = q
		}
	}

	// The topic: first occurrences, duplicates, reordering per partition,
	// and who made each event.
	made := map[orderVersion]bool{} // versions some request explains, acked or in doubt
	onTopic := map[uuid.UUID]TopicEvent{}
	resolved := map[string]bool{}
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
		if q, ok := acked[k]; ok && eventType[q.Action] == e.Type {
			made[k] = true
			continue
		}
		if q, ok := doubtful[e.Corr]; ok && eventType[q.Action] == e.Type && q.Version == e.Version &&
			(q.OrderID == uuid.Nil || q.OrderID == e.OrderID) {
			made[k] = true
			if !resolved[q.Corr] {
				resolved[q.Corr] = true
				v.InDoubtApplied++
			}
			continue
		}
		v.Phantom++
		v.example(FigPhantom, "%s event %s (%s, correlation %q) at partition %d offset %d: no request acknowledged or in doubt made it",
			e.Type, e.EventID, k, e.Corr, e.Partition, e.Offset)
	}
	v.InDoubtNotApplied = v.InDoubt - v.InDoubtApplied
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
		if _, ok := onTopic[l.EventID]; !ok && !made[k] {
			v.Phantom++
			v.example(FigPhantom, "ledger: event %s (%s) applied but never on the topic nor acknowledged", l.EventID, k)
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
