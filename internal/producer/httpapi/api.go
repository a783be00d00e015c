// Package httpapi is order-api's HTTP interface: routing (chi), request
// validation, RFC 9457 problem responses, Idempotency-Key, ETag/If-Match.
// It maps domain errors to HTTP statuses and nothing else: every rule of the
// order lives in internal/order and every byte stored in the order.Store.
// A refused request writes nothing.
//
// What arrives is checked before it is used: a path or query that is not text
// is 400, a body must be identity-encoded UTF-8 application/json whose keys
// are exactly the documented names, each at most once, and an unreachable
// store is 503 with Retry-After, never a 500.
package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/health"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/internal/text"
	"github.com/ordersonkafka/orders/openapi"
)

// MaxBodyBytes is the largest request body accepted (413 beyond).
const MaxBodyBytes = 1 << 20

// The bodies the routes take: a place needs one, a change may come without.
var (
	placeBody  = web.JSONBody{MaxBytes: MaxBodyBytes}
	changeBody = web.JSONBody{MaxBytes: MaxBodyBytes, Optional: true}
)

// RetryAfter is the Retry-After of a 503 when the store is unavailable:
// long enough for a pool to reconnect after a restart or a failover step,
// short enough that a blip costs a client little.
const RetryAfter = 2 * time.Second

// Config configures the API.
type Config struct {
	Logger *slog.Logger // default slog.Default()
	Now    func() time.Time
	// Tracer starts each request's server span; default a no-op tracer,
	// which still carries the client's trace context through to the events.
	Tracer trace.Tracer
	// Middleware runs around every route, first (metrics).
	Middleware []func(http.Handler) http.Handler
	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
	// Auth, when set, requires a bearer token on every order route.
	Auth *web.Auth
	// Heartbeats, when set, are the service's loops, which GET /livez
	// reports on.
	Heartbeats *health.Heartbeats
	// Machine is the order state machine: one route per action, the
	// statuses a list may filter by, the transitions a change may take.
	// Default order.Standard.
	Machine *order.Machine
}

type api struct {
	store      order.Store
	machine    *order.Machine
	statusList string // every status, for the refusal of an unknown ?status=
	log        *slog.Logger
	now        func() time.Time
	tracer     trace.Tracer
}

// New returns the API's handler, which serves its contract,
// openapi/order-api.yaml, at GET /openapi.yaml. It calls store and checks
// only: never the Schema Registry or Kafka, so orders are taken while those
// are down.
func New(cfg Config, store order.Store, checks ...web.Check) http.Handler {
	a := &api{store: store, machine: cfg.Machine, log: cfg.Logger, now: cfg.Now}
	if a.machine == nil {
		a.machine = order.Standard
	}
	names := make([]string, 0, len(a.machine.Statuses()))
	for _, st := range a.machine.Statuses() {
		names = append(names, string(st))
	}
	a.statusList = strings.Join(names, ", ")
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = order.Now
	}
	a.tracer = cfg.Tracer
	if a.tracer == nil {
		a.tracer = noop.NewTracerProvider().Tracer("")
	}
	r := web.NewRouter(web.RouterConfig{
		Middleware: append(cfg.Middleware[:len(cfg.Middleware):len(cfg.Middleware)], a.requestMeta),
		Metrics:    cfg.Metrics,
		Checks:     checks,
		Heartbeats: cfg.Heartbeats,
		OpenAPI:    openapi.OrderAPI(),
	})
	root, r := r, web.Guarded(r, cfg.Auth)
	r.Post("/orders", a.place)
	r.Get("/orders", a.list)
	r.Get("/orders/{id}", a.get)
	for _, action := range a.machine.Actions() { // POST /orders/{id}/pay, /refund, /cancel
		r.Post("/orders/{id}/"+string(action), a.change(action))
	}
	return root
}

type itemJSON struct {
	SKU            *string `json:"sku"`
	Quantity       *int32  `json:"quantity"`
	UnitPriceMinor *int64  `json:"unit_price_minor"`
}

type placeRequest struct {
	CustomerID *string    `json:"customer_id"`
	Currency   *string    `json:"currency"`
	Items      []itemJSON `json:"items"`
}

var idempotencyKeyRE = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)

func (a *api) place(w http.ResponseWriter, r *http.Request) {
	var req placeRequest
	if !placeBody.Decode(w, r, &req) {
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if _, present := r.Header["Idempotency-Key"]; present && !idempotencyKeyRE.MatchString(key) {
		web.Problem(w, r, http.StatusBadRequest, web.TypeMalformed, "Bad Request",
			"Idempotency-Key must be 1 to 255 printable ASCII characters without spaces", nil)
		return
	}
	n, fields := req.toNewOrder()
	if len(fields) == 0 {
		if err := n.Validate(); err != nil {
			var ve *order.ValidationError
			if !errors.As(err, &ve) {
				a.internal(w, r, err)
				return
			}
			fields = ve.Fields
		}
	}
	if len(fields) > 0 {
		invalid(w, r, "the order is not valid; see errors", fields)
		return
	}
	o, ev, err := order.Place(n, a.now(), metaFrom(r.Context()))
	if err != nil {
		a.internal(w, r, err)
		return
	}
	body, err := json.Marshal(openapi.OrderOf(o))
	if err != nil {
		a.internal(w, r, err)
		return
	}
	var idem *order.Idempotency
	if key != "" {
		// The fingerprint is of the decoded request, re-marshalled, so a
		// retry that only formats the JSON differently is the same request.
		canonical, _ := json.Marshal(n)
		sum := sha256.Sum256(canonical)
		idem = &order.Idempotency{Key: key, Fingerprint: sum[:], Response: body}
	}
	resp, replayed, err := a.store.Create(r.Context(), o, ev, idem)
	switch {
	case errors.Is(err, order.ErrIdempotencyConflict):
		web.Problem(w, r, http.StatusUnprocessableEntity, web.TypeIdempotency, "Unprocessable Content",
			"Idempotency-Key was already used with a different request body", nil)
		return
	case err != nil:
		a.storeError(w, r, err)
		return
	}
	if replayed {
		var first openapi.Order
		if err := json.Unmarshal(resp, &first); err != nil {
			a.internal(w, r, fmt.Errorf("stored idempotent response: %w", err))
			return
		}
		body, o.ID, o.Version = resp, first.ID, first.Version
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/orders/"+o.ID.String())
	w.Header().Set("ETag", web.ETag(o.Version))
	web.RawJSON(w, http.StatusCreated, body)
}

// toNewOrder turns the request into a domain request, listing the fields
// that are missing (the domain validates the values).
func (p placeRequest) toNewOrder() (order.NewOrder, []order.FieldError) {
	var missing []order.FieldError
	need := func(ok bool, field string) {
		if !ok {
			missing = append(missing, order.FieldError{Field: field, Detail: "is required"})
		}
	}
	var n order.NewOrder
	need(p.CustomerID != nil, "customer_id")
	need(p.Currency != nil, "currency")
	need(p.Items != nil, "items")
	if p.CustomerID != nil {
		n.CustomerID = *p.CustomerID
	}
	if p.Currency != nil {
		n.Currency = *p.Currency
	}
	for i, it := range p.Items {
		f := fmt.Sprintf("items[%d].", i)
		need(it.SKU != nil, f+"sku")
		need(it.Quantity != nil, f+"quantity")
		need(it.UnitPriceMinor != nil, f+"unit_price_minor")
		var item order.Item
		if it.SKU != nil {
			item.SKU = *it.SKU
		}
		if it.Quantity != nil {
			item.Quantity = *it.Quantity
		}
		if it.UnitPriceMinor != nil {
			item.UnitPriceMinor = *it.UnitPriceMinor
		}
		n.Items = append(n.Items, item)
	}
	return n, missing
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	o, err := a.store.Get(r.Context(), id)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	tag := web.ETag(o.Version)
	w.Header().Set("ETag", tag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == "*" || strings.Contains(inm, tag)) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	web.JSON(w, http.StatusOK, openapi.OrderOf(o))
}

type listResponse struct {
	Items      []openapi.Order `json:"items"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := order.ListFilter{CustomerID: q.Get("customer_id"), Status: order.Status(q.Get("status")), Limit: order.DefaultListLimit}
	if f.Status != "" && !a.machine.HasStatus(f.Status) {
		web.Problem(w, r, http.StatusBadRequest, web.TypeMalformed, "Bad Request",
			"status must be one of "+a.statusList+"; got "+text.Quote(string(f.Status), 32), nil)
		return
	}
	if s := q.Get("limit"); s != "" {
		n, ok := web.PositiveInt(s)
		if !ok || n > order.MaxListLimit {
			web.Problem(w, r, http.StatusBadRequest, web.TypeMalformed, "Bad Request",
				fmt.Sprintf("limit must be an integer from 1 to %d in plain digits (no sign, no leading zero); got %s", order.MaxListLimit, text.Quote(s, 32)), nil)
			return
		}
		f.Limit = int(n)
	}
	if c := q.Get("cursor"); c != "" {
		after, err := decodeCursor(c)
		if err != nil {
			web.Problem(w, r, http.StatusBadRequest, web.TypeMalformed, "Bad Request", "cursor is not one this API returned", nil)
			return
		}
		f.After = after
	}
	orders, more, err := a.store.List(r.Context(), f)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	resp := listResponse{Items: make([]openapi.Order, len(orders))}
	for i, o := range orders {
		resp.Items[i] = openapi.OrderOf(o)
	}
	if more && len(orders) > 0 {
		resp.NextCursor = encodeCursor(orders[len(orders)-1].ID)
	}
	web.JSON(w, http.StatusOK, resp)
}

// The cursor is the last ID of the page, opaque to clients. IDs are UUIDv7,
// so "after this ID" is stable however many orders arrive meanwhile.
func encodeCursor(id uuid.UUID) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

func decodeCursor(s string) (uuid.UUID, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return uuid.UUID{}, err
	}
	return uuid.FromBytes(b)
}

type changeRequest struct {
	PaymentReference string `json:"payment_reference"`
	Reason           string `json:"reason"`
}

func (a *api) change(action order.Action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		var req changeRequest
		if !changeBody.Decode(w, r, &req) {
			return
		}
		match, ok := ifMatch(w, r)
		if !ok {
			return
		}
		c := order.Change{Action: action, PaymentReference: req.PaymentReference, Reason: req.Reason}
		if err := c.Validate(); err != nil {
			var ve *order.ValidationError
			if errors.As(err, &ve) {
				invalid(w, r, "the request is not valid; see errors", ve.Fields)
				return
			}
			a.internal(w, r, err)
			return
		}
		meta := metaFrom(r.Context())
		o, err := a.store.Update(r.Context(), id, match, func(o *order.Order) (order.Event, error) {
			return a.machine.Apply(o, c, a.now(), meta)
		})
		if err != nil {
			a.storeError(w, r, err)
			return
		}
		w.Header().Set("ETag", web.ETag(o.Version))
		web.JSON(w, http.StatusOK, openapi.OrderOf(o))
	}
}

// ifMatch is the request's If-Match as the order's precondition. Absent
// (or empty) and "*" match any version: nil (Update still requires the
// order to exist). Otherwise a version matches when its ETag, `"<version>"`,
// is in the list by strong comparison: a weak tag (W/"1") never matches, nor
// does an opaque tag that is not a version as this API writes it ("01",
// "+1"). A field that is not such a list is 400.
func ifMatch(w http.ResponseWriter, r *http.Request) (order.VersionMatch, bool) {
	m, ok := web.ReadIfMatch(w, r)
	if !ok || m.Any() {
		return nil, ok
	}
	return func(v int64) bool { return m.Matches(web.ETag(v)) }, true
}

// pathID reads the {id} of the route. The detail does not repeat the id:
// the problem's instance already carries the path.
func pathID(w http.ResponseWriter, r *http.Request) (uuid.UUID, bool) {
	raw := chi.URLParam(r, "id")
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		web.Problem(w, r, http.StatusBadRequest, web.TypeMalformed, "Bad Request",
			"the order id in the path is not a UUID", nil)
		return uuid.UUID{}, false
	}
	return id, true
}
