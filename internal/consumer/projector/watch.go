package projector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/kafkalog"
)

// Where a partition is read from when the group has no offset for it, or
// the one it has is outside what the partition holds (Kafka's
// auto.offset.reset).
const (
	ResetEarliest = "earliest" // the partition's first offset: nothing the topic holds is skipped
	ResetLatest   = "latest"   // the partition's end: what it holds now is skipped
)

// The reasons the watch makes the reader anew (consumer_rejoins_total's
// reason label).
const (
	RejoinTopicAppeared   = "topic_appeared"
	RejoinPartitionsAdded = "partitions_added"
	RejoinOffsetReset     = "offset_reset"
)

var rejoinReasons = []string{RejoinTopicAppeared, RejoinPartitionsAdded, RejoinOffsetReset}

// watch checks the topic beside the reader, because kafka-go's Reader does
// not tell, or races doing so:
//   - a group that joined while its topic did not exist holds no partitions
//     until it joins again;
//   - a group does not read partitions added to its topic until it joins
//     again (kafka-go's WatchPartitionChanges would, but races with the
//     reader it belongs to);
//   - a committed offset past a partition's end (the topic deleted and
//     created again) is retried for ever, and a reader that has read past
//     the end of a partition that was created again waits for ever.
//
// On each, it resets what must be reset and makes the group join again: the
// reader is closed and made anew (Run). One watch serves a Consumer's whole
// Run; each reader gets its own run.
type watch struct {
	c      *Consumer
	client *kafka.Client
	now    chan struct{} // check at once: a fetch found an offset out of range
	last   error         // the last check's failure, to log only changes
	absent bool          // the topic did not exist since the reader was made

	reported map[int]int64 // per partition, the offset before its start last reported

	mu   sync.Mutex
	read map[int]int64 // per partition, the offset after the last message this reader fetched
}

func (c *Consumer) newWatch() *watch {
	w := &watch{c: c, client: c.cfg.Security.Client(c.cfg.Brokers, c.cfg.Security.Timeout()), now: make(chan struct{}, 1),
		reported: map[int]int64{}}
	c.watch = w
	return w
}

// fetched notes how far the reader has read.
func (w *watch) fetched(batch []kafka.Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range batch {
		if m.Offset+1 > w.read[m.Partition] {
			w.read[m.Partition] = m.Offset + 1
		}
	}
}

// outOfRange asks for a check at once.
func (w *watch) outOfRange() {
	select {
	case w.now <- struct{}{}:
	default:
	}
}

// partitions returns how many partitions the topic has now; 0 if that
// cannot be read.
func (w *watch) partitions(ctx context.Context) int {
	ids, err := kafkalog.Partitions(ctx, w.client, w.c.cfg.Topic)
	if err != nil {
		return 0
	}
	return len(ids)
}

// run checks the topic for reader r until ctx ends, or until the reader
// must be made anew: then it calls restart and returns.
func (w *watch) run(ctx context.Context, r *kafka.Reader, restart context.CancelFunc, partitions int) {
	w.mu.Lock()
	w.read = map[int]int64{}
	w.mu.Unlock()
	w.absent = false
	// partitions is what the topic had before this reader was made; 0: not
	// known, and then the first check's count is taken.
	for {
		reason := w.check(ctx, r, &partitions)
		if ctx.Err() != nil {
			return
		}
		if reason != "" {
			w.c.m.rejoins.WithLabelValues(reason).Inc()
			w.c.log.Info("joining the group again", "topic", w.c.cfg.Topic, "group", w.c.cfg.GroupID, "reason", reason)
			restart()
			return
		}
		wait := w.c.cfg.TopicCheckInterval
		if w.last != nil {
			wait = min(wait, time.Second) // notice the topic soon once it is created
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.now:
		case <-t.C:
		}
		t.Stop()
	}
}

// check reads the topic's partitions and offsets and the group's committed
// offsets, reports the consumer not ready while the topic does not exist or
// cannot be read, resets what is out of range, and returns why the reader
// must be made anew ("" if it need not).
func (w *watch) check(ctx context.Context, r *kafka.Reader, partitions *int) string {
	cfg := w.c.cfg
	bounds, err := kafkalog.Offsets(ctx, w.client, cfg.Topic)
	if err == nil {
		err = w.probe(ctx, bounds)
	}
	if ctx.Err() != nil {
		return ""
	}
	if err != nil && !errors.Is(err, errFetch) {
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			w.absent = true
			err = fmt.Errorf("topic %q does not exist (check ORDER_EVENTS_TOPIC): %w", cfg.Topic, err)
		} else {
			err = fmt.Errorf("cannot check topic %q: %w", cfg.Topic, err)
		}
	}
	switch {
	case err != nil && (w.last == nil || err.Error() != w.last.Error()):
		w.c.log.Warn("not consuming", "topic", cfg.Topic, "group", cfg.GroupID, "error", err)
	case err == nil && w.last != nil:
		w.c.log.Info("topic readable again; consuming", "topic", cfg.Topic)
	}
	w.last = err
	w.c.setTopicErr(err)
	if err != nil {
		return ""
	}
	switch {
	case w.absent:
		return RejoinTopicAppeared
	case *partitions == 0:
		*partitions = len(bounds)
	case len(bounds) > *partitions:
		w.c.log.Warn("partitions added to the topic; joining the group again to read them",
			"topic", cfg.Topic, "group", cfg.GroupID, "partitions_before", *partitions, "partitions", len(bounds))
		return RejoinPartitionsAdded
	}
	if w.resetOutOfRange(ctx, r, bounds) {
		return RejoinOffsetReset
	}
	return ""
}

// errFetch marks a probe's failure: the brokers answer for the topic, but
// not a fetch from it.
var errFetch = errors.New(DepFetch)

// probe fetches from the end of one partition led by each broker, which
// answers at once with nothing: kafka-go's reader retries a fetch that
// fails (a broker that takes it and never answers) on its own, saying so
// only in its log, and a consumer that can no longer fetch would otherwise
// look idle and ready. Each fetch is bounded by the client's timeout
// (KAFKA_TIMEOUT). It stops at the first failure.
func (w *watch) probe(ctx context.Context, bounds []kafkalog.Bounds) error {
	topic := w.c.cfg.Topic
	md, err := w.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}}) // kafka-go's cache answers it
	if err != nil {
		return fmt.Errorf("metadata of %s: %w", topic, err)
	}
	next := make(map[int]int64, len(bounds))
	for _, b := range bounds {
		next[b.Partition] = b.Next
	}
	probed := map[int]bool{} // leaders' broker IDs
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			at, ok := next[p.ID]
			if t.Name != topic || !ok || probed[p.Leader.ID] {
				continue
			}
			probed[p.Leader.ID] = true
			resp, err := w.client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: p.ID, Offset: at,
				MinBytes: 0, MaxBytes: 1, MaxWait: time.Millisecond})
			if err == nil && resp.Error != nil && !errors.Is(resp.Error, kafka.OffsetOutOfRange) {
				err = resp.Error // a partition that moved meanwhile is the next check's business
			}
			if kafkaconn.TimedOut(err) {
				err = fmt.Errorf("no answer within %s: %w", w.client.Timeout, err)
			}
			if err != nil {
				return fmt.Errorf("%w: brokers %s: partition %d of %s: %w", errFetch, strings.Join(w.c.cfg.Brokers, ","), p.ID, topic, err)
			}
		}
	}
	return nil
}

// resetOutOfRange resets, by OffsetReset, each partition whose committed
// offset lies outside what the partition holds, and reports whether the
// reader must be made anew: a partition was reset, or the reader has read
// past what a partition now holds (it was deleted and created again).
func (w *watch) resetOutOfRange(ctx context.Context, r *kafka.Reader, bounds []kafkalog.Bounds) bool {
	cfg := w.c.cfg
	ids := make([]int, len(bounds))
	for i, b := range bounds {
		ids[i] = b.Partition
	}
	resp, err := w.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: cfg.GroupID, Topics: map[string][]int{cfg.Topic: ids}})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		w.c.log.Debug("committed offsets not available", "topic", cfg.Topic, "group", cfg.GroupID, "error", err)
		return false
	}
	committed := map[int]int64{}
	for _, po := range resp.Topics[cfg.Topic] {
		if po.Error == nil {
			committed[po.Partition] = po.CommittedOffset
		}
	}
	w.mu.Lock()
	read := make(map[int]int64, len(w.read))
	for p, o := range w.read {
		read[p] = o
	}
	w.mu.Unlock()
	// The bounds were read before the offsets above: records written and
	// consumed in between would make an offset look past its partition's
	// end. Ends only grow, so the ends read now, after, are the ones to
	// compare with.
	if fresh, err := kafkalog.Offsets(ctx, w.client, cfg.Topic); err == nil {
		now := make(map[int]kafkalog.Bounds, len(fresh))
		for _, b := range fresh {
			now[b.Partition] = b
		}
		for i, b := range bounds {
			if f, ok := now[b.Partition]; ok {
				bounds[i] = f
			}
		}
	}
	rejoin := false
	for _, b := range bounds {
		had, ok := committed[b.Partition]
		target := b.First
		if cfg.OffsetReset == ResetLatest {
			target = b.Next
		}
		switch {
		case ok && had >= 0 && (had > b.Next || (had < b.First && cfg.OffsetReset == ResetLatest)):
			// Past the end: the reader would wait for ever. Before the
			// start with latest: kafka-go would take the first offset.
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := r.CommitMessages(cctx, kafka.Message{Topic: cfg.Topic, Partition: b.Partition, Offset: target - 1})
			cancel()
			if err != nil {
				w.c.log.Warn("cannot reset an offset out of range; trying again", "topic", cfg.Topic, "partition", b.Partition, "error", err)
				continue
			}
			w.reset(b, had, target)
			rejoin = true
		case ok && had >= 0 && had < b.First:
			// kafka-go's reader takes the first offset itself: say so,
			// once.
			if w.reported[b.Partition] != had {
				w.reported[b.Partition] = had
				w.reset(b, had, b.First)
			}
		case read[b.Partition] > b.Next:
			// Read past what the partition holds now: it was created
			// again, and nothing was committed on it since (or the
			// offsets went with the topic). Read it again from the start
			// of what the group has, or from OffsetReset's end.
			w.reset(b, read[b.Partition], max(had, target))
			rejoin = true
		}
	}
	return rejoin
}

// reset logs and counts one partition's offset reset.
func (w *watch) reset(b kafkalog.Bounds, had, took int64) {
	cfg := w.c.cfg
	w.c.m.resets.Inc()
	w.c.log.Warn("offset out of range; reset by CONSUMER_OFFSET_RESET", "topic", cfg.Topic, "partition", b.Partition,
		"group", cfg.GroupID, "offset", had, "reset_to", took, "policy", cfg.OffsetReset,
		"partition_first", b.First, "partition_end", b.Next)
}
