package projectionstore_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/order"
)

// origin is a message as a reader returns it, with a null key, an empty
// header value and a null one: what a parked event must keep byte for byte.
func origin(partition int, offset int64) projectionstore.Origin {
	return projectionstore.Origin{Topic: "order-events", Partition: partition, Offset: offset,
		Key: nil, Value: []byte{0, 0, 0, 0, 1, 'v'},
		Headers: []projectionstore.Header{{Key: "event_id", Value: []byte("x")}, {Key: "empty", Value: []byte{}}, {Key: "null", Value: nil}},
		Time:    t0.Add(time.Duration(offset) * time.Millisecond)}
}

// An event parked across batches keeps the message it came in, intact, and
// is listed until its predecessor applies it.
func TestAParkedEventKeepsItsMessageUntilItApplies(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	h := history(t)
	if _, err := s.ApplyFrom(ctx, h[:1], func(int) projectionstore.Origin { return origin(0, 1) }); err != nil {
		t.Fatal(err)
	}
	got, err := s.ApplyFrom(ctx, h[2:3], func(int) projectionstore.Origin { return origin(3, 7) })
	if err != nil || got[0] != order.OutcomeParked {
		t.Fatalf("REFUNDED before PAID: %v %v, want parked", got, err)
	}
	parked, err := s.Parked(ctx, h[0].Order.ID, 10)
	if err != nil || len(parked) != 1 {
		t.Fatalf("parked %v %v, want one", parked, err)
	}
	p := parked[0]
	if p.EventID != h[2].ID || p.Version != 3 || p.Type != order.EventRefunded || p.Leaving != "" ||
		!reflect.DeepEqual(p.Origin.Headers, origin(3, 7).Headers) || p.Origin.Key != nil || string(p.Origin.Value) != string(origin(3, 7).Value) ||
		p.Origin.Partition != 3 || p.Origin.Offset != 7 || !p.Origin.Time.Equal(origin(3, 7).Time) {
		t.Fatalf("parked %+v, want the REFUNDED with its message intact", p)
	}
	if other, _ := s.Parked(ctx, uuid.New(), 10); len(other) != 0 {
		t.Fatalf("another order's parked events: %v", other)
	}
	wantState(t, s, h[0])

	if got := mustApply(t, s, h[1]); got[0] != order.OutcomeApplied {
		t.Fatalf("PAID: %v", got)
	}
	wantState(t, s, h[2])
	if parked, _ := s.Parked(ctx, uuid.Nil, 10); len(parked) != 0 {
		t.Fatalf("still parked after it applied: %v", parked)
	}
}

// A parked event that turns out never to apply (a refund of an order then
// cancelled) is marked to leave, with why, and deleted once dead-lettered;
// one that waits too long is marked to leave as expired.
func TestAParkedEventThatCannotApplyOrWaitsTooLongLeaves(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	a, b := history(t), history(t)
	mustApply(t, s, a[0], a[2], b[2]) // two REFUNDEDs parked
	if got := mustApply(t, s, cancelled(t, a[0])); got[0] != order.OutcomeApplied {
		t.Fatalf("CANCELLED: %v", got)
	}
	leaving, err := s.Leaving(ctx, 10)
	if err != nil || len(leaving) != 1 || leaving[0].EventID != a[2].ID || leaving[0].Leaving != string(order.OutcomeOutOfSequence) || leaving[0].Reason == "" {
		t.Fatalf("leaving %+v %v, want a's REFUNDED, out of sequence, with a reason", leaving, err)
	}

	if n, err := s.ExpireParked(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("expired %d %v, want none yet", n, err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE parked_events SET parked_at = now() - interval '2 hours' WHERE event_id = $1`, b[2].ID); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ExpireParked(ctx, time.Hour); err != nil || n != 1 {
		t.Fatalf("expired %d %v, want 1", n, err)
	}
	leaving, _ = s.Leaving(ctx, 10)
	if len(leaving) != 2 || leaving[0].EventID != b[2].ID || leaving[0].Leaving != projectionstore.LeavingExpired {
		t.Fatalf("leaving %+v, want b's REFUNDED expired first", leaving)
	}
	// A predecessor coming now finds nothing parked to apply.
	mustApply(t, s, b[0], b[1])
	wantState(t, s, b[1])

	if err := s.Left(ctx, []uuid.UUID{a[2].ID, b[2].ID}); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.Parked(ctx, uuid.Nil, 10); len(all) != 0 {
		t.Fatalf("parked after they left: %v", all)
	}
}
