package projectionstore

import (
	"context"
	"errors"
	"fmt"
)

// The replay log of the dead-letter topic lives beside the projection: the
// projection's database is the consumer's own, and what was replayed into it
// is part of its history. A dead letter is named by its partition and offset
// in the DLQ topic; partitions[i] goes with offsets[i].

const selectReplayedSQL = `
SELECT EXISTS (SELECT FROM dlq_replays r WHERE r.dlq_topic = $1 AND r.dlq_partition = x.p AND r.dlq_offset = x.o)
FROM unnest($2::int[], $3::bigint[]) WITH ORDINALITY AS x(p, o, n)
ORDER BY n`

// Replayed reports, for each dead letter, whether it was replayed before.
func (s *Store) Replayed(ctx context.Context, dlqTopic string, partitions []int, offsets []int64) ([]bool, error) {
	if len(partitions) != len(offsets) {
		return nil, errors.New("read replay log: partitions and offsets differ in length")
	}
	rows, err := s.pool.Query(ctx, selectReplayedSQL, dlqTopic, partitions, offsets)
	if err != nil {
		return nil, fmt.Errorf("read replay log: %w", err)
	}
	defer rows.Close()
	done := make([]bool, 0, len(offsets))
	for rows.Next() {
		var d bool
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("read replay log: %w", err)
		}
		done = append(done, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read replay log: %w", err)
	}
	return done, nil
}

const insertReplayedSQL = `
INSERT INTO dlq_replays (dlq_topic, dlq_partition, dlq_offset)
SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS x(p, o)
ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO UPDATE SET replayed_at = now()`

// RecordReplayed notes the dead letters as replayed now.
func (s *Store) RecordReplayed(ctx context.Context, dlqTopic string, partitions []int, offsets []int64) error {
	if _, err := s.pool.Exec(ctx, insertReplayedSQL, dlqTopic, partitions, offsets); err != nil {
		return fmt.Errorf("write replay log: %w", err)
	}
	return nil
}
