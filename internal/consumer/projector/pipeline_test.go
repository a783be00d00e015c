package projector

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersonkafka/orders/internal/order"
)

// txProjector is a projector whose transactions the tests can see: each
// begin, apply (the commit), failure and rollback is on the timeline, and
// a commit begins the next batch's transaction when given one, as
// projectionstore's does. failOnce fails the first commit of a batch whose
// first event is of that customer, transiently; hold, when set, holds the
// first commit until it is closed.
type txProjector struct {
	tl       *timeline
	mu       sync.Mutex
	failOnce string
	hold     chan struct{}
	held     bool
}

func names(events []order.Event) string {
	var n []string
	for _, ev := range events {
		n = append(n, ev.Order.CustomerID)
	}
	return strings.Join(n, ",")
}

func (p *txProjector) Apply(ctx context.Context, events []order.Event, _ []kafka.Message) ([]order.Outcome, error) {
	tx, err := p.Begin(ctx, events, nil)
	if err != nil {
		return nil, err
	}
	out, _, err := tx.CommitAndBegin(ctx, nil, nil)
	return out, err
}

func (p *txProjector) Begin(_ context.Context, events []order.Event, _ []kafka.Message) (Pending, error) {
	p.tl.add("begin %s", names(events))
	return &fakeTx{p: p, events: events}, nil
}

type fakeTx struct {
	p      *txProjector
	events []order.Event
}

func (t *fakeTx) CommitAndBegin(_ context.Context, next []order.Event, _ []kafka.Message) ([]order.Outcome, Pending, error) {
	p := t.p
	p.mu.Lock()
	hold := p.hold != nil && !p.held
	p.held = p.held || hold
	fail := p.failOnce != "" && t.events[0].Order.CustomerID == p.failOnce
	if fail {
		p.failOnce = ""
	}
	p.mu.Unlock()
	if hold {
		<-p.hold
	}
	if fail {
		p.tl.add("apply failed")
		return nil, nil, errTransient
	}
	p.tl.add("apply %s", names(t.events))
	out := make([]order.Outcome, len(t.events))
	for i := range out {
		out[i] = order.OutcomeApplied
	}
	if len(next) == 0 {
		return out, nil, nil
	}
	p.tl.add("begin %s", names(next))
	return out, &fakeTx{p: p, events: next}, nil
}

func (t *fakeTx) Rollback(context.Context) { t.p.tl.add("rollback %s", names(t.events)) }

// decoded items of the messages, as prepare leaves them.
func decodedItems(t *testing.T, c *Consumer, msgs []kafka.Message) []item {
	t.Helper()
	items := make([]item, len(msgs))
	for i, m := range msgs {
		items[i] = item{msg: m}
		items[i].ctx, items[i].span = c.startSpan(context.Background(), m, order.Meta{}, trace.WithTimestamp(time.Now()))
	}
	if err := c.decode(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	return items
}

// A batch commits and the next one begins in the same step, and the next
// one then commits on the transaction begun: no begin of its own.
func TestTheNextBatchBeginsWithTheLastOnesCommit(t *testing.T) {
	tl := &timeline{}
	dec, msgs := fixture(t, "a", "b", "c", "d")
	p := &txProjector{tl: tl}
	c := testConsumer(t, dec, p, &dlq{tl: tl})
	this, next := decodedItems(t, c, msgs[:2]), decodedItems(t, c, msgs[2:])

	ahead, err := c.applyBatch(context.Background(), this, nil, &prepared{items: next})
	if err != nil || ahead == nil {
		t.Fatalf("applyBatch: %v, next transaction %v", err, ahead)
	}
	if _, err := c.applyBatch(context.Background(), next, ahead, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := tl.String(), "begin a,b | apply a,b | begin c,d | apply c,d"; got != want {
		t.Errorf("steps: %s\nwant:  %s", got, want)
	}
	for _, it := range append(this, next...) {
		if it.outcome != order.OutcomeApplied {
			t.Errorf("%s: %s", it.ev.Order.CustomerID, it.outcome)
		}
	}
}

// A batch whose commit fails begins no next one: it is retried alone, and
// the next batch begins in its own turn, reading what the retry committed.
func TestAFailedCommitLeavesTheNextBatchToBeginInItsTurn(t *testing.T) {
	tl := &timeline{}
	dec, msgs := fixture(t, "a", "b", "c")
	p := &txProjector{tl: tl, failOnce: "a"}
	c := testConsumer(t, dec, p, &dlq{tl: tl})
	this, next := decodedItems(t, c, msgs[:2]), decodedItems(t, c, msgs[2:])

	ahead, err := c.applyBatch(context.Background(), this, nil, &prepared{items: next})
	if err != nil || ahead != nil {
		t.Fatalf("applyBatch: %v, next transaction %v; want none after a failure", err, ahead)
	}
	if _, err := c.applyBatch(context.Background(), next, ahead, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := tl.String(), "begin a,b | apply failed | begin a,b | apply a,b | begin c | apply c"; got != want {
		t.Errorf("steps: %s\nwant:  %s", got, want)
	}
}

// The loop decodes the next batch while one is being applied, and a
// transaction begun for a batch the loop will not apply (it stops) is
// rolled back, never left holding its orders.
func TestTheNextBatchIsDecodedWhileOneIsAppliedAndABegunOneIsRolledBackAtShutdown(t *testing.T) {
	tl := &timeline{}
	var customers []string
	for _, batch := range []string{"a", "b", "c"} {
		for i := range 10 {
			customers = append(customers, batch+string(rune('0'+i)))
		}
	}
	dec, msgs := fixture(t, customers...)
	r := newReader(tl, msgs...)
	p := &txProjector{tl: tl, hold: make(chan struct{})}
	c := testConsumer(t, dec, p, &dlq{tl: tl})
	c.cfg.Decoder = recordingDecoder{Decoder: dec, tl: tl}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.loop(ctx, r) }()
	// Batch a is held in its commit until batch b has been decoded: if the
	// loop decoded only between applies, this would never happen.
	waitUntil(t, tl, "batch b decoded while batch a is applied", func() bool { return strings.Contains(tl.String(), "decoded b9") })
	close(p.hold)
	waitUntil(t, tl, "batch b applied, and c begun with it", func() bool { return strings.Contains(tl.String(), "apply b0") })
	waitUntil(t, tl, "the commit of batch b", func() bool { return len(r.commits()) >= 20 })
	cancel()
	<-done
	steps := tl.String()
	if strings.Contains(steps, "begin c0") && !strings.Contains(steps, "apply c0") && !strings.Contains(steps, "rollback c0") {
		t.Errorf("batch c's transaction was begun, never applied, and not rolled back: %s", steps)
	}
	if strings.Index(steps, "decoded b9") > strings.Index(steps, "apply a0") {
		t.Errorf("batch b was not decoded before batch a's commit ended: %s", steps)
	}
}

// recordingDecoder notes on the timeline each message it decoded whose
// customer ends in 9, the last of each batch of the test above.
type recordingDecoder struct {
	Decoder
	tl *timeline
}

func (d recordingDecoder) Decode(ctx context.Context, v []byte) (order.Event, error) {
	ev, err := d.Decoder.Decode(ctx, v)
	if strings.HasSuffix(string(v), "9") {
		d.tl.add("decoded %s", v)
	}
	return ev, err
}

// A batch with dead letters does not keep the next batch's transaction
// through their publishing, which is retried as long as the DLQ fails: it
// is rolled back first, and the next batch begins in its turn.
func TestTheNextBatchsOrdersAreNotHeldWhileDeadLettersArePublished(t *testing.T) {
	tl := &timeline{}
	dec, msgs := fixture(t, "a", "poison", "b", "c")
	p := &txProjector{tl: tl}
	c := testConsumer(t, dec, p, &dlq{tl: tl, fail: 2})
	this, next := decodedItems(t, c, msgs[:3]), decodedItems(t, c, msgs[3:])

	ahead, err := c.applyBatch(context.Background(), this, nil, &prepared{items: next})
	if err != nil || ahead != nil {
		t.Fatalf("applyBatch: %v, next transaction %v; want none kept", err, ahead)
	}
	if _, err := c.applyBatch(context.Background(), next, ahead, nil); err != nil {
		t.Fatal(err)
	}
	want := "begin a,b | apply a,b | begin c | rollback c | dlq failed | dlq failed | dlq 1 | begin c | apply c"
	if got := tl.String(); got != want {
		t.Errorf("steps: %s\nwant:  %s", got, want)
	}
}

// The next batch's transaction waits for the commit before only so long:
// kept if the commit ends in time, rolled back if it does not (it is being
// retried, and the orders stay free meanwhile).
func TestTheNextBatchsTransactionWaitsForTheCommitBeforeOnlySoLong(t *testing.T) {
	tl := &timeline{}
	dec, _ := fixture(t, "a", "b")
	p := &txProjector{tl: tl}
	c := testConsumer(t, dec, p, &dlq{tl: tl})
	c.aheadHold = 50 * time.Millisecond

	ended := &commitFlight{done: make(chan error, 1)}
	ended.done <- nil
	ahead, _ := p.Begin(context.Background(), []order.Event{dec.events["a"]}, nil)
	if got := c.keepAhead(context.Background(), ahead, ended); got != ahead {
		t.Errorf("with the commit before ended: %v, want the transaction kept", got)
	}
	if got := c.keepAhead(context.Background(), ahead, nil); got != ahead {
		t.Errorf("with no commit before: %v, want the transaction kept", got)
	}

	retrying := &commitFlight{done: make(chan error, 1)}
	ahead, _ = p.Begin(context.Background(), []order.Event{dec.events["b"]}, nil)
	start := time.Now()
	if got := c.keepAhead(context.Background(), ahead, retrying); got != nil {
		t.Errorf("with the commit before still running: %v, want none", got)
	}
	if waited := time.Since(start); waited < c.aheadHold {
		t.Errorf("rolled back after %s, before aheadHold", waited)
	}
	if got, want := tl.String(), "begin a | begin b | rollback b"; got != want {
		t.Errorf("steps: %s\nwant:  %s", got, want)
	}
}
