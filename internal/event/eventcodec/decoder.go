package eventcodec

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/riferrei/srclient"

	"github.com/hamba/avro/v2"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/schemas"
)

// Errors of Decode that no retry can fix: the message belongs in a dead-letter
// topic. Anything else Decode returns (the registry unreachable, answering
// 5xx, timing out) is transient.
var (
	ErrNotFramed          = errors.New("not in the Confluent wire format")
	ErrUnknownSchema      = errors.New("schema ID unknown to the registry")
	ErrIncompatibleSchema = errors.New("writer schema cannot be resolved to the reader schema")
	ErrUndecodable        = errors.New("bytes do not decode with the writer schema")
	// ErrInvalidEvent: a field does not parse as its domain type (a UUID, an
	// enum symbol). Whether the event obeys the domain's rules is
	// order.Machine.CheckEvent's business, not the codec's.
	ErrInvalidEvent = errors.New("decoded event is not a valid order event")
	// ErrUnknownSymbol: a status or event type this consumer's schema does
	// not have, read as schemas.UnknownSymbol: the event comes from a newer
	// producer. It is parked, not guessed at; deploy the newer consumer,
	// then replay it from the dead-letter topic.
	ErrUnknownSymbol = errors.New("event from a newer producer: a symbol this consumer does not know")
)

// Class reports whether err is one of the errors above, which no retry can
// cure, and names it ("eventcodec.ErrUndecodable"): the stable class a dead
// letter carries.
func Class(err error) (class string, permanent bool) {
	for _, p := range permanentErrors {
		if errors.Is(err, p.err) {
			return "eventcodec." + p.name, true
		}
	}
	return "", false
}

var permanentErrors = []struct {
	err  error
	name string
}{
	{ErrNotFramed, "ErrNotFramed"}, {ErrUnknownSchema, "ErrUnknownSchema"},
	{ErrIncompatibleSchema, "ErrIncompatibleSchema"}, {ErrUndecodable, "ErrUndecodable"},
	{ErrInvalidEvent, "ErrInvalidEvent"}, {ErrUnknownSymbol, "ErrUnknownSymbol"},
}

// Classes lists every class Class gives.
func Classes() []string {
	out := make([]string, len(permanentErrors))
	for i, p := range permanentErrors {
		out[i] = "eventcodec." + p.name
	}
	return out
}

// DecoderConfig configures a Decoder.
type DecoderConfig struct {
	URL        string        // Schema Registry base URL
	Auth       RegistryAuth  // credentials and CAs; zero: none
	HTTPClient *http.Client  // optional: its transport is used
	Timeout    time.Duration // per registry call; default DefaultRegistryTimeout
}

// Decoder reads Confluent-framed order events written with any schema the
// registry knows that resolves to the newest schema in schemas/. Safe for
// concurrent use; writer schemas are fetched once per ID.
type Decoder struct {
	reg    *srclient.SchemaRegistryClient
	reader avro.Schema

	mu      sync.RWMutex
	schemas map[uint32]writerSchema
}

// writerSchema is a registry schema as written, which checkBounds walks, and
// resolved against the reader, which decodes.
type writerSchema struct {
	writer, resolved avro.Schema
}

// NewDecoder compiles the reader schema; it contacts the registry only when
// it meets a schema ID for the first time.
func NewDecoder(cfg DecoderConfig) (*Decoder, error) {
	return newDecoder(cfg, schemas.Latest().Text)
}

// newDecoder reads with readerSchema: the newest in schemas/, or in tests
// a future one.
func newDecoder(cfg DecoderConfig, readerSchema string) (*Decoder, error) {
	reg, err := newRegistry(cfg.URL, cfg.Auth, cfg.HTTPClient, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	reader, err := parseSchema(readerSchema)
	if err != nil {
		return nil, fmt.Errorf("parse reader schema: %w", err)
	}
	return &Decoder{reg: reg, reader: reader, schemas: map[uint32]writerSchema{}}, nil
}

// Decode returns the event in value. Meta is left empty: trace and
// correlation IDs travel in headers, not in the payload.
func (d *Decoder) Decode(ctx context.Context, value []byte) (order.Event, error) {
	if len(value) < 5 || value[0] != 0 {
		return order.Event{}, fmt.Errorf("%w: %d bytes, first byte %s", ErrNotFramed, len(value), firstByte(value))
	}
	if len(value) > MaxValueBytes {
		return order.Event{}, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrUndecodable, len(value), MaxValueBytes)
	}
	id := binary.BigEndian.Uint32(value[1:5])
	schema, err := d.schema(ctx, id)
	if err != nil {
		return order.Event{}, err
	}
	// Every claimed length is checked against the bytes there are before
	// hamba/avro allocates anything.
	if err := checkBounds(schema.writer, value[5:]); err != nil {
		return order.Event{}, fmt.Errorf("%w: schema %d: %v", ErrUndecodable, id, err)
	}
	var w wireEvent
	r := avro.NewReader(nil, 0, avro.WithReaderConfig(decodeAPI)).Reset(value[5:])
	r.ReadVal(schema.resolved, &w)
	if r.Error != nil {
		return order.Event{}, fmt.Errorf("%w: schema %d: %v", ErrUndecodable, id, r.Error)
	}
	return fromWire(w)
}

func firstByte(b []byte) string {
	if len(b) == 0 {
		return "none"
	}
	return fmt.Sprintf("0x%02x", b[0])
}

// schema returns the writer schema of id, and it resolved against the reader.
func (d *Decoder) schema(ctx context.Context, id uint32) (writerSchema, error) {
	d.mu.RLock()
	s, ok := d.schemas[id]
	d.mu.RUnlock()
	if ok {
		return s, nil
	}
	// srclient's calls take no context: each is bounded by the timeout.
	ans, err := d.reg.GetSchema(int(id))
	if registryCode(err) == 40403 { // schema not found: no retry will find it
		return writerSchema{}, fmt.Errorf("%w: id %d: %w", ErrUnknownSchema, id, err)
	}
	if err != nil {
		return writerSchema{}, fmt.Errorf("fetch schema %d: %w", id, err) // the consumer names the registry
	}
	if st := ans.SchemaType(); st != nil && *st != srclient.Avro {
		return writerSchema{}, fmt.Errorf("%w: id %d is a %s schema", ErrIncompatibleSchema, id, *st)
	}
	writer, err := parseSchema(ans.Schema())
	if err != nil {
		return writerSchema{}, fmt.Errorf("%w: id %d does not parse: %v", ErrIncompatibleSchema, id, err)
	}
	resolved, err := avro.NewSchemaCompatibility().Resolve(d.reader, writer)
	if err != nil {
		return writerSchema{}, fmt.Errorf("%w: id %d: %v", ErrIncompatibleSchema, id, err)
	}
	s = writerSchema{writer: writer, resolved: resolved}
	d.mu.Lock()
	d.schemas[id] = s
	d.mu.Unlock()
	return s, nil
}

func fromWire(w wireEvent) (order.Event, error) {
	invalid := func(format string, args ...any) (order.Event, error) {
		return order.Event{}, fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
	}
	for field, sym := range map[string]string{"event_type": w.EventType, "status": w.Status} {
		if sym == schemas.UnknownSymbol {
			return order.Event{}, fmt.Errorf("%w: %s is %s to schema v%d", ErrUnknownSymbol, field, sym, schemas.Latest().Version)
		}
	}
	eventID, err := uuid.Parse(w.EventID)
	if err != nil {
		return invalid("event_id %q: %v", w.EventID, err)
	}
	orderID, err := uuid.Parse(w.OrderID)
	if err != nil {
		return invalid("order_id %q: %v", w.OrderID, err)
	}
	typ, ok := eventTypeSymbols.value[w.EventType]
	if !ok {
		return invalid("event_type %q", w.EventType)
	}
	status, ok := statusSymbols.value[w.Status]
	if !ok {
		return invalid("status %q", w.Status)
	}
	items := make([]order.Item, len(w.Items))
	for i, it := range w.Items {
		items[i] = order.Item(it)
	}
	o := order.Order{
		ID:               orderID,
		CustomerID:       w.CustomerID,
		Currency:         w.Currency,
		Items:            items,
		TotalMinor:       w.TotalMinor,
		Status:           status,
		Version:          w.Version,
		PaymentReference: deref(w.PaymentReference),
		CancelReason:     deref(w.CancelReason),
		RefundReason:     deref(w.RefundReason),
		CreatedAt:        w.CreatedAt.UTC(),
		UpdatedAt:        w.UpdatedAt.UTC(),
	}
	return order.Event{ID: eventID, Type: typ, Order: o, OccurredAt: w.OccurredAt.UTC()}, nil
}
