package orderconsumer

import (
	"context"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/migrations"
)

// ListDLQ returns the dead letters f selects; see deadletter.List.
func ListDLQ(ctx context.Context, cfg Config, f deadletter.Filter) ([]deadletter.Entry, error) {
	sec, err := cfg.Kafka.Security()
	if err != nil {
		return nil, err
	}
	return deadletter.List(ctx, cfg.KafkaBrokers, sec, cfg.DLQTopic, f)
}

// ReplayDLQ republishes the dead letters f selects, skipping those replayed
// before unless force; see deadletter.Replay. The replay log is kept in the
// projection's database, which it migrates if configured to.
func ReplayDLQ(ctx context.Context, cfg Config, f deadletter.Filter, force bool) (deadletter.ReplayResult, error) {
	sec, err := cfg.Kafka.Security()
	if err != nil {
		return deadletter.ReplayResult{}, err
	}
	pool, err := pgdb.OpenMigrated(ctx, cfg.DatabaseURL, 2, cfg.Migrate, migrations.Projection())
	if err != nil {
		return deadletter.ReplayResult{}, err
	}
	defer pool.Close()
	return deadletter.Replay(ctx, cfg.KafkaBrokers, sec, cfg.DLQTopic, f,
		deadletter.ReplayOptions{Log: replayLog{projectionstore.New(pool, order.Standard, nil)}, Force: force})
}

// replayLog adapts the projection's replay log to deadletter.ReplayLog.
type replayLog struct{ store *projectionstore.Store }

func (l replayLog) Replayed(ctx context.Context, topic string, positions []deadletter.Position) (map[deadletter.Position]bool, error) {
	parts, offs := split(positions)
	done, err := l.store.Replayed(ctx, topic, parts, offs)
	if err != nil {
		return nil, err
	}
	out := make(map[deadletter.Position]bool, len(done))
	for i, d := range done {
		if d {
			out[positions[i]] = true
		}
	}
	return out, nil
}

func (l replayLog) RecordReplayed(ctx context.Context, topic string, positions []deadletter.Position) error {
	parts, offs := split(positions)
	return l.store.RecordReplayed(ctx, topic, parts, offs)
}

func split(positions []deadletter.Position) ([]int, []int64) {
	parts, offs := make([]int, len(positions)), make([]int64, len(positions))
	for i, p := range positions {
		parts[i], offs[i] = p.Partition, p.Offset
	}
	return parts, offs
}
