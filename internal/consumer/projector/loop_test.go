package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/order"
)

// The consumer loop against in-memory fakes of its ports: what it promises
// about the order of effects and commits, without a broker or a database.
// The fakes record every step on one timeline, so a test reads what
// happened before what.

var (
	errPermanent = errors.New("permanent")
	errTransient = errors.New("transient")
)

func classify(err error) (bool, string) {
	if errors.Is(err, errPermanent) {
		return true, "test.Permanent"
	}
	return false, "transient"
}

type timeline struct {
	mu    sync.Mutex
	steps []string
}

func (tl *timeline) add(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.steps = append(tl.steps, fmt.Sprintf(format, args...))
}

func (tl *timeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return strings.Join(tl.steps, " | ")
}

// reader hands out its messages in order and records commits.
type reader struct {
	tl        *timeline
	msgs      chan kafka.Message
	mu        sync.Mutex
	committed []int64
}

func newReader(tl *timeline, msgs ...kafka.Message) *reader {
	r := &reader{tl: tl, msgs: make(chan kafka.Message, len(msgs))}
	for _, m := range msgs {
		r.msgs <- m
	}
	return r
}

func (r *reader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	select {
	case m := <-r.msgs:
		return m, nil
	case <-ctx.Done():
		return kafka.Message{}, ctx.Err()
	}
}

func (r *reader) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	if err := ctx.Err(); err != nil {
		return err // as kafka-go does
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var offs []string
	for _, m := range msgs {
		r.committed = append(r.committed, m.Offset)
		offs = append(offs, fmt.Sprint(m.Offset))
	}
	r.tl.add("commit %s", strings.Join(offs, ","))
	return nil
}

func (r *reader) commits() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.committed...)
}

// decoder maps a message value to the event registered for it; "poison"
// is permanently undecodable.
type decoder struct{ events map[string]order.Event }

func (d decoder) Decode(_ context.Context, v []byte) (order.Event, error) {
	ev, ok := d.events[string(v)]
	if !ok {
		return order.Event{}, fmt.Errorf("decode %q: %w", v, errPermanent)
	}
	return ev, nil
}

// projector applies events, refusing permanently any batch holding an
// order of reject; fail transient failures come first; block, when set,
// holds each Apply until closed.
type projector struct {
	tl     *timeline
	reject map[string]bool
	mu     sync.Mutex
	fail   int
	block  chan struct{}
	start  chan struct{} // closed when the first Apply begins
	once   sync.Once
}

func (p *projector) Apply(ctx context.Context, events []order.Event, _ []kafka.Message) ([]order.Outcome, error) {
	if p.start != nil {
		p.once.Do(func() { close(p.start) })
	}
	if p.block != nil {
		<-p.block
	}
	if err := ctx.Err(); err != nil {
		return nil, err // as the database driver does
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail > 0 {
		p.fail--
		p.tl.add("apply failed")
		return nil, errTransient
	}
	var names []string
	for _, ev := range events {
		if p.reject[ev.Order.CustomerID] {
			p.tl.add("apply refused")
			return nil, fmt.Errorf("constraint: %w", errPermanent)
		}
		names = append(names, ev.Order.CustomerID)
	}
	p.tl.add("apply %s", strings.Join(names, ","))
	out := make([]order.Outcome, len(events))
	for i := range out {
		out[i] = order.OutcomeApplied
	}
	return out, nil
}

func (p *projector) Begin(_ context.Context, events []order.Event, _ []kafka.Message) (Pending, error) {
	return pendingOf(p, events), nil
}

// pendingOf is a transaction of events that a applies at its commit, as
// the fakes have no locks to take.
func pendingOf(a interface {
	Apply(context.Context, []order.Event, []kafka.Message) ([]order.Outcome, error)
}, events []order.Event) Pending {
	return pending{a, events}
}

type pending struct {
	a interface {
		Apply(context.Context, []order.Event, []kafka.Message) ([]order.Outcome, error)
	}
	events []order.Event
}

// CommitAndBegin applies the events; the next batch begins in its turn.
func (p pending) CommitAndBegin(ctx context.Context, _ []order.Event, _ []kafka.Message) ([]order.Outcome, Pending, error) {
	out, err := p.a.Apply(ctx, p.events, nil)
	return out, nil, err
}

func (p pending) Rollback(context.Context) {}

// dlq records what it publishes after failing fail times.
type dlq struct {
	tl   *timeline
	mu   sync.Mutex
	fail int
	got  []DeadLetter
}

func (d *dlq) Publish(_ context.Context, dls []DeadLetter) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail > 0 {
		d.fail--
		d.tl.add("dlq failed")
		return errTransient
	}
	var offs []string
	for _, dl := range dls {
		offs = append(offs, fmt.Sprint(dl.Msg.Offset))
	}
	d.got = append(d.got, dls...)
	d.tl.add("dlq %s", strings.Join(offs, ","))
	return nil
}

// fixture builds the messages of placed orders named by customer (or
// "poison", which does not decode), at offsets 0, 1, 2…
func fixture(t *testing.T, customers ...string) (decoder, []kafka.Message) {
	t.Helper()
	dec := decoder{events: map[string]order.Event{}}
	var msgs []kafka.Message
	for i, c := range customers {
		m := kafka.Message{Topic: "order-events", Partition: 0, Offset: int64(i), Value: []byte(c)}
		if c != "poison" {
			o, ev, err := order.Place(order.NewOrder{CustomerID: c, Currency: "EUR",
				Items: []order.Item{{SKU: "sku", Quantity: 1, UnitPriceMinor: 100}}}, order.Now(), order.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			dec.events[c] = ev
			m.Key = []byte(o.ID.String())
		}
		msgs = append(msgs, m)
	}
	return dec, msgs
}

// testConsumer is a loop over the fakes. Its linger is long enough that a
// reader holding several messages hands them over as one batch even on a
// loaded machine (at 5ms, a CI run split a batch), so the steps the tests
// expect do not depend on timing.
func testConsumer(t *testing.T, dec Decoder, p Projector, d DeadLetters) *Consumer {
	t.Helper()
	cfg := Config{Brokers: []string{"unused:9092"}, Topic: "order-events", GroupID: "g",
		BatchSize: 10, BatchLinger: 100 * time.Millisecond, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		ShutdownTimeout: 10 * time.Second, Decoder: dec, Projector: p, DeadLetters: d, Classify: classify,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return newConsumer(cfg, "projector")
}

// runLoop runs the loop until until() holds (or 10s pass), then stops it.
func runLoop(t *testing.T, c *Consumer, r Reader, what string, until func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.loop(ctx, r) }()
	deadline := time.Now().Add(10 * time.Second)
	for !until() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

// waitUntil waits up to 20s for cond, failing with what and the steps so far.
func waitUntil(t *testing.T, tl *timeline, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; steps: %s", what, tl)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTheLoopCommitsOnlyAfterTheEffect(t *testing.T) {
	tl := &timeline{}
	dec, msgs := fixture(t, "a", "b", "c")
	r := newReader(tl, msgs...)
	p := &projector{tl: tl, fail: 2}
	c := testConsumer(t, dec, p, &dlq{tl: tl})
	runLoop(t, c, r, "the commit", func() bool { return len(r.commits()) == 3 })

	want := "apply failed | apply failed | apply a,b,c | commit 0,1,2"
	if got := tl.String(); got != want {
		t.Errorf("steps: %s\nwant:  %s", got, want)
	}
	if st := c.Stats(); st.Applied != 3 || st.Retries != 2 || st.Batches != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestAFailedDeadLetterPublishHoldsTheCommit(t *testing.T) {
	t.Run("until it succeeds", func(t *testing.T) {
		tl := &timeline{}
		dec, msgs := fixture(t, "a", "poison", "b")
		r := newReader(tl, msgs...)
		d := &dlq{tl: tl, fail: 2}
		c := testConsumer(t, dec, &projector{tl: tl}, d)
		runLoop(t, c, r, "the commit", func() bool { return len(r.commits()) == 3 })
		want := "apply a,b | dlq failed | dlq failed | dlq 1 | commit 0,1,2"
		if got := tl.String(); got != want {
			t.Errorf("steps: %s\nwant:  %s", got, want)
		}
		if len(d.got) != 1 || string(d.got[0].Msg.Value) != "poison" || d.got[0].Class != "test.Permanent" {
			t.Errorf("dead letters %+v", d.got)
		}
	})
	t.Run("for good when it never does", func(t *testing.T) {
		tl := &timeline{}
		dec, msgs := fixture(t, "a", "poison")
		r := newReader(tl, msgs...)
		d := &dlq{tl: tl, fail: 1 << 30}
		c := testConsumer(t, dec, &projector{tl: tl}, d)
		c.cfg.ShutdownTimeout = 50 * time.Millisecond
		runLoop(t, c, r, "several failed publishes", func() bool { return strings.Count(tl.String(), "dlq failed") >= 3 })
		if got := r.commits(); len(got) != 0 {
			t.Errorf("committed %v with the dead letter unpublished; steps: %s", got, tl)
		}
	})
}

func TestAPermanentBatchErrorIsolatesTheOffender(t *testing.T) {
	tl := &timeline{}
	dec, msgs := fixture(t, "a", "bad", "b")
	r := newReader(tl, msgs...)
	d := &dlq{tl: tl}
	c := testConsumer(t, dec, &projector{tl: tl, reject: map[string]bool{"bad": true}}, d)
	runLoop(t, c, r, "the commit", func() bool { return len(r.commits()) == 3 })

	want := "apply refused | apply a | apply refused | apply b | dlq 1 | commit 0,1,2"
	if got := tl.String(); got != want {
		t.Errorf("steps: %s\nwant:  %s", got, want)
	}
	if len(d.got) != 1 || d.got[0].Msg.Offset != 1 || !errors.Is(d.got[0].Err, errPermanent) {
		t.Errorf("dead letters %+v", d.got)
	}
	if st := c.Stats(); st.Applied != 2 || st.DeadLettered != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestShutdownCommitsTheBatchInHand(t *testing.T) {
	tl := &timeline{}
	dec, msgs := fixture(t, "a", "b")
	r := newReader(tl, msgs...)
	p := &projector{tl: tl, block: make(chan struct{}), start: make(chan struct{})}
	c := testConsumer(t, dec, p, &dlq{tl: tl})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.loop(ctx, r) }()
	<-p.start // the batch is being applied
	cancel()  // shutdown begins
	select {
	case <-done:
		t.Fatal("the loop returned with its batch unfinished")
	case <-time.After(20 * time.Millisecond):
	}
	close(p.block)
	<-done
	if want := "apply a,b | commit 0,1"; tl.String() != want {
		t.Errorf("steps: %s\nwant:  %s", tl, want)
	}
}

func TestAnEventSettledOneByOneIsNotAppliedAgainAfterATransientFailure(t *testing.T) {
	tl := &timeline{}
	dec, msgs := fixture(t, "a", "bad", "b")
	r := newReader(tl, msgs...)
	// The batch is refused, "a" is applied alone, "bad" is refused, and
	// then the database fails once on "b": the retry must apply "b" alone.
	p := &flakyAfter{projector: projector{tl: tl, reject: map[string]bool{"bad": true}}, failOn: "b"}
	c := testConsumer(t, dec, p, &dlq{tl: tl})
	runLoop(t, c, r, "the commit", func() bool { return len(r.commits()) == 3 })
	want := "apply refused | apply a | apply refused | apply failed | apply b | dlq 1 | commit 0,1,2"
	if got := tl.String(); got != want {
		t.Errorf("steps: %s\nwant:  %s", got, want)
	}
	if st := c.Stats(); st.Applied != 2 || st.Duplicate != 0 {
		t.Errorf("stats %+v: an event was counted twice", st)
	}
}

// flakyAfter fails once, transiently, the first time it is given failOn alone.
type flakyAfter struct {
	projector
	failOn string
	failed bool
}

func (f *flakyAfter) Begin(_ context.Context, events []order.Event, _ []kafka.Message) (Pending, error) {
	return pendingOf(f, events), nil
}

func (f *flakyAfter) Apply(ctx context.Context, events []order.Event, _ []kafka.Message) ([]order.Outcome, error) {
	if len(events) == 1 && events[0].Order.CustomerID == f.failOn && !f.failed {
		f.failed = true
		f.tl.add("apply failed")
		return nil, errTransient
	}
	return f.projector.Apply(ctx, events, nil)
}

// heldCommits is a reader whose commits wait until release is closed.
type heldCommits struct {
	*reader
	release chan struct{}
	begun   chan struct{} // one value as each commit begins
}

func (h *heldCommits) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	var offs []string
	for _, m := range msgs {
		offs = append(offs, fmt.Sprint(m.Offset))
	}
	h.tl.add("begin commit %s", strings.Join(offs, ","))
	h.begun <- struct{}{}
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return h.reader.CommitMessages(ctx, msgs...)
}

// While a batch's offsets are being committed, the next batch is fetched
// and applied; its commit waits for the one before, so commits keep their
// order and each still follows its batch's effect.
func TestTheNextBatchIsAppliedWhileTheLastIsCommitted(t *testing.T) {
	tl := &timeline{}
	dec, msgs := fixture(t, "a", "b", "c")
	r := &heldCommits{reader: &reader{tl: tl, msgs: make(chan kafka.Message, len(msgs))},
		release: make(chan struct{}), begun: make(chan struct{}, 2)}
	r.msgs <- msgs[0]
	r.msgs <- msgs[1]
	c := testConsumer(t, dec, &projector{tl: tl}, &dlq{tl: tl})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); c.loop(ctx, r) }()

	select {
	case <-r.begun: // the first batch's commit is held
	case <-time.After(10 * time.Second):
		t.Fatalf("the first batch was never committed; steps: %s", tl)
	}
	r.msgs <- msgs[2]
	waitUntil(t, tl, "the next batch applied while the last is committed", func() bool { return strings.Contains(tl.String(), "apply c") })
	if got := r.commits(); len(got) != 0 {
		t.Fatalf("committed %v while the first commit was held", got)
	}
	close(r.release)
	waitUntil(t, tl, "both commits", func() bool { return len(r.commits()) == 3 })
	cancel()
	<-done
	want := "apply a,b | begin commit 0,1 | apply c | commit 0,1 | begin commit 2 | commit 2"
	if got := tl.String(); got != want {
		t.Errorf("steps: %s\nwant:  %s", got, want)
	}
	if st := c.Stats(); st.Applied != 3 || st.Batches != 2 {
		t.Errorf("stats %+v", st)
	}
}

// failingCommits is a reader whose commits fail while fail is set.
type failingCommits struct {
	*reader
	mu   sync.Mutex
	fail bool
}

func (f *failingCommits) setFail(v bool) { f.mu.Lock(); f.fail = v; f.mu.Unlock() }

func (f *failingCommits) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return errTransient
	}
	return f.reader.CommitMessages(ctx, msgs...)
}

// A commit being retried beside the next batch's steps reports the consumer
// not ready, naming the commit, until it succeeds; the batch after it,
// applied meanwhile, does not clear that.
func TestAFailingCommitReportsNotReadyUntilItPasses(t *testing.T) {
	for _, long := range []bool{true, false} {
		t.Run(fmt.Sprintf("backoff of a minute=%v", long), func(t *testing.T) {
			tl := &timeline{}
			dec, msgs := fixture(t, "a", "b")
			r := &failingCommits{reader: &reader{tl: tl, msgs: make(chan kafka.Message, len(msgs))}, fail: true}
			r.msgs <- msgs[0]
			c := testConsumer(t, dec, &projector{tl: tl}, &dlq{tl: tl})
			if long {
				// One failed commit, then a minute's wait: the only thing
				// that could make the consumer ready meanwhile is the batch
				// applied after it.
				c.cfg.BackoffMin, c.cfg.BackoffMax, c.cfg.ShutdownTimeout = time.Minute, time.Minute, time.Millisecond
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); c.loop(ctx, r) }()
			defer func() { cancel(); <-done }()
			waitUntil(t, tl, "the commit to fail", func() bool { return c.Ready() != nil })
			r.msgs <- msgs[1]
			waitUntil(t, tl, "the next batch to be applied", func() bool { return strings.Contains(tl.String(), "apply b") })
			if long {
				// The next batch marks its own steps ready microseconds after
				// its apply; look for a while longer than that.
				for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); time.Sleep(time.Millisecond) {
					if err := c.Ready(); err == nil || !strings.Contains(err.Error(), DepCommit) {
						t.Fatalf("Ready() = %v while the commit waits to be retried, want it to name %q", err, DepCommit)
					}
				}
				return
			}
			r.setFail(false)
			waitUntil(t, tl, "both commits", func() bool { return len(r.commits()) == 2 })
			waitUntil(t, tl, "ready again", func() bool { return c.Ready() == nil })
			if want := "apply a | apply b | commit 0 | commit 1"; tl.String() != want {
				t.Errorf("steps: %s\nwant:  %s", tl, want)
			}
		})
	}
}
