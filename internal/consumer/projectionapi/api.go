// Package projectionapi is order-consumer's read API (:8082): GET
// /orders/{id} from the order projection, GET
// /customers/{customer_id}/summary from the customers' totals, /healthz,
// /readyz and /openapi.yaml. It
// only reads: what it returns is what the consumer has applied, never
// anything newer, and an order's ETag is its projected version, comparable
// with order-api's ETag for the same order. Errors are RFC 9457 problem
// details like order-api's, and so are its refusals: a path or query that is
// not text is 400, a 405 says Allow, HEAD is GET without the body, and a
// database it cannot reach is 503 with Retry-After. At most
// Config.MaxWaiting reads wait for a version at once; beyond that a read that
// would wait is refused with 503 at once, so a flood of them costs one read
// each, not a request held for up to MaxWait.
package projectionapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/health"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/internal/text"
	"github.com/ordersonkafka/orders/openapi"
)

// Stores are the read models the API serves, one per resource.
type Stores struct {
	Orders    Store         // GET /orders/{id}
	Customers CustomerStore // GET /customers/{customer_id}/summary
}

// CustomerStore reads what each customer's orders come to.
type CustomerStore interface {
	// Get returns what the orders of customer come to, or an error wrapping
	// order.ErrNotFound if none of them has been applied, or one wrapping
	// order.ErrUnavailable if the database could not be reached or used (in
	// bounded time).
	Get(ctx context.Context, customer string) (order.CustomerOrders, error)
}

// Store reads the order projection.
type Store interface {
	// Get returns the projection of order id, or an error wrapping
	// order.ErrNotFound if none of its events has been applied, or one
	// wrapping order.ErrUnavailable if the database could not be reached or
	// used (in bounded time).
	Get(ctx context.Context, id uuid.UUID) (order.Projection, error)
}

// Config configures the API.
type Config struct {
	Logger *slog.Logger // default slog.Default()
	// Middleware runs around every route, first (metrics).
	Middleware []func(http.Handler) http.Handler
	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
	// Auth, when set, requires a bearer token on GET /orders/{id}.
	Auth *web.Auth
	// Heartbeats, when set, are the service's loops, which GET /livez
	// reports on.
	Heartbeats *health.Heartbeats
	// Versions, when set, wakes requests waiting for a version (see
	// Versions); without it they re-read every RecheckInterval.
	Versions *Versions
	// MaxWaiting caps the reads waiting for a version at once (each holds a
	// goroutine, timers, and re-reads the database every RecheckInterval);
	// a waiting read beyond it is answered 503 with Retry-After at once.
	// Required, at least 1 (order-consumer's HTTP_MAX_WAITING_READS, where
	// its default lives); New panics otherwise, as for a nil handler.
	MaxWaiting int
}

// RetryAfter is the Retry-After of a 503 when the database is unavailable.
const RetryAfter = 2 * time.Second

// WaitRetryAfter is the Retry-After of a 503 refusing a waiting read: a
// waiting read ends within MaxWait, most much sooner.
const WaitRetryAfter = time.Second

// errTooManyWaiting refuses a waiting read beyond MaxWaiting.
var errTooManyWaiting = errors.New("too many reads waiting for a version")

// MaxWait caps the wait parameter of GET /orders/{id}.
const MaxWait = 30 * time.Second

// RecheckInterval is how often a waiting GET re-reads the database.
const RecheckInterval = 100 * time.Millisecond

type api struct {
	store     Store
	customers CustomerStore
	log       *slog.Logger
	versions  *Versions
	waiting   chan struct{} // one token per waiting read, MaxWaiting in all
}

// New returns the API's handler, which serves its contract,
// openapi/order-consumer.yaml, at GET /openapi.yaml.
func New(cfg Config, stores Stores, checks ...web.Check) http.Handler {
	a := &api{store: stores.Orders, customers: stores.Customers, log: cfg.Logger, versions: cfg.Versions}
	if a.versions == nil {
		a.versions = NewVersions()
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if cfg.MaxWaiting < 1 {
		panic("projectionapi: Config.MaxWaiting must be at least 1")
	}
	a.waiting = make(chan struct{}, cfg.MaxWaiting)
	root := web.NewRouter(web.RouterConfig{Middleware: cfg.Middleware, Metrics: cfg.Metrics, Checks: checks,
		Heartbeats: cfg.Heartbeats, OpenAPI: openapi.OrderConsumer()})
	r := web.Guarded(root, cfg.Auth)
	r.Get("/orders/{id}", a.get)
	r.Get("/customers/{customer_id}/summary", a.customerSummary)
	return root
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	raw := chi.URLParam(r, "id")
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 { // uuid.Parse also takes urn: and {braced} forms
		// The id is not repeated: the problem's instance carries the path.
		web.Problem(w, r, http.StatusBadRequest, web.TypeMalformed, "Bad Request",
			"the order id in the path is not a UUID", nil)
		return
	}
	minVersion, wait, ok := waitParams(w, r)
	if !ok {
		return
	}
	p, err := a.getAtLeast(r.Context(), id, minVersion, wait)
	if errors.Is(err, errTooManyWaiting) {
		web.Unavailable(w, r, WaitRetryAfter, web.TypeTooManyWaiting,
			"too many reads are waiting for a version; retry after the Retry-After delay, or read without wait")
		return
	}
	if err != nil {
		a.readError(w, r, err, fmt.Sprintf("order %s is not in the projection", id))
		return
	}
	o := p.Order
	tag := web.ETag(o.Version)
	w.Header().Set("ETag", tag)
	// The projection moves on as events arrive: caches must revalidate.
	w.Header().Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == "*" || strings.Contains(inm, tag)) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	web.JSON(w, http.StatusOK, openapi.ProjectedOrderOf(p))
}

// waitParams reads min_version and wait: GET /orders/{id}?min_version=3&wait=5s
// answers as soon as the projection is at version 3 or later, or after 5s
// with whatever it has (the client compares versions; 404 if nothing yet).
func waitParams(w http.ResponseWriter, r *http.Request) (int64, time.Duration, bool) {
	q := r.URL.Query()
	var (
		minVersion int64
		wait       time.Duration
		err        error
	)
	if v := q.Get("min_version"); v != "" {
		var ok bool
		if minVersion, ok = web.PositiveInt(v); !ok {
			web.Problem(w, r, http.StatusBadRequest, web.TypeMalformed, "Bad Request",
				fmt.Sprintf("min_version %s is not a positive integer in plain digits (no sign, no leading zero)", text.Quote(v, 32)), nil)
			return 0, 0, false
		}
	}
	if v := q.Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 || wait > MaxWait {
			web.Problem(w, r, http.StatusBadRequest, web.TypeMalformed, "Bad Request",
				fmt.Sprintf("wait %s is not a duration between 0s and %s", text.Quote(v, 32), MaxWait), nil)
			return 0, 0, false
		}
	}
	if wait > 0 && minVersion == 0 {
		web.Problem(w, r, http.StatusBadRequest, web.TypeMalformed, "Bad Request", "wait needs min_version", nil)
		return 0, 0, false
	}
	return minVersion, wait, true
}

// getAtLeast reads order id, waiting up to wait for version minVersion. A
// read that has to wait takes one of MaxWaiting tokens first, or returns
// errTooManyWaiting.
func (a *api) getAtLeast(ctx context.Context, id uuid.UUID, minVersion int64, wait time.Duration) (order.Projection, error) {
	p, err := a.store.Get(ctx, id)
	if wait == 0 || err != nil && !errors.Is(err, order.ErrNotFound) || err == nil && p.Order.Version >= minVersion {
		return p, err
	}
	select {
	case a.waiting <- struct{}{}:
		defer func() { <-a.waiting }()
	default:
		return order.Projection{}, errTooManyWaiting
	}
	// Register before reading again, so an Applied between the read and
	// the wait is not missed.
	done, stop := a.versions.wait(id, minVersion)
	defer stop()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	recheck := time.NewTicker(RecheckInterval)
	defer recheck.Stop()
	for {
		p, err := a.store.Get(ctx, id)
		if err != nil && !errors.Is(err, order.ErrNotFound) || err == nil && p.Order.Version >= minVersion {
			return p, err
		}
		select {
		case <-done:
			return a.store.Get(ctx, id)
		case <-a.versions.closed: // shutting down
			return a.store.Get(ctx, id)
		case <-deadline.C:
			return p, err
		case <-ctx.Done():
			return p, ctx.Err()
		case <-recheck.C:
		}
	}
}

// readError answers a read that failed: 404 with notFound as the detail
// for order.ErrNotFound, 503 with Retry-After for order.ErrUnavailable
// (unless the client is gone), 500 for anything else.
func (a *api) readError(w http.ResponseWriter, r *http.Request, err error, notFound string) {
	switch {
	case errors.Is(err, order.ErrNotFound):
		web.Problem(w, r, http.StatusNotFound, web.TypeNotFound, "Not Found", notFound, nil)
	case errors.Is(err, order.ErrUnavailable) && r.Context().Err() == nil:
		a.log.WarnContext(r.Context(), "projection unavailable", "path", web.Instance(r), "error", err)
		web.Unavailable(w, r, RetryAfter, web.TypeUnavailable,
			"the projection cannot be read right now; retry after the Retry-After delay")
	default:
		a.internal(w, r, err)
	}
}

func (a *api) internal(w http.ResponseWriter, r *http.Request, err error) {
	web.Internal(a.log, w, r, err, "the projection could not be read; retry later")
}
