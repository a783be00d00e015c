package orderconsumer

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/kafkalog"
	"github.com/ordersonkafka/orders/internal/text"
)

// TailOptions says which records of the events topic Tail reads.
type TailOptions struct {
	// Order, unless uuid.Nil, selects one order's records: those keyed by
	// its ID, and those whose event names it under another key.
	Order uuid.UUID
	// FromBeginning reads each partition from its first offset; otherwise
	// from Last records before its end.
	FromBeginning bool
	// Last is how many records before each partition's end the read starts
	// (without FromBeginning), counted before Order selects: 0 reads
	// nothing already there.
	Last int
	// Follow keeps reading what the partitions receive after their end,
	// until ctx ends.
	Follow bool
}

// TailRecord is one record of the events topic as an operator reads it.
// What came from outside (key, headers, bytes) is shown, never trusted:
// text cut to MaxShown bytes, anything else in hex.
type TailRecord struct {
	Partition int               `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp time.Time         `json:"timestamp"`
	Key       string            `json:"key"`
	Headers   map[string]string `json:"headers"`
	// SchemaID is the registry ID the value is framed with; absent if the
	// value is not in the Confluent wire format.
	SchemaID   *uint32 `json:"schema_id,omitempty"`
	ValueBytes int     `json:"value_bytes"`
	// Event is the value decoded; absent if it does not decode.
	Event *TailEvent `json:"event,omitempty"`
	// ErrorClass and Error say why the consumer would dead-letter the
	// record: it does not decode (Event absent, ValuePrefix set), or its
	// event breaks a rule of order.Standard.CheckEvent.
	ErrorClass  string `json:"error_class,omitempty"`
	Error       string `json:"error,omitempty"`
	ValuePrefix string `json:"value_prefix,omitempty"`
}

// TailEvent is a decoded event, its fields named as in the Avro schema;
// status is the order's (paid), event_type the schema's symbol (PAID).
type TailEvent struct {
	EventID          uuid.UUID       `json:"event_id"`
	EventType        order.EventType `json:"event_type"`
	OrderID          uuid.UUID       `json:"order_id"`
	Version          int64           `json:"version"`
	Status           order.Status    `json:"status"`
	OccurredAt       time.Time       `json:"occurred_at"`
	CustomerID       string          `json:"customer_id"`
	Currency         string          `json:"currency"`
	Items            []order.Item    `json:"items"`
	TotalMinor       int64           `json:"total_minor"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
	PaymentReference string          `json:"payment_reference,omitempty"`
	CancelReason     string          `json:"cancel_reason,omitempty"`
	RefundReason     string          `json:"refund_reason,omitempty"`
}

// MaxShown bounds the bytes of a key or header value a TailRecord shows;
// a longer one is cut, marked "…".
const MaxShown = 256

// valuePrefix is how many of an undecodable value's first bytes a
// TailRecord shows.
const valuePrefix = 16

// tailPoll is how long a followed partition, once caught up, waits before
// asking for more (each fetch waits up to 100 ms at the broker too).
const tailPoll = 200 * time.Millisecond

// Tail calls fn with the records of the events topic (cfg.Topic) opts
// selects: partition by partition, each in offset order; then, if
// opts.Follow, with each record the partitions receive, as it comes, until
// ctx ends, when it returns nil. It reads partitions directly, with
// KAFKA_*'s security: it never joins the consumer group nor commits an
// offset, so the consumers are not disturbed. A partition added while it
// follows is not read. A record that does not decode, or breaks a rule,
// is passed with its error, never skipped; a failure that is not the
// record's (the registry or a broker unreachable) ends Tail with it.
func Tail(ctx context.Context, cfg Config, opts TailOptions, fn func(TailRecord) error) error {
	if opts.Last < 0 {
		return fmt.Errorf("tail: %d records before the end: want 0 or more", opts.Last)
	}
	sec, err := cfg.Kafka.Security()
	if err != nil {
		return err
	}
	dec, err := newDecoder(cfg)
	if err != nil {
		return err
	}
	client := sec.Client(cfg.KafkaBrokers, sec.Timeout())
	bounds, err := kafkalog.Offsets(ctx, client, cfg.Topic)
	if err != nil {
		return err
	}
	t := tailer{dec: dec, order: opts.Order, fn: fn}
	next := make(map[int]int64, len(bounds))
	for _, b := range bounds {
		from := b.First
		if !opts.FromBeginning {
			from = max(b.First, b.Next-int64(opts.Last))
		}
		if err := kafkalog.Range(ctx, client, cfg.Topic, b.Partition, from, b.Next, t.emit(ctx)); err != nil {
			if opts.Follow && ctx.Err() != nil {
				return nil // interrupted before it caught up: following ends so too
			}
			return err
		}
		next[b.Partition] = b.Next
	}
	if !opts.Follow {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range bounds {
		g.Go(func() error {
			off, emit := next[b.Partition], t.emit(gctx)
			for {
				err := kafkalog.Range(gctx, client, cfg.Topic, b.Partition, off, math.MaxInt64, func(m kafka.Message) error {
					off = m.Offset + 1
					return emit(m)
				})
				if err != nil {
					return err
				}
				select {
				case <-gctx.Done():
					return gctx.Err()
				case <-time.After(tailPoll):
				}
			}
		})
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return nil // the operator stopped following
	}
	return err
}

// tailer turns messages into TailRecords for fn, one at a time.
type tailer struct {
	dec   *eventcodec.Decoder
	order uuid.UUID
	mu    sync.Mutex // the followed partitions' goroutines call fn in turn
	fn    func(TailRecord) error
}

func (t *tailer) emit(ctx context.Context) func(kafka.Message) error {
	return func(m kafka.Message) error {
		r, err := t.record(ctx, m)
		if err != nil {
			return err
		}
		if t.order != uuid.Nil && string(m.Key) != t.order.String() && (r.Event == nil || r.Event.OrderID != t.order) {
			return nil
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.fn(r)
	}
}

// record decodes m and checks its event as the consumer would; only a
// transient failure (the registry unreachable) is an error.
func (t *tailer) record(ctx context.Context, m kafka.Message) (TailRecord, error) {
	r := TailRecord{Partition: m.Partition, Offset: m.Offset, Timestamp: m.Time.UTC(), Key: shown(m.Key),
		Headers: make(map[string]string, len(m.Headers)), ValueBytes: len(m.Value)}
	for _, h := range m.Headers {
		r.Headers[h.Key] = shown(h.Value) // a repeated header: the last one, as the consumer reads it
	}
	if len(m.Value) >= 5 && m.Value[0] == 0 {
		id := binary.BigEndian.Uint32(m.Value[1:5])
		r.SchemaID = &id
	}
	ev, err := t.dec.Decode(ctx, m.Value)
	if err == nil {
		r.Event = tailEvent(ev)
		err = order.Standard.CheckEvent(ev, m.Key, time.Now())
	} else {
		r.ValuePrefix = fmt.Sprintf("0x%x", m.Value[:min(len(m.Value), valuePrefix)])
	}
	if err != nil {
		permanent, class := Classify(err)
		if !permanent {
			return TailRecord{}, fmt.Errorf("decode %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
		r.ErrorClass, r.Error = class, err.Error()
	}
	return r, nil
}

func tailEvent(ev order.Event) *TailEvent {
	o := ev.Order
	return &TailEvent{EventID: ev.ID, EventType: ev.Type, OrderID: o.ID, Version: o.Version, Status: o.Status,
		OccurredAt: ev.OccurredAt, CustomerID: o.CustomerID, Currency: o.Currency, Items: append([]order.Item{}, o.Items...),
		TotalMinor: o.TotalMinor, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
		PaymentReference: o.PaymentReference, CancelReason: o.CancelReason, RefundReason: o.RefundReason}
}

// shown is b as a terminal may show it: its text (text.Valid) cut to
// MaxShown bytes on a character boundary, or else 0x and its hex, of at
// most MaxShown/2 bytes; cut, either ends with "…".
func shown(b []byte) string {
	if !text.Valid(string(b)) {
		if len(b) > MaxShown/2 {
			return fmt.Sprintf("0x%x…", b[:MaxShown/2])
		}
		return fmt.Sprintf("0x%x", b)
	}
	if len(b) <= MaxShown {
		return string(b)
	}
	cut := MaxShown
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return string(b[:cut]) + "…"
}
