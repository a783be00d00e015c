package projector

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/kafkalog"
)

// RebuildTarget is a projection being built beside the live one
// (projectionstore.Rebuild): events are applied to it, and Commit moves it in
// place of the live one, recording which offset of each partition it was
// built from. Like Apply, Loss and Commit are retried when they fail, so
// Commit must tell a move that went through (its reply lost) and succeed.
type RebuildTarget interface {
	Projector
	// Loss says what moving the rebuilt projection in would lose: orders
	// the live one holds and the rebuilt one does not, or holds at an older
	// version.
	Loss(ctx context.Context) (missing, behind int64, examples []string, err error)
	Commit(ctx context.Context, topic string, origin map[int]int64) error
}

// RebuildConfig configures Rebuild.
type RebuildConfig struct {
	// Config is the live consumer's: a rebuild reads, decodes, checks,
	// classifies, retries and applies exactly as it does, and it is
	// validated as the live consumer's reading is, so BatchLinger must be
	// positive although a rebuild, reading offset ranges to their end, never
	// waits for more. Its GroupID, Projector and DeadLetters are not used:
	// there is no group, the target comes from Begin, and what the live
	// consumer dead-letters is skipped and counted.
	Config
	// Origin is, by partition, the first offset the live projection was
	// built from; a partition absent was built from offset 0.
	Origin map[int]int64
	// AllowPartial rebuilds even when the topic no longer starts where the
	// projection was built from: the orders whose events are gone are then
	// not in the rebuilt projection.
	AllowPartial bool
	// Begin starts the rebuild target; it is called only once the topic has
	// been checked, and the caller ends the target whatever Rebuild returns.
	Begin func(context.Context) (RebuildTarget, error)
}

// RebuildResult counts what a rebuild read and did. Skipped counts messages
// that can never be applied: undecodable, invalid or out of sequence (the
// live consumer dead-lettered them). Partial lists the partitions that no
// longer started where the projection was built from (with AllowPartial).
type RebuildResult struct {
	Read, Applied, Duplicate, Stale, Skipped int
	// Parked counts events that came before their predecessor: applied
	// when it came later in the topic, or left parked in the new tables.
	Parked  int
	Partial []kafkalog.Bounds
}

// PartialTopicError is a refusal to rebuild from a topic that lost events
// the projection was built from.
type PartialTopicError struct {
	Topic  string
	Lost   []kafkalog.Bounds // the partitions whose start moved, where they start now
	Origin map[int]int64
}

func (e *PartialTopicError) Error() string {
	parts := make([]string, len(e.Lost))
	for i, b := range e.Lost {
		parts[i] = fmt.Sprintf("partition %d starts at offset %d (the projection was built from %d)", b.Partition, b.First, e.Origin[b.Partition])
	}
	return fmt.Sprintf("%s no longer holds every event the projection was built from (retention, or a new cluster): %s; "+
		"a rebuild would drop the orders whose events are gone", e.Topic, strings.Join(parts, ", "))
}

// LossError is a refusal to move in a rebuilt projection that lacks orders
// the live one holds, or holds them at an older version: the topic does not
// hold all their events (a new cluster, a topic recreated, events deleted).
type LossError struct {
	Topic           string
	Missing, Behind int64
	Examples        []string
}

func (e *LossError) Error() string {
	return fmt.Sprintf("the projection rebuilt from %s lacks %d orders the live one holds and has %d at an older version (e.g. %s): "+
		"the topic does not hold all their events (a new cluster, the topic recreated, events deleted)",
		e.Topic, e.Missing, e.Behind, strings.Join(e.Examples, ", "))
}

// Rebuild applies the whole topic, from the start of every partition to its
// end when Rebuild reaches it, with no consumer group, to a new projection
// (cfg.Begin), and moves it in place of the live one only once every message
// was read. It first checks that every partition still starts at the offset
// the live projection was built from (cfg.Origin) and refuses with a
// *PartialTopicError otherwise, touching nothing; and before moving the new
// projection in, that it holds every order the live one does at its version
// or later, refusing with a *LossError otherwise (offsets alone cannot tell
// a new cluster, whose offsets start at 0 again). cfg.AllowPartial skips
// both checks.
// Messages are decoded, checked and applied exactly as the live consumer
// does; those that can never be applied are skipped and counted (the live
// consumer dead-lettered them). Every step that reaches the broker or the
// database is retried with the consumer's backoff until it succeeds or ctx
// ends, and each event is counted once however often its batch is retried.
//
// Stop the consumer group while rebuilding, or what it applies meanwhile is
// lost with the old projection. Resuming it afterwards is safe: it restarts
// from its committed offsets, and whatever it re-applies is recognised by
// event ID and version.
func Rebuild(ctx context.Context, cfg RebuildConfig) (RebuildResult, error) {
	cfg.setDefaults()
	if cfg.Begin == nil {
		return RebuildResult{}, errors.New("rebuild: Begin is required")
	}
	if err := cfg.validateRead(); err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild: %w", err)
	}
	c := newConsumer(cfg.Config, "rebuild")
	topic := c.cfg.Topic

	client := cfg.Security.Client(cfg.Brokers, cfg.Security.Timeout())
	var bounds []kafkalog.Bounds
	if err := c.retry(ctx, DepKafka, func() (err error) { bounds, err = kafkalog.Offsets(ctx, client, topic); return err }); err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild: %w", err)
	}
	var res RebuildResult
	for _, b := range bounds {
		if b.First > cfg.Origin[b.Partition] {
			res.Partial = append(res.Partial, b)
		}
	}
	if len(res.Partial) > 0 && !cfg.AllowPartial {
		return RebuildResult{}, &PartialTopicError{Topic: topic, Lost: res.Partial, Origin: cfg.Origin}
	}
	target, err := cfg.Begin(ctx)
	if err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild: %w", err)
	}
	c.cfg.Projector = target

	origin := map[int]int64{}
	for _, b := range bounds {
		origin[b.Partition] = b.First
		var batch []item
		flush := func() error {
			err := c.rebuildBatch(ctx, batch, &res)
			batch = batch[:0]
			return err
		}
		err := kafkalog.Range(ctx, client, topic, b.Partition, b.First, b.Next, func(m kafka.Message) error {
			res.Read++
			batch = append(batch, item{msg: m})
			if len(batch) >= c.cfg.BatchSize {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return res, fmt.Errorf("rebuild: partition %d: %w", b.Partition, err)
		}
	}
	// Retention may have deleted events while they were being read past.
	var after []kafkalog.Bounds
	if err := c.retry(ctx, DepKafka, func() (err error) { after, err = kafkalog.Offsets(ctx, client, topic); return err }); err != nil {
		return res, fmt.Errorf("rebuild: %w", err)
	}
	for _, a := range after {
		if first, ok := origin[a.Partition]; ok && a.First > first {
			return res, fmt.Errorf("rebuild: partition %d lost offsets %d to %d while being read (retention): not moved in; run it again",
				a.Partition, first, a.First-1)
		}
	}
	if !cfg.AllowPartial {
		var (
			missing, behind int64
			examples        []string
		)
		if err := c.retry(ctx, DepDatabase, func() (err error) { missing, behind, examples, err = target.Loss(ctx); return err }); err != nil {
			return res, fmt.Errorf("rebuild: %w", err)
		}
		if missing > 0 || behind > 0 {
			return res, &LossError{Topic: topic, Missing: missing, Behind: behind, Examples: examples}
		}
	}
	if err := c.retry(ctx, DepDatabase, func() error { return target.Commit(ctx, topic, origin) }); err != nil {
		return res, fmt.Errorf("rebuild: %w", err)
	}
	c.log.Info("projection rebuilt", "read", res.Read, "applied", res.Applied, "duplicate", res.Duplicate,
		"stale", res.Stale, "parked", res.Parked, "skipped", res.Skipped, "partial_partitions", len(res.Partial))
	return res, nil
}

// rebuildBatch decodes, checks and applies batch as the live consumer does
// (retrying what is transient), and counts the outcomes once they stand.
func (c *Consumer) rebuildBatch(ctx context.Context, batch []item, res *RebuildResult) error {
	if len(batch) == 0 {
		return nil
	}
	if err := c.retry(ctx, DepRegistry, func() error { return c.decode(ctx, batch) }); err != nil {
		return err
	}
	if err := c.retry(ctx, DepDatabase, func() error { _, err := c.apply(ctx, batch, nil, nil); return err }); err != nil {
		return err
	}
	for _, it := range batch {
		switch {
		case it.dead != nil:
			res.Skipped++
		case it.outcome == order.OutcomeApplied:
			res.Applied++
		case it.outcome == order.OutcomeDuplicate:
			res.Duplicate++
		case it.outcome == order.OutcomeStale:
			res.Stale++
		case it.outcome == order.OutcomeParked:
			res.Parked++
		}
	}
	return nil
}
