package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/kafkalog"
	"github.com/ordersonkafka/orders/internal/order"
)

// Resetter empties a projection (projection.Store).
type Resetter interface {
	Projector
	Reset(ctx context.Context) error
}

// RebuildConfig configures Rebuild; the fields mean what they do in Config.
type RebuildConfig struct {
	Brokers         []string
	Topic           string
	BatchSize       int
	Decoder         Decoder
	Projection      Resetter
	DecodePermanent func(error) bool
	ApplyPermanent  func(error) bool
	Logger          *slog.Logger
}

// RebuildResult counts what a rebuild read and did.
type RebuildResult struct {
	Read, Applied, Duplicate, Stale, Skipped int
}

// Rebuild empties the projection and applies the topic again from the start
// of every partition to its end when Rebuild reaches it, with no consumer
// group. Messages that can never be applied are skipped and counted (the
// live consumer already dead-lettered them); transient failures are retried.
//
// Stop the consumer group while rebuilding, or it applies events into the
// projection being rebuilt. Resuming it afterwards is safe: it restarts from
// its committed offsets, and whatever it re-applies is recognised by event ID
// and version.
func Rebuild(ctx context.Context, cfg RebuildConfig) (RebuildResult, error) {
	if len(cfg.Brokers) == 0 || cfg.Decoder == nil || cfg.Projection == nil || cfg.DecodePermanent == nil || cfg.ApplyPermanent == nil {
		return RebuildResult{}, errors.New("rebuild: Brokers, Decoder, Projection, DecodePermanent and ApplyPermanent are required")
	}
	if cfg.Topic == "" {
		cfg.Topic = "order-events"
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Consumer{cfg: Config{BackoffMin: 100e6, BackoffMax: 5e9}, log: cfg.Logger.With("component", "rebuild")}
	if err := c.retry(ctx, "database", func() error { return cfg.Projection.Reset(ctx) }); err != nil {
		return RebuildResult{}, err
	}
	var (
		res    RebuildResult
		events []order.Event
	)
	flush := func() error {
		if len(events) == 0 {
			return nil
		}
		var outcomes []order.Outcome
		err := c.retry(ctx, "database", func() error {
			var err error
			outcomes, err = cfg.Projection.Apply(ctx, events)
			if err != nil && cfg.ApplyPermanent(err) {
				// Find and skip the events the database refuses.
				outcomes = outcomes[:0]
				for _, ev := range events {
					o, err := cfg.Projection.Apply(ctx, []order.Event{ev})
					if err != nil && cfg.ApplyPermanent(err) {
						res.Skipped++
						continue
					}
					if err != nil {
						return err
					}
					outcomes = append(outcomes, o...)
				}
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		for _, o := range outcomes {
			switch o {
			case order.OutcomeApplied:
				res.Applied++
			case order.OutcomeDuplicate:
				res.Duplicate++
			case order.OutcomeStale:
				res.Stale++
			case order.OutcomeOutOfSequence:
				res.Skipped++
			}
		}
		events = events[:0]
		return nil
	}
	lastPartition := -1
	err := kafkalog.Each(ctx, cfg.Brokers[0], cfg.Topic, func(m kafka.Message) error {
		if m.Partition != lastPartition {
			if err := flush(); err != nil {
				return err
			}
			lastPartition = m.Partition
		}
		res.Read++
		var ev order.Event
		err := c.retry(ctx, "schema registry", func() error {
			var err error
			ev, err = cfg.Decoder.Decode(ctx, m.Value)
			if err == nil {
				err = order.CheckEvent(ev, m.Key, time.Now())
			}
			if err != nil && cfg.DecodePermanent(err) {
				ev = order.Event{}
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		if ev.Order.Version == 0 { // permanently undecodable: already in the DLQ
			res.Skipped++
			return nil
		}
		events = append(events, ev)
		if len(events) >= cfg.BatchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return res, fmt.Errorf("rebuild: %w", err)
	}
	cfg.Logger.Info("projection rebuilt", "read", res.Read, "applied", res.Applied, "duplicate", res.Duplicate, "stale", res.Stale, "skipped", res.Skipped)
	return res, nil
}
