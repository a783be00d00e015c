// Package projector is order-consumer's engine: a Kafka consumer group that
// applies order events to the consumer's database, exactly once in effect.
//
// Each batch is fetched (FetchMessage, never ReadMessage), its messages
// decoded and checked to be events the API could have written
// (order.Machine.CheckEvent, with the message key), its valid events
// applied in one transaction (Projector: the domain's machine judges them
// there), the messages that can never be applied published to the
// dead-letter topic, and only then its offsets committed with one
// CommitMessages. So (docs/design.md, invariants 4 to 6 and 8):
//   - an offset is committed only after its effect, or its dead letter, is
//     durable; a crash before the commit redelivers the batch, and applying
//     is idempotent;
//   - failures are sorted by the caller's one classifier (Config.Classify:
//     orderconsumer.Classify): transient ones (the database, registry or
//     broker unreachable) are retried with capped exponential backoff and
//     jitter, Ready reports the failure, and nothing goes to the DLQ;
//     permanent ones (not Confluent-framed, unknown schema ID, undecodable or
//     unresolvable Avro, an event that breaks a rule of CheckEvent or comes
//     out of sequence, data the database rejects) go to the DLQ byte for
//     byte;
//   - events keep their partition's order: batches are applied one at a
//     time, in fetch order, each in fetch order;
//   - the work is a pipeline (loop): the next batch is fetched and decoded
//     while one is applied, its transaction begins in the round trip that
//     commits the one before, and a batch's offsets are committed while the
//     next is applied, never before its own effect, one commit at a time;
//   - what arrives is bounded: the decoder checks every claimed length,
//     header values used for tracing are length-checked text.
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ordersonkafka/orders/internal/event/envelope"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/backoff"
	"github.com/ordersonkafka/orders/internal/platform/health"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/logging"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/text"
)

// Decoder turns a message value into an event (eventcodec.Decoder).
type Decoder interface {
	Decode(ctx context.Context, value []byte) (order.Event, error)
}

// Projector applies a batch of events in one transaction, returning one
// outcome per event (projectionstore.Store). Apply is Begin, then the
// Pending's Commit; the consumer begins the next batch's transaction while
// the last one commits (see loop), which Begin must allow. msgs are the
// messages the events came in (same index): an event parked keeps its
// message, to be dead-lettered intact if it never applies.
type Projector interface {
	Apply(ctx context.Context, events []order.Event, msgs []kafka.Message) ([]order.Outcome, error)
	// Begin starts the batch's transaction: its orders are locked (after
	// any transaction holding them ends) and what they hold is read.
	Begin(ctx context.Context, events []order.Event, msgs []kafka.Message) (Pending, error)
}

// Pending is a batch whose transaction Begin started. Commit or Rollback it
// once; either ends the transaction.
type Pending interface {
	// CommitAndBegin judges, writes and commits the batch, with Apply's
	// result, and begins next's transaction right after, in the same
	// round trip: that transaction is returned, or nil if next is empty or
	// its beginning failed (this batch's result stands either way).
	CommitAndBegin(ctx context.Context, next []order.Event, nextMsgs []kafka.Message) ([]order.Outcome, Pending, error)
	// Rollback ends the transaction, writing nothing.
	Rollback(ctx context.Context)
}

// DeadLetter is a message that can never be applied, with why.
type DeadLetter struct {
	Msg   kafka.Message // the original, as the reader returned it
	Class string        // the error's stable class (Config.Classify), for the DLQ's headers
	Err   error
}

// DeadLetters publishes messages that can never be applied; it returns nil
// only once all of them are durable, so the consumer may commit past them.
type DeadLetters interface {
	Publish(ctx context.Context, dls []DeadLetter) error
}

// Reader is the consumer group's side of Kafka (*kafka.Reader): messages in
// partition order, and offsets committed only when told.
type Reader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Classifier sorts a failure: permanent if no retry can ever succeed (the
// message belongs in the DLQ), and class its stable name for the DLQ's
// kafka_dlt-exception-fqcn header. Everything it does not recognise must be
// transient.
type Classifier func(err error) (permanent bool, class string)

// Config configures a Consumer. The settings an operator chooses are
// required (their defaults are order-consumer's, in one place: the env tags
// of orderconsumer.Config); the others default when zero.
type Config struct {
	Brokers []string
	// Security is how to connect to the brokers (TLS, SASL); nil: plain text.
	Security    *kafkaconn.Security
	Topic       string
	GroupID     string
	BatchSize   int // most messages per transaction and commit
	BatchLinger time.Duration
	// BackoffMin and BackoffMax bound retries of a failing dependency.
	BackoffMin, BackoffMax time.Duration
	// ShutdownTimeout bounds finishing the batch in hand once Run's context
	// ends. Past it the batch is left uncommitted (redelivered).
	ShutdownTimeout time.Duration
	// TopicCheckInterval is how often the consumer checks its topic: that
	// it exists, how many partitions it has, and that the group's offsets
	// lie within them (watch.go); default 10s. kafka-go's Reader tells none
	// of these.
	TopicCheckInterval time.Duration
	// OffsetReset is where a partition is read from when the group has no
	// offset for it or the one it has is out of the partition's range:
	// ResetEarliest (the default) or ResetLatest.
	OffsetReset string

	// Machine is the order state machine events are checked against
	// (order.Machine.CheckEvent). Default order.Standard.
	Machine     *order.Machine
	Decoder     Decoder
	Projector   Projector
	DeadLetters DeadLetters
	// Classify sorts the failures of the decoder, Machine.CheckEvent and the
	// projector. Required.
	Classify Classifier

	Logger *slog.Logger
	// Metrics receives the consumer's measurements. Default: metrics kept
	// on a registry of their own, which nobody scrapes.
	Metrics *Metrics
	// Committed, if set, is told each event's order ID and version once its
	// batch is committed (the read API's waiting requests listen to it).
	// It must not block.
	Committed func(id uuid.UUID, version int64)
	// Tracer starts one consumer span per message, child of the traceparent
	// in its headers. Default: a no-op tracer (the trace context still
	// reaches the log lines).
	Tracer trace.Tracer
	// Condition, if set, is told what Ready returns whenever it may have
	// changed: /readyz's consumer check, which logs one line when the
	// consumer starts failing and one when it recovers.
	Condition *health.Condition
	// Heart, if set, beats while the pipeline is alive: as batches are
	// applied and committed, at each retry, and, while no message comes,
	// as the fetch waits. A call that never returns (a query the database
	// never answers, a commit the coordinator never acknowledges) stops it.
	Heart *health.Heart
}

func (c *Config) setDefaults() {
	if c.TopicCheckInterval == 0 {
		c.TopicCheckInterval = 10 * time.Second
	}
	if c.OffsetReset == "" {
		c.OffsetReset = ResetEarliest
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if c.Tracer == nil {
		c.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if c.Machine == nil {
		c.Machine = order.Standard
	}
}

// Validate reports what is missing or unusable.
func (c Config) Validate() error {
	var errs []error
	if c.Projector == nil || c.DeadLetters == nil {
		errs = append(errs, errors.New("projector: Projector and DeadLetters are required"))
	}
	return errors.Join(append(errs, c.validateRead())...)
}

// validateRead checks what reading and applying need (Rebuild: no group,
// no dead letters).
func (c Config) validateRead() error {
	var errs []error
	if len(c.Brokers) == 0 || c.Topic == "" {
		errs = append(errs, errors.New("projector: Brokers and Topic are required"))
	}
	if c.Decoder == nil || c.Classify == nil {
		errs = append(errs, errors.New("projector: Decoder and Classify are required"))
	}
	if c.OffsetReset != ResetEarliest && c.OffsetReset != ResetLatest {
		errs = append(errs, fmt.Errorf("projector: OffsetReset %q is neither %q nor %q", c.OffsetReset, ResetEarliest, ResetLatest))
	}
	if c.BatchSize < 1 || c.BatchLinger <= 0 || c.ShutdownTimeout <= 0 || c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin {
		errs = append(errs, errors.New("projector: BatchSize, BatchLinger and ShutdownTimeout must be positive, and 0 < BackoffMin <= BackoffMax"))
	}
	return errors.Join(errs...)
}

// Stats counts what a consumer did since it started.
type Stats struct {
	Applied, Duplicate, Stale, Parked, DeadLettered, Retries, Batches int64
}

// MaxObservedLag bounds what consumer_end_to_end_latency_seconds observes:
// an applied event that occurred longer ago (a DLQ replay, a backlog of more
// than a week) or in the future (a producer's clock ahead) is not observed.
const MaxObservedLag = 7 * 24 * time.Hour

// Consumer runs the loop. Create it with New, call Run once.
type Consumer struct {
	cfg      Config
	spanName string // "<topic> process", as OpenTelemetry names a consumer's process span
	log      *slog.Logger
	m        *Metrics
	stats    struct{ applied, duplicate, stale, parked, deadLettered, retries, batches atomic.Int64 }

	mu        sync.Mutex
	notReady  error // the step of the batch being applied that is being retried
	decodeErr error // the registry, while the batch being prepared is retried
	commitErr error // the commit being retried
	fetchErr  error // fetching failed (the group cannot join, the broker is down)
	topicErr  error // the topic does not exist, or cannot be checked

	logMu    sync.Mutex
	lastLogs map[string]time.Time // kafka-go's error lines, for rate limiting

	aheadHold time.Duration // how long a transaction begun ahead waits for the commit before (aheadHold)
	watch     *watch        // the topic's watch, while Run runs

	// waiting is true while the loop waits for the next batch: only then
	// do the fetcher's beats count (fetcherBeat).
	waiting atomic.Bool
}

// beat records that the pipeline moved on, or that one of its retries
// waits out a failure.
func (c *Consumer) beat() { c.cfg.Heart.Beat() }

// fetcherBeat is the fetcher's beat. It counts only while the loop waits
// for the fetcher: then a fetch waiting for messages that do not come is an
// idle pipeline, not a wedged one; while the loop applies a batch, its own
// beats must show it is alive, and a fetcher polling an idle topic must not
// hide a loop stuck in the database.
func (c *Consumer) fetcherBeat() {
	if c.waiting.Load() {
		c.cfg.Heart.Beat()
	}
}

// sleep waits d or until ctx ends, reporting whether the full d passed,
// beating with beat meanwhile.
func (c *Consumer) sleep(ctx context.Context, d time.Duration, beat func()) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	pulse, stop := c.cfg.Heart.Pulse()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			beat()
			return true
		case <-pulse:
			beat()
		}
	}
}

// aheadHold is how long the next batch's transaction, begun ahead and
// holding its orders' locks, waits for the offset commit of the batch
// before to end. A commit that takes longer is being retried (the group
// coordinator is failing): the transaction is rolled back rather than keep
// those orders locked meanwhile — another consumer may be given their
// partitions — and the batch begins again in its turn.
const aheadHold = time.Second

// New validates cfg and returns a Consumer.
func New(cfg Config) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newConsumer(cfg, "projector"), nil
}

func newConsumer(cfg Config, component string) *Consumer {
	return &Consumer{cfg: cfg, spanName: cfg.Topic + " process", log: cfg.Logger.With("component", component), m: cfg.Metrics,
		aheadHold: aheadHold}
}

// Ready returns nil while the consumer can make progress, or the failure it
// is waiting out (database, registry or broker down).
func (c *Consumer) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready()
}

// ready is Ready with c.mu held.
func (c *Consumer) ready() error {
	switch {
	case c.notReady != nil:
		return c.notReady
	case c.decodeErr != nil:
		return c.decodeErr
	case c.commitErr != nil:
		return c.commitErr
	case c.fetchErr != nil:
		return c.fetchErr
	}
	return c.topicErr
}

// set sets one of the failures Ready reports, and tells Config.Condition
// what Ready returns now, under the same lock, so that it sees the changes
// in their order.
func (c *Consumer) set(failure *error, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*failure = err
	if c.cfg.Condition != nil {
		c.cfg.Condition.Set(c.ready())
	}
}

func (c *Consumer) setFetchErr(err error) { c.set(&c.fetchErr, err) }

func (c *Consumer) setReady(err error) { c.set(&c.notReady, err) }

// setDecodeErr is setReady for the batch being prepared, which runs beside
// the one being applied.
func (c *Consumer) setDecodeErr(err error) { c.set(&c.decodeErr, err) }

// setCommitErr is setReady for commits, which run beside the next batch's
// steps: each clears only its own failure.
func (c *Consumer) setCommitErr(err error) { c.set(&c.commitErr, err) }

// setTopicErr records the watch's finding: the topic missing, or not
// checkable.
func (c *Consumer) setTopicErr(err error) { c.set(&c.topicErr, err) }

// Stats returns the counters.
func (c *Consumer) Stats() Stats {
	s := &c.stats
	return Stats{s.applied.Load(), s.duplicate.Load(), s.stale.Load(), s.parked.Load(), s.deadLettered.Load(), s.retries.Load(), s.batches.Load()}
}

// Run consumes until ctx ends. The batch in hand when ctx ends is finished
// and committed (within ShutdownTimeout) before Run returns nil.
//
// Beside the reader, a watch checks the topic every TopicCheckInterval
// (watch.go): when the topic appears, gains partitions, or holds less than
// the group's offsets point to (deleted and created again, truncated), the
// reader is closed and made anew, so the group joins again and reads every
// partition from its committed offset, or from OffsetReset's end.
func (c *Consumer) Run(ctx context.Context) error {
	c.log.Info("consuming", "topic", c.cfg.Topic, "group", c.cfg.GroupID, "offset_reset", c.cfg.OffsetReset)
	w := c.newWatch()
	for {
		rctx, restart := context.WithCancel(ctx)
		// The partitions are counted before the reader joins, never after:
		// partitions added in between make it join again, needlessly but
		// never too late.
		partitions := w.partitions(ctx)
		r := c.newReader()
		watched := make(chan struct{})
		go func() { defer close(watched); w.run(rctx, r, restart, partitions) }()
		c.loop(rctx, r)
		restart()
		<-watched
		r.Close()
		if ctx.Err() != nil {
			c.log.Info("consumer stopped", "stats", c.Stats())
			return nil
		}
	}
}

// newReader returns a reader of the group.
func (c *Consumer) newReader() *kafka.Reader {
	start := kafka.FirstOffset
	if c.cfg.OffsetReset == ResetLatest {
		start = kafka.LastOffset
	}
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: c.cfg.Brokers,
		Dialer:  c.cfg.Security.Dialer(),
		GroupID: c.cfg.GroupID,
		Topic:   c.cfg.Topic,
		// Where a partition the group has no offset for is read from.
		StartOffset: start,
		// A partition whose committed offset is past its end (the topic
		// was deleted and created again) is reported rather than retried
		// for ever: the watch then resets it (watch.go).
		OffsetOutOfRangeError: true,
		MinBytes:              1,
		// What one fetch returns, per partition: 1 MiB, Kafka's own
		// default record size. A larger record still comes, alone: brokers
		// return the first record batch whatever this says (fetch v3 on),
		// and the decoder refuses values over eventcodec.MaxValueBytes.
		// Fetches of 16 MiB drained a backlog 10-15% slower here (the
		// embedded broker building the large answers) and hold more in
		// memory while they are read.
		MaxBytes: 1 << 20,
		// How long a fetch waits for data, and so (kafka-go) how long its
		// answer may take to start arriving: a partition with data answers
		// at once whatever this says. At 250ms a fetch of a record of
		// megabytes from a loaded broker timed out every time, for good.
		MaxWait:           time.Second,
		CommitInterval:    0, // synchronous commits, only when we call CommitMessages
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    readBackoffMax,
		// Reading the records of a fetch answer, each; kafka-go's default
		// is 10s, KAFKA_TIMEOUT's too.
		ReadBatchTimeout: c.cfg.Security.Timeout(),
		QueueCapacity:    c.cfg.BatchSize,
		// A group that failed to join tries again after this; kafka-go's
		// default is 5s, which BackoffMax of 10s keeps.
		JoinGroupBackoff: min(c.cfg.BackoffMax, 5*time.Second),
		// Its info lines say when the group has joined: fetching can
		// proceed, even if no message comes to prove it.
		Logger:      kafka.LoggerFunc(c.kafkaInfo),
		ErrorLogger: kafka.LoggerFunc(c.kafkaError),
	})
}

// loop fetches and processes batches from r until ctx ends; the batch being
// applied then is finished and committed (within ShutdownTimeout).
//
// It is a pipeline, each stage taking one batch at a time, in fetch order: a
// goroutine fetches and decodes batches (prepare) while this one applies
// them and publishes their dead letters (applyBatch), and another goroutine
// commits the offsets of the batch applied last (commit). So the decoding
// (Go's work) overlaps the database's, and the offset commit both. When
// the next batch is decoded already, its transaction begins in the same
// round trip as this one's commit, on the same connection, right after it
// (Pending.CommitAndBegin): an order both batches touch is read once this
// one has committed it, and if this one fails, the next one has not begun.
// That transaction holds the next batch's orders, so it is not kept through
// anything that may last: it is rolled back when this batch has dead
// letters to publish, or when the commit before takes longer than
// aheadHold, and the next batch begins again in its turn.
// Batches are applied in order, a commit starts only once its batch's
// effect and dead letters are durable, and commits go one at a time, in
// order: the next batch's commit waits for the last one's. A batch decoded
// but not applied when ctx ends is abandoned, uncommitted: it is
// redelivered.
func (c *Consumer) loop(ctx context.Context, r Reader) {
	// One batch waits decoded while the goroutine decodes the one after: so
	// the next batch is there when this one commits, and its transaction
	// begins in the same round trip (measured: with an unbuffered channel
	// it was there for 1 batch in 10).
	ready := make(chan prepared, 1)
	go c.prepareBatches(ctx, r, ready)
	var (
		committing *commitFlight
		next       *prepared // the batch after the one being applied, taken early to begin it
		ahead      Pending   // next's transaction, begun while the last batch committed
	)
	defer func() {
		if ahead != nil {
			ahead.Rollback(context.WithoutCancel(ctx))
		}
		committing.wait()
	}()
	for {
		c.beat()
		b := next
		next = nil
		if b == nil {
			c.waiting.Store(true)
			p, ok := <-ready
			c.waiting.Store(false)
			c.beat()
			if !ok {
				return
			}
			b = &p
		}
		if ctx.Err() != nil { // shutting down: only the batch being applied is finished
			if ahead != nil {
				ahead.Rollback(context.WithoutCancel(ctx))
				ahead = nil
			}
			c.finish(b.items, b.start, ctx.Err())
			continue
		}
		select { // the next batch, if decoded already, begins while this one commits
		case p, ok := <-ready:
			if ok {
				next = &p
			}
		default:
		}
		// Finish the batch even if ctx ends now, within the shutdown bound.
		bctx, cancel := c.batchContext(ctx)
		var perr error
		ahead, perr = c.applyBatch(bctx, b.items, ahead, next)
		ahead = c.keepAhead(ctx, ahead, committing)
		if cerr := committing.wait(); perr == nil && cerr != nil {
			// Only a shutdown past its bound abandons a commit: this
			// batch, applied, is redelivered with it (idempotently).
			perr = errors.New("the batch before was not committed")
		}
		committing = nil
		if perr != nil {
			cancel()
			c.finish(b.items, b.start, perr)
			c.log.Warn("batch abandoned; it will be redelivered", "messages", len(b.items), "error", perr)
			continue
		}
		committing = c.commit(bctx, cancel, r, b.items, b.start)
	}
}

// prepared is a batch fetched and decoded, ready to be applied.
type prepared struct {
	items []item
	start time.Time
}

// prepareBatches fetches batches from r and decodes them (retrying what is
// transient), handing each to out in fetch order, until ctx ends; then it
// closes out. A failing fetch is retried with backoff and reported.
func (c *Consumer) prepareBatches(ctx context.Context, r Reader, out chan<- prepared) {
	defer close(out)
	fetchFailures := 0
	for {
		batch, err := c.fetch(ctx, r)
		if c.watch != nil {
			c.watch.fetched(batch)
			if err != nil && errors.Is(err, kafka.OffsetOutOfRange) {
				c.watch.outOfRange()
			}
		}
		if len(batch) > 0 {
			items, start, perr := c.prepare(ctx, batch)
			if perr != nil { // only when ctx ended while the registry was failing
				c.finish(items, start, perr)
				return
			}
			select {
			case out <- prepared{items, start}:
			case <-ctx.Done():
				c.finish(items, start, ctx.Err())
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			fetchFailures = 0
			c.setFetchErr(nil)
			continue
		}
		fetchFailures++
		c.setFetchErr(fmt.Errorf("kafka: %w", err))
		c.stats.retries.Add(1)
		c.m.retries.WithLabelValues(DepFetch).Inc()
		d := backoff.Delay(c.cfg.BackoffMin, c.cfg.BackoffMax, fetchFailures)
		c.log.Warn("fetch failed; retrying", "attempt", fetchFailures, "backoff", d.String(), "error", err)
		if !c.sleep(ctx, d, c.fetcherBeat) {
			return
		}
	}
}

// commitFlight is a batch whose offsets a goroutine is committing.
type commitFlight struct{ done chan error }

// wait returns the commit's result once it has ended (nil for no flight).
func (f *commitFlight) wait() error {
	if f == nil {
		return nil
	}
	err := <-f.done
	f.done <- err // for a later wait
	return err
}

// keepAhead returns ahead, the next batch's transaction, once the commit
// in flight has ended, if it ends within c.aheadHold; otherwise it rolls
// ahead back and returns nil.
func (c *Consumer) keepAhead(ctx context.Context, ahead Pending, committing *commitFlight) Pending {
	if ahead == nil || committing.endsWithin(c.aheadHold) {
		return ahead
	}
	ahead.Rollback(context.WithoutCancel(ctx))
	return nil
}

// endsWithin reports whether the commit ends within d (true for no flight).
func (f *commitFlight) endsWithin(d time.Duration) bool {
	if f == nil {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-f.done:
		f.done <- err // for wait
		return true
	case <-t.C:
		return false
	}
}

// commit commits the batch's offsets in a goroutine, retrying until it
// succeeds or ctx ends, then records what became of its messages.
func (c *Consumer) commit(ctx context.Context, cancel context.CancelFunc, r Reader, items []item, start time.Time) *commitFlight {
	f := &commitFlight{done: make(chan error, 1)}
	batch := make([]kafka.Message, len(items))
	for i := range items {
		batch[i] = items[i].msg
	}
	go func() {
		defer cancel()
		err := c.retry(ctx, DepCommit, func() error { return r.CommitMessages(ctx, batch...) })
		if err == nil {
			c.beat()
			c.stats.batches.Add(1)
			c.setCommitErr(nil)
		} else {
			c.log.Warn("batch abandoned; it will be redelivered", "messages", len(batch), "error", err)
		}
		c.finish(items, start, err)
		f.done <- err
	}()
	return f
}

// kafkaInfo watches kafka-go's info lines for the group joining, which ends
// a fetch failure (the group could not join) without a message to show it.
func (c *Consumer) kafkaInfo(format string, args ...any) {
	if strings.HasPrefix(format, "joined group") {
		c.setFetchErr(nil)
	}
}

// readBackoffMax is the longest kafka-go's Reader waits before it tries a
// partition again after a failed fetch.
const readBackoffMax = time.Second

// digits are runs of digits, which kafka-go's lines vary in (partitions,
// offsets, ports) without saying anything new.
var digits = regexp.MustCompile(`[0-9]+`)

// kafkaError logs what kafka-go reports (a group that cannot join, a leader
// that cannot be reached, a fetch unanswered) at warn, each kind of line
// (the same but for its numbers: partitions, offsets, ports) at most once a
// minute. kafka-go retries a fetch that failed on its own and never returns
// the failure from FetchMessage: the watch's probe reports a broker that
// does not answer fetches (watch.go).
func (c *Consumer) kafkaError(format string, args ...any) {
	line, now := fmt.Sprintf(format, args...), time.Now()
	key := digits.ReplaceAllString(line, "#")
	c.logMu.Lock()
	if c.lastLogs == nil || len(c.lastLogs) > 1000 {
		c.lastLogs = map[string]time.Time{}
	}
	last, seen := c.lastLogs[key]
	quiet := seen && now.Sub(last) < time.Minute
	if !quiet {
		c.lastLogs[key] = now
	}
	c.logMu.Unlock()
	if !quiet {
		c.log.Warn("kafka client", "topic", c.cfg.Topic, "group", c.cfg.GroupID, "error", line)
	}
}

// batchContext outlives ctx by at most ShutdownTimeout once ctx ends.
func (c *Consumer) batchContext(ctx context.Context) (context.Context, context.CancelFunc) {
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(c.cfg.ShutdownTimeout, cancel)
		context.AfterFunc(bctx, func() { t.Stop() })
	})
	return bctx, func() { stop(); cancel() }
}

// fetch blocks for the first message, then takes what arrives within
// BatchLinger, up to BatchSize. With a heart, the wait for the first
// message is cut every Heart.Every to beat (fetcherBeat): an idle topic is
// not a wedged consumer.
func (c *Consumer) fetch(ctx context.Context, r Reader) ([]kafka.Message, error) {
	m, err := c.first(ctx, r)
	if err != nil {
		return nil, err
	}
	batch := []kafka.Message{m}
	lctx, cancel := context.WithTimeout(ctx, c.cfg.BatchLinger)
	defer cancel()
	for len(batch) < c.cfg.BatchSize {
		m, err := r.FetchMessage(lctx)
		if err != nil {
			break // linger over (or ctx ended): process what we have
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// first waits for a message, beating every Heart.Every while none comes.
func (c *Consumer) first(ctx context.Context, r Reader) (kafka.Message, error) {
	every := c.cfg.Heart.Every()
	if every <= 0 {
		return r.FetchMessage(ctx)
	}
	for {
		// A reader's FetchMessage that returns for its context's deadline
		// takes nothing from the reader: the next call gets what comes.
		fctx, cancel := context.WithTimeout(ctx, every)
		m, err := r.FetchMessage(fctx)
		timedOut := fctx.Err() != nil && ctx.Err() == nil
		cancel()
		c.fetcherBeat()
		if err != nil && timedOut {
			continue
		}
		return m, err
	}
}

// item is one message of a batch on its way through.
type item struct {
	msg     kafka.Message
	meta    order.Meta // its trace headers, read once (startSpan or decode)
	ev      order.Event
	dead    *DeadLetter
	outcome order.Outcome
	ctx     context.Context // carries the message's span, for its log lines
	span    trace.Span
}

// prepare starts each message's span and decodes the batch, retrying while
// the registry is unreachable until it answers or ctx ends.
func (c *Consumer) prepare(ctx context.Context, batch []kafka.Message) (items []item, start time.Time, err error) {
	start = time.Now()
	at := trace.WithTimestamp(start)
	items = make([]item, len(batch))
	for i, m := range batch {
		items[i].msg = m
		items[i].meta.Traceparent, items[i].meta.CorrelationID = envelope.TraceHeaders(m.Headers)
		items[i].ctx, items[i].span = c.startSpan(ctx, m, items[i].meta, at)
	}
	if err := c.retry(ctx, DepRegistry, func() error { return c.decode(ctx, items) }); err != nil {
		return items, start, err
	}
	c.setDecodeErr(nil)
	return items, start, nil
}

// applyBatch applies a decoded batch and publishes its dead letters,
// retrying transient failures until they pass or ctx ends; then it may be
// committed. tx, if not nil, is the batch's transaction, begun ahead; with
// next, the next batch's transaction begins while this one commits, and is
// returned, unless this batch has dead letters (it is rolled back before
// they are published).
func (c *Consumer) applyBatch(ctx context.Context, items []item, tx Pending, next *prepared) (ahead Pending, err error) {
	first := true
	err = c.retry(ctx, DepDatabase, func() error {
		var t Pending
		var n *prepared
		if first { // the transaction begun ahead, and beginning the next one, are for the first attempt
			t, n, first = tx, next, false
		}
		var err error
		ahead, err = c.apply(ctx, items, t, n)
		return err
	})
	if err != nil {
		return nil, err
	}
	var dead []DeadLetter
	for _, it := range items {
		if it.dead != nil {
			dead = append(dead, *it.dead)
		}
	}
	if len(dead) > 0 {
		if ahead != nil {
			// Publishing may be retried for as long as the DLQ is down: the
			// next batch's orders are not kept locked meanwhile. A batch
			// with dead letters is rare; the next one begins in its turn.
			ahead.Rollback(context.WithoutCancel(ctx))
			ahead = nil
		}
		if err := c.retry(ctx, DepDLQ, func() error { return c.cfg.DeadLetters.Publish(ctx, dead) }); err != nil {
			return nil, err
		}
		c.stats.deadLettered.Add(int64(len(dead)))
		for _, it := range items {
			if d := it.dead; d != nil {
				c.m.dlq.WithLabelValues(d.Class).Inc()
				c.log.WarnContext(it.ctx, "message dead-lettered", "topic", d.Msg.Topic, "partition", d.Msg.Partition,
					"offset", d.Msg.Offset, "class", d.Class, "error", d.Err)
			}
		}
	}
	c.setReady(nil)
	return ahead, nil
}

// decode fills in each item's event, or its dead letter for permanent
// failures. A transient failure (registry unreachable) returns an error and
// the whole step is retried; items decoded already are kept.
func (c *Consumer) decode(ctx context.Context, items []item) error {
	for i := range items {
		it := &items[i]
		if it.dead != nil || it.ev.Order.Version != 0 {
			continue
		}
		ev, err := c.cfg.Decoder.Decode(ctx, it.msg.Value)
		if err == nil {
			// Only an event the API could have written is applied.
			err = c.cfg.Machine.CheckEvent(ev, it.msg.Key, time.Now())
		}
		if err != nil {
			if permanent, class := c.cfg.Classify(err); permanent {
				it.dead = &DeadLetter{Msg: it.msg, Class: class, Err: err}
				continue
			}
			return err
		}
		if it.meta == (order.Meta{}) {
			it.meta.Traceparent, it.meta.CorrelationID = envelope.TraceHeaders(it.msg.Headers)
		}
		ev.Meta = it.meta
		it.ev = ev
	}
	return nil
}

// apply applies the decoded events in one transaction. If the database
// rejects the batch permanently, it applies them one by one to find the
// offending events, which become dead letters; the others are applied.
// Items already settled (by a one-by-one pass a transient failure cut
// short) are not applied again, so each event's outcome is counted once.
//
// tx, if not nil, is the transaction of the events, begun with the batch
// before's commit. With next, next's transaction begins in the same round
// trip as this one's commit, and is returned if it did.
func (c *Consumer) apply(ctx context.Context, items []item, tx Pending, next *prepared) (Pending, error) {
	idx, events, msgs := pendingEvents(items)
	if len(events) == 0 {
		if tx != nil {
			tx.Rollback(ctx)
		}
		return nil, nil
	}
	var err error
	if tx == nil {
		tx, err = c.cfg.Projector.Begin(ctx, events, msgs)
	}
	var (
		outcomes []order.Outcome
		ahead    Pending
	)
	if err == nil {
		_, nextEvents, nextMsgs := pendingEvents(nextItems(next))
		outcomes, ahead, err = tx.CommitAndBegin(ctx, nextEvents, nextMsgs)
	}
	if err == nil {
		for j, i := range idx {
			c.settle(&items[i], outcomes[j])
		}
		return ahead, nil
	}
	if permanent, _ := c.cfg.Classify(err); !permanent {
		return nil, err
	}
	c.log.Warn("batch rejected by the database; applying one by one", "events", len(events), "error", err)
	for _, i := range idx {
		outcomes, err := c.cfg.Projector.Apply(ctx, []order.Event{items[i].ev}, []kafka.Message{items[i].msg})
		if err == nil {
			c.settle(&items[i], outcomes[0])
			continue
		}
		switch permanent, class := c.cfg.Classify(err); {
		case permanent:
			items[i].dead = &DeadLetter{Msg: items[i].msg, Class: class, Err: err}
		default:
			// Transient now: the retry redoes the batch, less what this
			// pass settled already (apply skips settled items).
			return nil, err
		}
	}
	return nil, nil
}

// pendingEvents returns the events of items still to apply (decoded, not
// settled), with their indexes.
func pendingEvents(items []item) (idx []int, events []order.Event, msgs []kafka.Message) {
	idx, events, msgs = make([]int, 0, len(items)), make([]order.Event, 0, len(items)), make([]kafka.Message, 0, len(items))
	for i, it := range items {
		if it.dead == nil && it.outcome == "" {
			idx = append(idx, i)
			events = append(events, it.ev)
			msgs = append(msgs, it.msg)
		}
	}
	return idx, events, msgs
}

func nextItems(p *prepared) []item {
	if p == nil {
		return nil
	}
	return p.items
}

// settle records what applying did to it. An event out of sequence (it
// does not follow the state the projection holds) becomes a dead letter,
// from which a replay applies it once what precedes it has; so does one
// whose terms changed (it claims another customer, currency, total or
// creation time than its order was placed with), which no replay applies.
func (c *Consumer) settle(it *item, outcome order.Outcome) {
	it.outcome = outcome
	o := it.ev.Order
	var err *order.EventError
	switch outcome {
	case order.OutcomeOutOfSequence:
		prev, _ := c.cfg.Machine.Follows(it.ev.Type)
		err = &order.EventError{Rule: order.RuleOutOfSequence, Detail: fmt.Sprintf(
			"a %s event at version %d follows %s at version %d, which the projection of order %s does not hold",
			it.ev.Type, o.Version, prev, o.Version-1, o.ID)}
	case order.OutcomeTermsChanged:
		err = &order.EventError{Rule: order.RuleTermsChanged, Detail: fmt.Sprintf(
			"the %s event at version %d claims customer_id %s, currency %s, total_minor %d, created_at %s: not the terms order %s was placed with",
			it.ev.Type, o.Version, text.Quote(o.CustomerID, 64), o.Currency, o.TotalMinor, o.CreatedAt.UTC().Format(time.RFC3339Nano), o.ID)}
	default:
		return
	}
	_, class := c.cfg.Classify(err)
	it.dead = &DeadLetter{Msg: it.msg, Class: class, Err: err}
}

// startSpan starts the message's consumer span, child of the traceparent
// in its headers, and returns a context carrying it and the message's
// correlation ID for its log lines.
func (c *Consumer) startSpan(ctx context.Context, m kafka.Message, meta order.Meta, start trace.SpanStartOption) (context.Context, trace.Span) {
	ctx = logging.WithCorrelationID(telemetry.Extract(ctx, meta.Traceparent, ""), meta.CorrelationID)
	ctx, span := c.cfg.Tracer.Start(ctx, c.spanName, spanKind, start)
	// The attributes are built only for a span that records: with tracing
	// off (the default) or the message not sampled, building them was a
	// sixth of the consumer loop's CPU. So no sampler sees them; the
	// standard ones (parent-based, trace ID ratio) do not look.
	if span.IsRecording() {
		key := string(m.Key)
		if len(m.Key) > 64 || !text.Valid(key) {
			key = text.Quote(key, 64) // an order ID is 36 bytes; anything else is shown, not stored whole
		}
		span.SetAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", m.Topic),
			attribute.String("messaging.consumer.group.name", c.cfg.GroupID),
			attribute.Int("messaging.destination.partition.id", m.Partition),
			attribute.Int64("messaging.kafka.offset", m.Offset),
			attribute.String("messaging.kafka.message.key", key),
		)
	}
	return ctx, span
}

var spanKind = trace.WithSpanKind(trace.SpanKindConsumer)

// finish records what became of each message of a batch — counters, spans,
// one debug line each — once the batch is committed (err nil) or abandoned.
func (c *Consumer) finish(items []item, start time.Time, err error) {
	now := time.Now()
	debug := c.log.Enabled(context.Background(), slog.LevelDebug) // the line's values cost even when it is not written
	if err == nil {
		c.m.batch.Observe(now.Sub(start).Seconds())
		c.m.size.Observe(float64(len(items)))
	}
	var counts [6]int // by outcome, counted per batch: a labelled counter costs a lookup per Inc
	for _, it := range items {
		if err != nil {
			it.span.SetStatus(codes.Error, "batch abandoned; will be redelivered")
			it.span.End()
			continue
		}
		outcome := string(it.outcome)
		switch {
		case it.dead != nil:
			outcome = "dead_lettered"
			it.span.SetStatus(codes.Error, it.dead.Class)
		case it.outcome == order.OutcomeApplied:
			c.stats.applied.Add(1)
			// A lag outside [0, MaxObservedLag] says more about a clock, a
			// replay or a rebuild than about the pipeline: not observed.
			if lag := now.Sub(it.ev.OccurredAt); lag >= 0 && lag <= MaxObservedLag {
				c.m.e2e.Observe(lag.Seconds())
			}
		case it.outcome == order.OutcomeDuplicate:
			c.stats.duplicate.Add(1)
		case it.outcome == order.OutcomeStale:
			c.stats.stale.Add(1)
		case it.outcome == order.OutcomeParked:
			c.stats.parked.Add(1)
			c.log.InfoContext(it.ctx, "event parked until its predecessor is applied", "event_id", it.ev.ID.String(),
				"event_type", string(it.ev.Type), "order_id", it.ev.Order.ID.String(), "version", it.ev.Order.Version,
				"partition", it.msg.Partition, "offset", it.msg.Offset)
		}
		counts[slices.Index(outcomes, outcome)+1]++
		if it.dead == nil {
			if c.cfg.Committed != nil && it.outcome != order.OutcomeParked {
				c.cfg.Committed(it.ev.Order.ID, it.ev.Order.Version)
			}
			if it.span.IsRecording() {
				it.span.SetAttributes(attribute.String("order.id", it.ev.Order.ID.String()),
					attribute.Int64("order.version", it.ev.Order.Version), attribute.String("order.event_outcome", outcome))
			}
			if debug {
				c.log.DebugContext(it.ctx, "event processed", "outcome", outcome, "event_id", it.ev.ID.String(),
					"event_type", string(it.ev.Type), "order_id", it.ev.Order.ID.String(), "version", it.ev.Order.Version,
					"partition", it.msg.Partition, "offset", it.msg.Offset)
			}
		}
		it.span.End()
	}
	for i, n := range counts[1:] {
		if n > 0 {
			c.m.events.WithLabelValues(outcomes[i]).Add(float64(n))
		}
	}
}

// outcomes are the values of consumer_events_total's outcome label.
var outcomes = []string{string(order.OutcomeApplied), string(order.OutcomeDuplicate), string(order.OutcomeStale), string(order.OutcomeParked), "dead_lettered"}

// retry runs step until it succeeds or ctx ends, backing off exponentially
// with jitter, and reports the dependency as not ready while it fails.
func (c *Consumer) retry(ctx context.Context, dependency string, step func() error) error {
	for attempt := 1; ; attempt++ {
		err := step()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (while stopping: %v)", dependency, err, ctx.Err())
		}
		switch dependency {
		case DepCommit:
			c.setCommitErr(fmt.Errorf("%s: %w", dependency, err))
		case DepRegistry:
			c.setDecodeErr(fmt.Errorf("%s: %w", dependency, err))
		default:
			c.setReady(fmt.Errorf("%s: %w", dependency, err))
		}
		c.stats.retries.Add(1)
		c.m.retries.WithLabelValues(dependency).Inc()
		d := backoff.Delay(c.cfg.BackoffMin, c.cfg.BackoffMax, attempt)
		c.log.Warn("transient failure; retrying", "dependency", dependency, "attempt", attempt, "backoff", d.String(), "error", err)
		// The registry is the fetcher's to retry (prepare); the others the
		// loop's and the committer's.
		beat := c.beat
		if dependency == DepRegistry {
			beat = c.fetcherBeat
		}
		beat()
		if !c.sleep(ctx, d, beat) {
			return fmt.Errorf("%s: %w", dependency, err)
		}
	}
}
