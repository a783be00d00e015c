// Package eventcodec turns order events into the bytes on the topic and back:
// Avro binary bodies written with the newest schema in schemas/, framed in the
// Confluent wire format (magic byte 0, 4-byte big-endian schema ID, body), with
// schema IDs from a Confluent Schema Registry.
//
// The three parts sit where the flow needs them:
//   - Encoder (no network) runs on the request path, inside the order's
//     transaction, so the outbox row holds the exact body that will be
//     published, and the request never waits on the registry.
//   - Framer runs in the relay: it registers the schema (setting the subject's
//     compatibility first, and every older version before it), or only looks
//     it up with SCHEMA_AUTO_REGISTER=false, and caches the ID, so a registry
//     outage only delays publishing.
//   - Decoder runs in consumers: it fetches the writer's schema by the ID in
//     the frame, resolves it against the newest reader schema and classifies
//     what cannot be decoded as permanent (see Class).
//   - Gate compares schemas/ with a registry for `order-api schemas check`
//     and `schemas register`.
//
// The registry is reached through srclient (registry.go): each call bounded
// by a timeout, its error codes read from srclient.Error, so "unknown schema"
// (40403, permanent) is told from "registry unreachable" (transient).
package eventcodec

import (
	"fmt"
	"strings"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/text"
	"github.com/ordersonkafka/orders/schemas"
)

// wireEvent is the Avro record, field for field with schemas/order_event.vN.avsc.
type wireEvent struct {
	EventID          string     `avro:"event_id"`
	EventType        string     `avro:"event_type"`
	OrderID          string     `avro:"order_id"`
	Version          int64      `avro:"version"`
	Status           string     `avro:"status"`
	OccurredAt       time.Time  `avro:"occurred_at"`
	CustomerID       string     `avro:"customer_id"`
	Currency         string     `avro:"currency"`
	Items            []wireItem `avro:"items"`
	TotalMinor       int64      `avro:"total_minor"`
	CreatedAt        time.Time  `avro:"created_at"`
	UpdatedAt        time.Time  `avro:"updated_at"`
	PaymentReference *string    `avro:"payment_reference"`
	CancelReason     *string    `avro:"cancel_reason"`
	RefundReason     *string    `avro:"refund_reason"`
}

type wireItem struct {
	SKU            string `avro:"sku"`
	Quantity       int32  `avro:"quantity"`
	UnitPriceMinor int64  `avro:"unit_price_minor"`
}

// parseSchema parses one schema with a cache of its own: every version
// shares the record's full name, which a shared cache would confuse.
func parseSchema(text string) (avro.Schema, error) {
	return avro.ParseWithCache(text, "", &avro.SchemaCache{})
}

// Encoder writes events as Avro binary with the newest schema. It is safe
// for concurrent use.
type Encoder struct {
	schema  avro.Schema
	version int
}

// NewEncoder compiles the newest schema in schemas/.
func NewEncoder() (*Encoder, error) {
	latest := schemas.Latest()
	s, err := parseSchema(latest.Text)
	if err != nil {
		return nil, fmt.Errorf("parse schema v%d: %w", latest.Version, err)
	}
	return &Encoder{schema: s, version: latest.Version}, nil
}

// Encode returns the Avro body of ev (not framed) and the schemas/ version it
// was written with.
func (e *Encoder) Encode(ev order.Event) (payload []byte, schemaVersion int, err error) {
	w, err := toWire(ev)
	if err != nil {
		return nil, 0, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	b, err := avro.Marshal(e.schema, w)
	if err != nil {
		return nil, 0, fmt.Errorf("encode %s event %s: %w", ev.Type, ev.ID, err)
	}
	return b, e.version, nil
}

// toWire returns ev as the Avro record, or an error if its type or status
// has no symbol in the schema.
func toWire(ev order.Event) (*wireEvent, error) {
	o := ev.Order
	typ, ok := eventTypeSymbols.symbol[ev.Type]
	if !ok {
		return nil, fmt.Errorf("unknown event type %s", text.Quote(string(ev.Type), 32))
	}
	status, ok := statusSymbols.symbol[o.Status]
	if !ok {
		return nil, fmt.Errorf("unknown status %s", text.Quote(string(o.Status), 32))
	}
	items := make([]wireItem, len(o.Items))
	for i, it := range o.Items {
		items[i] = wireItem(it)
	}
	return &wireEvent{
		EventID:          ev.ID.String(),
		EventType:        typ,
		OrderID:          o.ID.String(),
		Version:          o.Version,
		Status:           status,
		OccurredAt:       ev.OccurredAt.UTC(),
		CustomerID:       o.CustomerID,
		Currency:         o.Currency,
		Items:            items,
		TotalMinor:       o.TotalMinor,
		CreatedAt:        o.CreatedAt.UTC(),
		UpdatedAt:        o.UpdatedAt.UTC(),
		PaymentReference: optional(o.PaymentReference),
		CancelReason:     optional(o.CancelReason),
		RefundReason:     optional(o.RefundReason),
	}, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Avro enum symbols are the domain's names in upper case: statuses are
// lower case ("placed" is PLACED), event types already upper case. Both maps
// are built from the domain's lists, so a new status or event type needs no
// edit here, only its symbol in a new schema (the codec tests compare them).
var (
	statusSymbols    = newSymbols(order.Standard.Statuses())
	eventTypeSymbols = newSymbols(order.Standard.EventTypes())
)

// symbols maps the values of a domain enum to their Avro symbols and back.
type symbols[T ~string] struct {
	symbol map[T]string
	value  map[string]T
}

func newSymbols[T ~string](values []T) symbols[T] {
	s := symbols[T]{symbol: make(map[T]string, len(values)), value: make(map[string]T, len(values))}
	for _, v := range values {
		sym := strings.ToUpper(string(v))
		s.symbol[v], s.value[sym] = sym, v
	}
	return s
}
