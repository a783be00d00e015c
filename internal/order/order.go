// Package order is the domain of the service: an Order, its state machine and
// the events each accepted transition produces. It imports no driver and
// nothing of ours but internal/text, the leaf rule for text every layer
// shares; adapters (HTTP, PostgreSQL, Kafka) depend on it, never the reverse.
//
// Guarantees: an Order only changes through Place and a Machine's Apply,
// every accepted transition increments Version by exactly one (1 on Place)
// and yields exactly one Event carrying the order's full state after the
// change. The state machine is a value (Machine; Standard is the one the
// service runs), so the API, the consumer's checks and its judge all read
// the same table, and a test can pass another.
package order

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/text"
)

// Status is the lifecycle state of an order.
type Status string

// The statuses of the Standard state machine. Refunded and Cancelled are
// terminal.
const (
	StatusPlaced    Status = "placed"
	StatusPaid      Status = "paid"
	StatusRefunded  Status = "refunded"
	StatusCancelled Status = "cancelled"
)

// Action is a request to move an order to another state.
type Action string

// The actions a client can request on an existing order in the Standard
// machine.
const (
	ActionPay    Action = "pay"
	ActionRefund Action = "refund"
	ActionCancel Action = "cancel"
)

// EventType names what happened to an order. The values are the Avro enum
// symbols of the event schema and the event_type header.
type EventType string

// One event type per transition of the Standard machine, and PLACED.
const (
	EventPlaced    EventType = "PLACED"
	EventPaid      EventType = "PAID"
	EventRefunded  EventType = "REFUNDED"
	EventCancelled EventType = "CANCELLED"
)

// Limits on what a client may send. They keep rows, events and responses a
// sane size; the HTTP layer also caps the body at 1 MiB.
const (
	MaxItems         = 100
	MaxSKULength     = 64
	MaxCustomerIDLen = 64
	MaxTextLength    = 256 // payment reference and reasons
)

// Item is one line of an order. Prices are in minor units of the order's
// currency (cents for EUR), so no floating point ever touches money.
type Item struct {
	SKU            string `json:"sku"`
	Quantity       int32  `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
}

// Order is the aggregate. Its zero value is not a valid order: use Place.
type Order struct {
	ID               uuid.UUID
	CustomerID       string
	Currency         string
	Items            []Item
	TotalMinor       int64
	Status           Status
	Version          int64
	PaymentReference string // set by pay, if the client sent one
	CancelReason     string // set by cancel, if the client sent one
	RefundReason     string // set by refund, if the client sent one
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Event is what one accepted transition produced: the order's full state after
// it, so a consumer needs nothing else to apply it.
type Event struct {
	ID         uuid.UUID
	Type       EventType
	Order      Order
	OccurredAt time.Time
	Meta       Meta
}

// Meta is request context that travels with an event as Kafka headers.
type Meta struct {
	Traceparent   string // W3C trace context of the request that caused the event
	CorrelationID string // the client's X-Correlation-ID, or one made up for the request
}

// Errors returned by this package and by every Store. Callers test them with
// errors.Is; adapters map them to their protocol (HTTP 404, 409, 412, 422).
var (
	ErrNotFound            = errors.New("order not found")
	ErrInvalidTransition   = errors.New("invalid transition")
	ErrVersionMismatch     = errors.New("order version does not match")
	ErrIdempotencyConflict = errors.New("idempotency key reused with a different request")
	// ErrUnavailable wraps a failure to reach the store (connection refused
	// or lost, the server restarting, no connection free in time): nothing
	// was changed, and the same request may succeed later.
	ErrUnavailable = errors.New("order store unavailable")
)

// FieldError says what is wrong with one field of a request.
type FieldError struct {
	Field  string `json:"field"`  // JSON path, e.g. items[2].quantity
	Detail string `json:"detail"` // human-readable reason
}

// ValidationError is returned when a request is well-formed but its values are
// not acceptable. It lists every problem found, not just the first.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Fields) == 1 {
		return fmt.Sprintf("invalid order: %s: %s", e.Fields[0].Field, e.Fields[0].Detail)
	}
	return fmt.Sprintf("invalid order: %d invalid fields", len(e.Fields))
}

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
}

// TransitionError is an ErrInvalidTransition with the details of the refusal.
type TransitionError struct {
	From   Status
	Action Action
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s an order that is %s", e.Action, e.From)
}

// Unwrap makes errors.Is(err, ErrInvalidTransition) true.
func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }

// isCurrencyCode reports whether s is three upper-case ASCII letters, the
// form of an ISO 4217 code. (Not a regexp: every request and every event
// the consumer checks runs it.)
func isCurrencyCode(s string) bool {
	return len(s) == 3 && 'A' <= s[0] && s[0] <= 'Z' && 'A' <= s[1] && s[1] <= 'Z' && 'A' <= s[2] && s[2] <= 'Z'
}

// NewOrder is what a client asks for when placing an order.
type NewOrder struct {
	CustomerID string
	Currency   string
	Items      []Item
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil. Text must be valid UTF-8 without NUL (text.Valid). It also
// rejects totals that do not fit in an int64.
func (n NewOrder) Validate() error {
	var ve ValidationError
	switch {
	case n.CustomerID == "":
		ve.add("customer_id", "is required")
	case len(n.CustomerID) > MaxCustomerIDLen:
		ve.add("customer_id", "must be at most %d bytes", MaxCustomerIDLen)
	case !text.Valid(n.CustomerID):
		ve.add("customer_id", text.Rule)
	}
	switch {
	case n.Currency == "":
		ve.add("currency", "is required")
	case !isCurrencyCode(n.Currency):
		ve.add("currency", "must be three upper-case letters (ISO 4217), got %q", n.Currency)
	}
	switch {
	case len(n.Items) == 0:
		ve.add("items", "must contain at least one item")
	case len(n.Items) > MaxItems:
		ve.add("items", "must contain at most %d items, got %d", MaxItems, len(n.Items))
	default:
		for i, it := range n.Items {
			// The field's path is only formatted for a field at fault.
			field := func(name string) string { return fmt.Sprintf("items[%d].%s", i, name) }
			switch {
			case it.SKU == "":
				ve.add(field("sku"), "is required")
			case len(it.SKU) > MaxSKULength:
				ve.add(field("sku"), "must be at most %d bytes", MaxSKULength)
			case !text.Valid(it.SKU):
				ve.add(field("sku"), text.Rule)
			}
			if it.Quantity <= 0 {
				ve.add(field("quantity"), "must be a positive integer")
			}
			if it.UnitPriceMinor <= 0 {
				ve.add(field("unit_price_minor"), "must be a positive integer")
			}
		}
		if len(ve.Fields) == 0 {
			if _, ok := total(n.Items); !ok {
				ve.add("items", "order total overflows a 64-bit integer of minor units")
			}
		}
	}
	if len(ve.Fields) > 0 {
		return &ve
	}
	return nil
}

// total sums quantity × unit price, reporting false on int64 overflow.
func total(items []Item) (int64, bool) {
	var sum int64
	for _, it := range items {
		q := int64(it.Quantity)
		if it.UnitPriceMinor > math.MaxInt64/q {
			return 0, false
		}
		line := q * it.UnitPriceMinor
		if sum > math.MaxInt64-line {
			return 0, false
		}
		sum += line
	}
	return sum, true
}

// Now returns the current time as the domain stores it: UTC, truncated to the
// microsecond that PostgreSQL and Avro timestamp-micros keep, so what an API
// returns on write equals what it returns on read.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Place creates a new order at version 1 and its PLACED event. It returns a
// *ValidationError if n is not acceptable.
func Place(n NewOrder, now time.Time, meta Meta) (Order, Event, error) {
	if err := n.Validate(); err != nil {
		return Order{}, Event{}, err
	}
	sum, _ := total(n.Items)
	o := Order{
		ID:         newID(),
		CustomerID: n.CustomerID,
		Currency:   n.Currency,
		Items:      append([]Item(nil), n.Items...),
		TotalMinor: sum,
		Status:     StatusPlaced,
		Version:    1,
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	return o, newEvent(EventPlaced, o, now, meta), nil
}

// Change is a requested transition with its optional details.
type Change struct {
	Action           Action
	PaymentReference string // pay only
	Reason           string // refund and cancel
}

// Validate checks the optional details of a change; whether its action is
// one a machine has is the machine's to say (Machine.Apply).
func (c Change) Validate() error {
	var ve ValidationError
	if len(c.PaymentReference) > MaxTextLength {
		ve.add("payment_reference", "must be at most %d bytes", MaxTextLength)
	} else if !text.Valid(c.PaymentReference) {
		ve.add("payment_reference", text.Rule)
	}
	if c.PaymentReference != "" && c.Action != ActionPay {
		ve.add("payment_reference", "is only accepted by pay")
	}
	if len(c.Reason) > MaxTextLength {
		ve.add("reason", "must be at most %d bytes", MaxTextLength)
	} else if !text.Valid(c.Reason) {
		ve.add("reason", text.Rule)
	}
	if c.Reason != "" && c.Action == ActionPay {
		ve.add("reason", "is only accepted by refund and cancel")
	}
	if len(ve.Fields) > 0 {
		return &ve
	}
	return nil
}

func newEvent(t EventType, o Order, now time.Time, meta Meta) Event {
	o.Items = append([]Item(nil), o.Items...)
	return Event{ID: newID(), Type: t, Order: o, OccurredAt: now, Meta: meta}
}

// newID returns a UUIDv7: time-ordered, so order IDs sort by creation and
// make a stable pagination cursor and a friendly B-tree key.
func newID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil { // only if the system's random source fails
		panic(fmt.Sprintf("order: generate id: %v", err))
	}
	return id
}

// ListFilter selects orders for List. Zero values mean "any".
type ListFilter struct {
	CustomerID string
	Status     Status
	After      uuid.UUID // exclusive cursor: only orders with a greater ID
	Limit      int       // 1..MaxListLimit, callers apply the default
}

// Listing limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 200
)

// Idempotency identifies a create request so a retry returns the first answer.
type Idempotency struct {
	Key         string // the client's Idempotency-Key header
	Fingerprint []byte // hash of the request body; a different one is a conflict
	Response    []byte // the response body to store for replays
}

// VersionMatch is the precondition of an Update (an If-Match): it reports
// whether a change may apply to the order at version. A nil VersionMatch
// matches every version (no If-Match, or If-Match: *).
type VersionMatch func(version int64) bool

// Store persists orders and, atomically with every change, the change's event
// in the transactional outbox. Implementations must serialize concurrent
// changes of one order (row lock or version check) before writing its event,
// so one order's events are written in version order.
type Store interface {
	// Every method returns an error wrapping ErrUnavailable when the store
	// could not be reached or used (nothing was written, unless a commit's
	// reply was lost), and gives up waiting for it after a bound of the
	// implementation's choosing.
	//
	// Create stores a new order and its PLACED event in one transaction. With
	// idem non-nil it also records the key: if the key exists with the same
	// fingerprint, nothing is written and the stored response is returned with
	// replayed=true; with another fingerprint it returns ErrIdempotencyConflict.
	Create(ctx context.Context, o Order, ev Event, idem *Idempotency) (resp []byte, replayed bool, err error)

	// Get returns the order, or ErrNotFound.
	Get(ctx context.Context, id uuid.UUID) (Order, error)

	// List returns orders matching f in ascending ID order, and whether more follow.
	List(ctx context.Context, f ListFilter) (orders []Order, more bool, err error)

	// Update reads the order, checks match (nil matches any version;
	// otherwise ErrVersionMismatch if match refuses the order's version),
	// calls fn to change it, and stores the order and fn's event in one
	// transaction, only if the order has not changed meanwhile; if it has,
	// Update starts again from the new state (checking match again), so fn
	// may be called more than once and must have no effect besides its
	// result. It returns ErrNotFound for an unknown order and fn's error
	// unchanged (nothing is written then).
	Update(ctx context.Context, id uuid.UUID, match VersionMatch, fn func(*Order) (Event, error)) (Order, error)
}
