// Package deadletter is the dead-letter topic of order-consumer: publishing
// the messages that can never be applied, listing them, and replaying them.
//
// A dead letter is the original message byte for byte — key, value and
// headers untouched, a null kept null and an empty value kept empty — plus
// the headers Spring for Apache Kafka's DeadLetterPublishingRecoverer writes,
// encoded as Spring encodes them, so Spring tooling reads ours:
//
//	kafka_dlt-original-topic            UTF-8 string
//	kafka_dlt-original-partition        4-byte big-endian int
//	kafka_dlt-original-offset           8-byte big-endian long
//	kafka_dlt-original-timestamp        8-byte big-endian long, epoch milliseconds
//	kafka_dlt-original-timestamp-type   UTF-8 "CreateTime"
//	kafka_dlt-original-consumer-group   UTF-8 string
//	kafka_dlt-exception-fqcn            UTF-8: our error class, e.g. "eventcodec.ErrUnknownSchema"
//	kafka_dlt-exception-message         UTF-8: the error text, at most MaxErrorMessage bytes
//
// A dead letter always fits its topic. The publisher learns the topic's
// max.message.bytes; a letter that would exceed it is cut to fit — the value
// first, then the original headers, then the key — and says so in headers of
// ours: dlq_truncated_from (the original value's size in bytes, decimal),
// dlq_headers_dropped (how many original headers were left out) and
// dlq_key_truncated_from. A broker that still refuses a record
// (MESSAGE_TOO_LARGE, INVALID_RECORD, ...) gets that record cut to its
// minimum, never the same record again and again. A cut letter keeps the
// evidence (where it came from, why, how big) but cannot be replayed.
//
// A dead letter goes to the same partition number as its original, as Spring
// does by default, whatever partitioner the original producer used (kcat's
// default is CRC32, not murmur2); if the DLQ has fewer partitions it falls
// back to murmur2 of the key. Replay republishes to the original topic and
// partition with the original key, value and headers (the kafka_dlt-* ones
// dropped, so a second failure gets fresh ones) and adds two headers of ours,
// Spring having no standard for it: dlq_replayed_from ("<dlq
// topic>/<partition>@<offset>") and dlq_replayed_at (RFC 3339).
package deadletter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/kafkalog"
)

// The header names, as Spring for Apache Kafka writes them.
const (
	HeaderOriginalTopic         = "kafka_dlt-original-topic"
	HeaderOriginalPartition     = "kafka_dlt-original-partition"
	HeaderOriginalOffset        = "kafka_dlt-original-offset"
	HeaderOriginalTimestamp     = "kafka_dlt-original-timestamp"
	HeaderOriginalTimestampType = "kafka_dlt-original-timestamp-type"
	HeaderOriginalGroup         = "kafka_dlt-original-consumer-group"
	HeaderExceptionClass        = "kafka_dlt-exception-fqcn"
	HeaderExceptionMessage      = "kafka_dlt-exception-message"

	dltPrefix = "kafka_dlt-"
)

// Headers of ours, Spring having no standard for them.
const (
	HeaderReplayedFrom = "dlq_replayed_from"
	HeaderReplayedAt   = "dlq_replayed_at"

	// A letter cut to fit the DLQ topic says what was cut.
	HeaderTruncatedFrom    = "dlq_truncated_from"     // the original value's size in bytes
	HeaderHeadersDropped   = "dlq_headers_dropped"    // how many original headers were left out
	HeaderKeyTruncatedFrom = "dlq_key_truncated_from" // the original key's size in bytes
	HeaderRefusedByBroker  = "dlq_refused_by_broker"  // why the broker refused the letter whole

)

const (
	defaultMaxMessageBytes = 1048588 // Kafka's default max.message.bytes
	recordBatchOverhead    = 61      // the v2 record batch header the broker counts
	batchSlack             = 1 << 10 // room for kafka-go's estimate against the exact encoding
	minBudget              = 4 << 10 // below this no DLQ topic is usable
	maxKeptKey             = 256     // a key cut to fit keeps this much
	maxFitAttempts         = 12      // enough to halve a wrong limit down to minBudget
)

// MaxErrorMessage bounds kafka_dlt-exception-message: an error can quote the
// input that caused it.
const MaxErrorMessage = 2 << 10

// DeadLetter is a message that can never be applied, and why.
type DeadLetter struct {
	Msg   kafka.Message // the original, as the reader returned it
	Class string        // stable error class for kafka_dlt-exception-fqcn
	Err   error
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Brokers      []string
	Topic        string              // required (order-consumer's DLQ_TOPIC)
	Security     *kafkaconn.Security // TLS and SASL; nil: plain text
	Group        string              // the consumer group, for kafka_dlt-original-consumer-group
	WriteTimeout time.Duration       // each write's bound; default Security's Timeout (KAFKA_TIMEOUT)
	Logger       *slog.Logger        // default slog.Default()
}

// Publisher writes dead letters with acks=all, each cut to fit the topic.
// Publish is not safe for concurrent use (the consumer publishes from one
// goroutine); Close is.
type Publisher struct {
	cfg    PublisherConfig
	client *kafka.Client
	log    *slog.Logger

	mu     sync.Mutex
	w      *kafka.Writer
	budget int // the largest record (kafka-go's estimate) w writes; 0 until learned
}

// NewPublisher returns a Publisher; it connects on first use.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" {
		return nil, errors.New("deadletter: Brokers and Topic are required")
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = cfg.Security.Timeout()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Publisher{cfg: cfg, client: cfg.Security.Client(cfg.Brokers, cfg.WriteTimeout), log: cfg.Logger.With("component", "dead-letters")}, nil
}

// Publish writes every dead letter in one call; it returns nil only when the
// broker acknowledged all of them, so the caller may then commit past them.
// A letter the topic cannot take whole is cut to fit; an error returned is
// one a retry can fix (the broker or the network), or a DLQ topic that
// refuses even a letter cut to its minimum.
func (p *Publisher) Publish(ctx context.Context, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	if err := p.restoreEmpty(ctx, dls); err != nil {
		return fmt.Errorf("publish %d dead letters: %w", len(dls), err)
	}
	if p.budget == 0 {
		p.learnLimit(ctx)
	}
	letters := make([]kafka.Message, len(dls))
	pending := make([]int, len(dls)) // indexes not yet acknowledged
	for i, dl := range dls {
		letters[i], pending[i] = Message(dl, p.cfg.Group), i
	}
	minimal := map[int]error{} // letters refused alone for what they are
	logged := map[int]bool{}
	isolate := false // one letter per write, to tell which the broker refuses
	for attempt := 1; ; attempt++ {
		msgs := make([]kafka.Message, len(pending))
		for j, i := range pending {
			if refusal, ok := minimal[i]; ok {
				msgs[j] = cutToMinimum(letters[i], refusal)
			} else {
				msgs[j] = fit(letters[i], p.budget)
			}
			if Truncated(msgs[j]) && !logged[i] {
				logged[i] = true
				p.log.Warn("dead letter cut to fit the DLQ topic", "original", fmt.Sprintf("%s/%d@%d", dls[i].Msg.Topic, dls[i].Msg.Partition, dls[i].Msg.Offset),
					"value_bytes", len(letters[i].Value), "budget", p.budget)
			}
		}
		errs, err := p.write(ctx, msgs, isolate)
		if err != nil {
			return fmt.Errorf("publish %d dead letters to %s: %w", len(pending), p.cfg.Topic, err)
		}
		var next []int
		sized, refusedWhole := false, false
		var last error
		for j, e := range errs {
			if e == nil {
				continue
			}
			next, last = append(next, pending[j]), e
			switch {
			case errors.Is(e, kafka.MessageSizeTooLarge), errors.Is(e, kafka.RecordListTooLarge):
				sized = true
			case isolate: // refused alone: this letter, for what it is
				minimal[pending[j]] = e
			default:
				refusedWhole = true
			}
		}
		if refusedWhole {
			isolate = true // which letter of the batch? ask one at a time
		}
		if len(next) == 0 {
			return nil
		}
		if attempt == maxFitAttempts {
			return fmt.Errorf("publish %d dead letters to %s: refused even when cut to fit: %w", len(next), p.cfg.Topic, last)
		}
		if sized {
			// Learn the limit again, and halve ours if that did not shrink it.
			before := p.budget
			p.learnLimit(ctx)
			if p.budget >= before {
				p.setBudget(max(before/2, minBudget))
			}
		}
		p.log.Warn("the DLQ topic refused dead letters; cutting them to fit", "letters", len(next), "budget", p.budget, "error", last)
		pending = next
	}
}

// write writes msgs, all in one call or (isolate) one per call, and returns
// each one's record-level refusal (nil if acknowledged); err is a failure a
// retry can fix, such as the broker unreachable or a timeout.
func (p *Publisher) write(ctx context.Context, msgs []kafka.Message, isolate bool) ([]error, error) {
	if !isolate {
		return refusals(p.writeMessages(ctx, msgs...), len(msgs))
	}
	errs := make([]error, len(msgs))
	for i := range msgs {
		one, err := refusals(p.writeMessages(ctx, msgs[i]), 1)
		if err != nil {
			return nil, err
		}
		errs[i] = one[0]
	}
	return errs, nil
}

// writeMessages is one write, bounded: the writer bounds the produce
// request by WriteTimeout, but not the metadata it may need first, which
// takes the caller's context; so the whole write gets twice that.
func (p *Publisher) writeMessages(ctx context.Context, msgs ...kafka.Message) error {
	wctx, cancel := context.WithTimeout(ctx, 2*p.cfg.WriteTimeout)
	defer cancel()
	return p.writer().WriteMessages(wctx, msgs...)
}

// refusals sorts the error of writing n messages into each one's
// record-level refusal, or returns it whole when it is anything else.
func refusals(err error, n int) ([]error, error) {
	errs := make([]error, n)
	if err == nil {
		return errs, nil
	}
	var tooLarge kafka.MessageTooLargeError // kafka-go's own check against BatchBytes
	if errors.As(err, &tooLarge) {
		for i := range errs {
			errs[i] = kafka.MessageSizeTooLarge // it does not say which; fit all again
		}
		return errs, nil
	}
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != n {
		return nil, err
	}
	for i, e := range werrs {
		if e != nil && !recordLevel(e) {
			return nil, err
		}
		errs[i] = e
	}
	return errs, nil
}

// recordLevel reports whether the broker refused a record for what it is:
// no retry of the same bytes can succeed.
func recordLevel(err error) bool {
	for _, e := range []kafka.Error{kafka.MessageSizeTooLarge, kafka.RecordListTooLarge, kafka.InvalidRecord,
		kafka.InvalidMessage, kafka.InvalidMessageSize, kafka.InvalidTimestamp} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// learnLimit sets the budget from the topic's max.message.bytes, or from
// Kafka's default if the broker does not say.
func (p *Publisher) learnLimit(ctx context.Context) {
	limit := defaultMaxMessageBytes
	resp, err := p.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: p.cfg.Topic, ConfigNames: []string{"max.message.bytes"},
	}}})
	if err == nil && len(resp.Resources) == 1 && resp.Resources[0].Error != nil {
		err = resp.Resources[0].Error
	}
	if err == nil {
		for _, e := range resp.Resources[0].ConfigEntries {
			if n, perr := strconv.Atoi(e.ConfigValue); e.ConfigName == "max.message.bytes" && perr == nil && n > 0 {
				limit = n
			}
		}
	} else {
		p.log.Warn("could not read the DLQ topic's max.message.bytes; assuming Kafka's default", "topic", p.cfg.Topic, "default", limit, "error", err)
	}
	p.setBudget(max(limit-recordBatchOverhead-batchSlack, minBudget))
}

func (p *Publisher) setBudget(b int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b == p.budget && p.w != nil {
		return
	}
	p.budget = b
	if p.w != nil {
		_ = p.w.Close()
		p.w = nil
	}
}

// writer returns a writer whose batches, by kafka-go's estimate, stay within
// the budget; with the estimate's overhead above the exact encoding's, a
// partition's record batch then fits the topic's limit.
func (p *Publisher) writer() *kafka.Writer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w == nil {
		p.w = &kafka.Writer{
			Addr: kafka.TCP(p.cfg.Brokers...), Topic: p.cfg.Topic, Transport: p.cfg.Security.Transport(),
			RequiredAcks: kafka.RequireAll, Balancer: samePartition{},
			BatchTimeout: 2 * time.Millisecond, MaxAttempts: 1, WriteTimeout: p.cfg.WriteTimeout,
			BatchBytes: int64(p.budget),
		}
	}
	return p.w
}

// Close flushes and closes the writer.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w == nil {
		return nil
	}
	err := p.w.Close()
	p.w = nil
	return err
}

// restoreEmpty tells null from empty in the originals: kafka-go's Reader
// returns nil for both, so a nil key or value is read again from the
// original topic, where the protocol says which it is. An original gone
// meanwhile (retention) stays null.
func (p *Publisher) restoreEmpty(ctx context.Context, dls []DeadLetter) error {
	type at struct {
		topic     string
		partition int
	}
	wanted := map[at][]int{} // indexes of dls by partition
	for i, dl := range dls {
		if (dl.Msg.Key == nil || dl.Msg.Value == nil) && dl.Msg.Topic != "" {
			k := at{dl.Msg.Topic, dl.Msg.Partition}
			wanted[k] = append(wanted[k], i)
		}
	}
	for k, idx := range wanted {
		first, last := dls[idx[0]].Msg.Offset, dls[idx[0]].Msg.Offset
		byOffset := map[int64][]int{}
		for _, i := range idx {
			o := dls[i].Msg.Offset
			first, last = min(first, o), max(last, o)
			byOffset[o] = append(byOffset[o], i)
		}
		err := kafkalog.Range(ctx, p.client, k.topic, k.partition, first, last+1, func(m kafka.Message) error {
			for _, i := range byOffset[m.Offset] {
				if dls[i].Msg.Key == nil {
					dls[i].Msg.Key = m.Key
				}
				if dls[i].Msg.Value == nil {
					dls[i].Msg.Value = m.Value
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the originals of null keys or values: %w", err)
		}
	}
	return nil
}

// Message builds the dead-letter message of dl: the original key, value and
// headers plus the kafka_dlt-* headers.
func Message(dl DeadLetter, group string) kafka.Message {
	m := dl.Msg
	headers := make([]kafka.Header, 0, len(m.Headers)+8)
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, dltPrefix) {
			headers = append(headers, h)
		}
	}
	msg := "unknown error"
	if dl.Err != nil {
		msg = dl.Err.Error()
	}
	if len(msg) > MaxErrorMessage {
		cut := MaxErrorMessage - len("…")
		for cut > 0 && msg[cut]&0xc0 == 0x80 { // not inside a UTF-8 sequence
			cut--
		}
		msg = msg[:cut] + "…"
	}
	headers = append(headers,
		kafka.Header{Key: HeaderOriginalTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderOriginalPartition, Value: binary.BigEndian.AppendUint32(nil, uint32(int32(m.Partition)))},
		kafka.Header{Key: HeaderOriginalOffset, Value: binary.BigEndian.AppendUint64(nil, uint64(m.Offset))},
		kafka.Header{Key: HeaderOriginalTimestamp, Value: binary.BigEndian.AppendUint64(nil, uint64(m.Time.UnixMilli()))},
		kafka.Header{Key: HeaderOriginalTimestampType, Value: []byte("CreateTime")},
		kafka.Header{Key: HeaderOriginalGroup, Value: []byte(group)},
		kafka.Header{Key: HeaderExceptionClass, Value: []byte(dl.Class)},
		kafka.Header{Key: HeaderExceptionMessage, Value: []byte(msg)},
	)
	return kafka.Message{Partition: m.Partition, Key: m.Key, Value: m.Value, Headers: headers}
}

// size is kafka-go's estimate of a record's size (Message.totalSize), which
// its writer checks against BatchBytes and batches by.
func size(m kafka.Message) int {
	n := varintLen(int64(len(m.Headers)))
	for _, h := range m.Headers {
		n += varintLen(int64(len(h.Key))) + len(h.Key) + varintLen(int64(len(h.Value))) + len(h.Value)
	}
	return n + 4 + 1 + 1 + 4 + len(m.Key) + 4 + len(m.Value) + 8
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// fit returns m cut to at most budget bytes (by size): the value first, then
// the original headers (all but the kafka_dlt-* ones, which Message wrote:
// it drops the originals' own), then the key, each cut marked with a
// header. A letter that fits is returned as is.
func fit(m kafka.Message, budget int) kafka.Message {
	if size(m) <= budget {
		return m
	}
	out := m
	var marks []kafka.Header
	mark := func(key string, n int) {
		marks = append(marks, kafka.Header{Key: key, Value: strconv.AppendInt(nil, int64(n), 10)})
	}
	const markRoom = 48 // one mark header, and the varints it grows
	over := func() int { return size(out) + len(marks)*markRoom - budget }
	if o := over() + markRoom; o > 0 && len(m.Value) > 0 {
		keep := max(len(m.Value)-o, 0)
		out.Value = m.Value[:keep:keep] // empty, not null, when cut to nothing
		mark(HeaderTruncatedFrom, len(m.Value))
	}
	if over() > 0 {
		var kept []kafka.Header
		for _, h := range m.Headers {
			if strings.HasPrefix(h.Key, dltPrefix) {
				kept = append(kept, h)
			}
		}
		if dropped := len(m.Headers) - len(kept); dropped > 0 {
			out.Headers = kept
			mark(HeaderHeadersDropped, dropped)
		}
	}
	if over()+markRoom > 0 && len(m.Key) > maxKeptKey {
		out.Key = m.Key[:maxKeptKey:maxKeptKey]
		mark(HeaderKeyTruncatedFrom, len(m.Key))
	}
	if len(marks) > 0 {
		out.Headers = append(slices.Clip(out.Headers), marks...)
	}
	return out
}

// cutToMinimum is m with an empty value (null stays null), no original
// headers and a key of at most maxKeptKey bytes, and the broker's refusal:
// what a broker that refused m as a record may still take.
func cutToMinimum(m kafka.Message, refusal error) kafka.Message {
	out := fit(m, 0)
	out.Headers = append(out.Headers, kafka.Header{Key: HeaderRefusedByBroker, Value: []byte(refusal.Error())})
	return out
}

// Truncated reports whether m is a dead letter cut to fit (see Publisher):
// it no longer holds the original and cannot be replayed.
func Truncated(m kafka.Message) bool {
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderTruncatedFrom, HeaderHeadersDropped, HeaderKeyTruncatedFrom, HeaderRefusedByBroker:
			return true
		}
	}
	return false
}

// samePartition keeps a message on the partition number it names (a dead
// letter on its original's, a replay on the original's), falling back to
// murmur2 of the key if the topic has no such partition.
type samePartition struct{}

func (samePartition) Balance(msg kafka.Message, partitions ...int) int {
	for _, p := range partitions {
		if p == msg.Partition {
			return p
		}
	}
	return (&kafka.Murmur2Balancer{Consistent: true}).Balance(msg, partitions...)
}
