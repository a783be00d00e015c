package outbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/event/envelope"
)

const (
	// defaultMaxMessageBytes is Kafka's default max.message.bytes, which
	// sizes batches until the topic's is known.
	defaultMaxMessageBytes = 1048588
	// recordBatchSlack is kept free below the topic's limit for the
	// record batch's header (61 bytes); the read's estimate of each row is
	// already above its exact encoding, and kafka-go's estimate below it.
	recordBatchSlack = 128
	// unknownLimitBatchBytes is the writer's BatchBytes while the topic's
	// limit is unknown: kafka-go refuses nothing itself, the broker judges.
	unknownLimitBatchBytes = 1 << 30
)

// refusedForItself reports whether err is Kafka refusing messages for what
// they are: too large for the topic (the broker's verdict on a partition's
// record batch, or kafka-go's on one message, MessageTooLargeError, before
// sending anything), or an invalid or corrupt record. Writing such a
// message again as it is cannot succeed, while other messages can.
// Anything else — authorization, an unknown topic or partition, no leader,
// a timeout, a broker down — belongs to the topic or the broker: an outage,
// which passes. InvalidTimestamp is not a refusal of the message either:
// kafka-go stamps the time, so it is this relay's clock that is refused,
// for every message alike.
func refusedForItself(err error) bool {
	for _, e := range []kafka.Error{kafka.MessageSizeTooLarge, kafka.RecordListTooLarge,
		kafka.InvalidMessage, kafka.InvalidMessageSize, kafka.InvalidRecord} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// refusals returns the indexes of f's rows that err says failed, each
// one's error, and whether every one of them was refused for itself.
func (f *flight) refusals(err error) (failed []int, errs []error, forItself bool) {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == len(f.rows) {
		forItself = true
		for i, e := range werrs {
			if e != nil {
				failed, errs = append(failed, i), append(errs, e)
				forItself = forItself && refusedForItself(e)
			}
		}
		return failed, errs, forItself && len(failed) > 0
	}
	// The write failed as a whole: kafka-go refused a message before
	// sending anything, or could not send at all.
	for i := range f.rows {
		failed, errs = append(failed, i), append(errs, err)
	}
	return failed, errs, refusedForItself(err)
}

// failedWrite deals with a write f that failed (err), in full or in part,
// before its rows are read again. A refusal for what the messages are says
// only that some row of a refused partition's batch (of the whole write,
// when kafka-go refused) is guilty: the rows up to the last refused one
// are then read and written one at a time (*isolate), and the topic's
// limit is read again, in case it changed. A row refused when written
// alone that way is set aside, with its order's later rows. Any other
// failure is an outage, retried after a backoff (*failed counts the
// attempts); it sets nothing aside. It returns an error if ctx ended or
// the lock connection is lost.
func (r *Relay) failedWrite(ctx context.Context, conn *pgx.Conn, f *flight, err error, isolate *int64, failed *int) error {
	idx, errs, forItself := f.refusals(err)
	if !forItself {
		*failed++
		return r.backOff(ctx, conn, stepWrite, err, *failed)
	}
	r.metrics.failures.WithLabelValues(stepWrite).Inc()
	if len(f.rows) == 1 && f.rows[0].id <= *isolate {
		id, reason := f.rows[0].id, r.reason(f.msgs[0], errs[0])
		return r.retry(ctx, conn, stepSetAside, r.setAside(ctx, conn, id, reason),
			func() error { return r.setAside(ctx, conn, id, reason) })
	}
	last := f.rows[idx[len(idx)-1]].id
	r.log.Warn("Kafka refused messages for what they are; writing them one at a time to find which",
		"rows", len(idx), "up_to_outbox_id", last, "error", errs[0])
	*isolate = max(*isolate, last)
	r.learnLimit(ctx)
	return nil
}

// reason is what is recorded of Kafka's refusal of m.
func (r *Relay) reason(m kafka.Message, err error) string {
	size := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		size += len(h.Key) + len(h.Value)
	}
	limit := "unknown"
	if r.limit > 0 && m.Topic == r.cfg.Topic {
		limit = strconv.Itoa(r.limit)
	}
	return fmt.Sprintf("Kafka refused it: %v (key, value and headers: %d bytes; the topic's max.message.bytes: %s)", err, size, limit)
}

// setAsideRow is a row moved to outbox_set_aside, for the log.
type setAsideRow struct {
	id                        int64
	orderID                   []byte // the message key
	eventID, eventType, cause string
}

// setAside moves outbox row id and its order's later rows to
// outbox_set_aside (setAsideSQL) and logs each.
func (r *Relay) setAside(ctx context.Context, conn *pgx.Conn, id int64, reason string) error {
	ctx, cancel := r.calls.Bound(ctx)
	defer cancel()
	rs, err := conn.Query(ctx, setAsideSQL, id, reason)
	if err != nil {
		return r.calls.Explain(err)
	}
	set, err := pgx.CollectRows(rs, func(row pgx.CollectableRow) (setAsideRow, error) {
		var s setAsideRow
		return s, row.Scan(&s.id, &s.orderID, &s.eventID, &s.eventType, &s.cause)
	})
	if err != nil {
		return r.calls.Explain(err)
	}
	r.progressed() // the refused rows no longer hold the outbox up
	r.setAsideDone(set)
	return nil
}

// setAsideDone logs each row set aside: one line each, naming the order,
// the event and why.
func (r *Relay) setAsideDone(set []setAsideRow) {
	for _, s := range set {
		r.log.Warn("outbox row set aside: it is not published until `order-api outbox retry`; the order's later events wait with it",
			"order_id", string(s.orderID), "event_id", s.eventID, "event_type", s.eventType, "outbox_id", s.id, "reason", s.cause)
	}
}

// follower is the setAsideRow of a row the batch read set aside, whose
// order's row follows set aside.
func follower(id int64, key, headers []byte, follows int64) setAsideRow {
	s := setAsideRow{id: id, orderID: key,
		cause: fmt.Sprintf("an earlier event of its order is set aside (outbox row %d)", follows)}
	hs, _ := KafkaHeaders(headers) // for the log only: a malformed column names no event
	for _, h := range hs {
		switch h.Key {
		case envelope.HeaderEventID:
			s.eventID = string(h.Value)
		case envelope.HeaderEventType:
			s.eventType = string(h.Value)
		}
	}
	return s
}

// learnLimit reads the topic's max.message.bytes. When the broker does not
// say, the value last read is kept (Kafka's default until one is).
func (r *Relay) learnLimit(ctx context.Context) {
	r.limitRead = time.Now()
	lctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer cancel()
	limit, err := r.describeLimit(lctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("could not read the topic's max.message.bytes; batches keep the size they had (Kafka's default if none was read)",
				"topic", r.cfg.Topic, "error", err)
		}
		return
	}
	if limit != r.limit {
		r.log.Info("batches sized for the topic's max.message.bytes", "topic", r.cfg.Topic, "max_message_bytes", limit)
		r.limit = limit
	}
}

func (r *Relay) describeLimit(ctx context.Context) (int, error) {
	resp, err := r.admin.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: r.cfg.Topic, ConfigNames: []string{"max.message.bytes"},
	}}})
	if err != nil {
		return 0, err
	}
	if len(resp.Resources) != 1 {
		return 0, fmt.Errorf("describe configs: %d resources in the answer, want 1", len(resp.Resources))
	}
	if err := resp.Resources[0].Error; err != nil {
		return 0, err
	}
	for _, e := range resp.Resources[0].ConfigEntries {
		if n, perr := strconv.Atoi(e.ConfigValue); e.ConfigName == "max.message.bytes" && perr == nil && n > 0 {
			return n, nil
		}
	}
	return 0, errors.New("describe configs: no max.message.bytes in the answer")
}

// readBatchBytes caps the estimated bytes of one batch read: under the
// topic's limit, so that each partition's share of a write fits in one
// record batch the broker takes. A single larger row still goes alone.
func (r *Relay) readBatchBytes() int {
	limit := r.limit
	if limit == 0 {
		limit = defaultMaxMessageBytes
	}
	return max(min(r.cfg.MaxBatchBytes, limit-recordBatchSlack), 1)
}

// writerBatchBytes is the writer's BatchBytes: the topic's limit, above
// what any batch read lets in, so kafka-go never splits a partition's share
// of a write into two batches, and refuses on its own only a message the
// broker would refuse.
func (r *Relay) writerBatchBytes() int64 {
	if r.limit == 0 {
		return unknownLimitBatchBytes
	}
	return int64(r.limit)
}
