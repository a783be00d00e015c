package orderconsumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/consumer/projector"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/health"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/migrations"
)

// ClassParkedTooLong is the DLQ class of an event parked longer than
// CONSUMER_PARKED_MAX_AGE: its predecessor never came (it sits in the DLQ,
// or was never published).
const ClassParkedTooLong = "projection.ParkedTooLong"

// leavingClass is the DLQ class of a parked event that leaves for why.
func leavingClass(why string) string {
	switch why {
	case string(order.OutcomeOutOfSequence):
		return (&order.EventError{Rule: order.RuleOutOfSequence}).Class()
	case string(order.OutcomeTermsChanged):
		return (&order.EventError{Rule: order.RuleTermsChanged}).Class()
	}
	return ClassParkedTooLong
}

// parkedSweeper dead-letters the parked events that leave: those a batch
// found can never apply, and those parked longer than maxAge, which it
// marks itself. It sweeps every interval, and soon after poke; after each
// sweep it looks at what still waits, for /readyz's parked_events check
// (condition).
type parkedSweeper struct {
	store    *projectionstore.Store
	dlq      *deadletter.Publisher
	metrics  *projector.Metrics
	log      *slog.Logger
	maxAge   time.Duration
	interval time.Duration
	timeout  time.Duration // each database call's bound (DATABASE_TIMEOUT)
	poke     chan struct{}
	heart    *health.Heart // beats each sweep, and while waiting for the next
	// condition is degraded while an event has waited long: see look.
	condition *health.Condition
}

func newParkedSweeper(store *projectionstore.Store, dlq *deadletter.Publisher, m *projector.Metrics, log *slog.Logger, maxAge, timeout time.Duration) *parkedSweeper {
	s := &parkedSweeper{store: store, dlq: dlq, metrics: m, log: log, maxAge: maxAge, timeout: timeout,
		interval: max(min(10*time.Second, maxAge/4), 10*time.Millisecond), poke: make(chan struct{}, 1),
		condition: health.NewCondition("parked_events", log)}
	store.OnLeaving = func() {
		select {
		case s.poke <- struct{}{}:
		default:
		}
	}
	return s
}

// Run sweeps until ctx ends; a sweep that fails is logged and done again
// the next time.
func (s *parkedSweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	pulse, stop := s.heart.Pulse()
	defer stop()
	for {
		s.heart.Beat()
		select {
		case <-ctx.Done():
			return nil
		case <-pulse:
			continue
		case <-t.C:
		case <-s.poke:
		}
		if err := s.sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("parked events: cannot dead-letter those leaving; trying again", "error", err)
		}
		s.look(ctx)
	}
}

// sweep marks the events parked too long, then dead-letters every event
// leaving and deletes it once the DLQ has it. A crash in between publishes
// it again the next time: the DLQ may hold it twice, never zero times.
func (s *parkedSweeper) sweep(ctx context.Context) error {
	// Each call is bounded: one stuck on a server that does not answer
	// would stop the sweeps for good.
	bound := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, s.timeout) }
	bctx, cancel := bound()
	n, err := s.store.ExpireParked(bctx, s.maxAge)
	cancel()
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Warn("events parked longer than CONSUMER_PARKED_MAX_AGE leave for the DLQ", "events", n, "max_age", s.maxAge.String())
	}
	for {
		s.heart.Beat()
		bctx, cancel := bound()
		leaving, err := s.store.Leaving(bctx, 100)
		cancel()
		if err != nil || len(leaving) == 0 {
			return err
		}
		dls := make([]deadletter.DeadLetter, len(leaving))
		ids := make([]uuid.UUID, len(leaving))
		for i, p := range leaving {
			dls[i] = deadletter.DeadLetter{Msg: message(p.Origin), Class: leavingClass(p.Leaving), Err: errors.New(p.Reason)}
			ids[i] = p.EventID
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = s.dlq.Publish(pctx, dls)
		cancel()
		if err != nil {
			return err
		}
		bctx, cancel = bound()
		err = s.store.Left(bctx, ids)
		cancel()
		if err != nil {
			return err
		}
		for i, p := range leaving {
			s.metrics.DeadLettered(dls[i].Class)
			s.log.Warn("parked event dead-lettered", "class", dls[i].Class, "event_id", p.EventID.String(), "order_id", p.OrderID.String(),
				"version", p.Version, "event_type", string(p.Type), "partition", p.Origin.Partition, "offset", p.Origin.Offset, "reason", p.Reason)
		}
	}
}

// message is the Kafka message a parked event came in.
func message(o projectionstore.Origin) kafka.Message {
	m := kafka.Message{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset, Key: o.Key, Value: o.Value, Time: o.Time}
	for _, h := range o.Headers {
		m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	return m
}

// look sets /readyz's view of the parked events: degraded, never failing,
// while one has waited longer than a minute, or half maxAge if less (a
// predecessor on another partition comes within seconds; one that does not
// sits in the DLQ, or its partition is stalled). When the events cannot be
// read (the database down, which /readyz's database check reports), it
// stays as it was.
func (s *parkedSweeper) look(ctx context.Context) {
	parked, err := s.store.Parked(ctx, uuid.Nil, 100)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Debug("parked events: cannot read them", "error", err)
		}
		return
	}
	for _, p := range parked { // oldest first
		if p.Leaving != "" {
			continue
		}
		if waited := time.Since(p.ParkedAt); waited > min(time.Minute, s.maxAge/2) {
			s.condition.Set(fmt.Errorf("an event has waited %s for its predecessor (order %s, version %d; dead-lettered after CONSUMER_PARKED_MAX_AGE=%s): see `order-consumer parked list`",
				waited.Round(time.Second), p.OrderID, p.Version-1, s.maxAge))
			return
		}
		break
	}
	s.condition.Set(nil)
}

// ListParked returns the events parked in the consumer's database, those
// of orderID only if it is not uuid.Nil, oldest first.
func ListParked(ctx context.Context, cfg Config, orderID uuid.UUID) ([]projectionstore.ParkedEvent, error) {
	pool, err := pgdb.OpenMigrated(ctx, cfg.DatabaseURL, 2, cfg.Migrate, migrations.Projection())
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	return projectionstore.New(pool, order.Standard, nil).Parked(ctx, orderID, 10000)
}
