package projectionapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/consumer/customertotals"
	"github.com/ordersonkafka/orders/internal/consumer/orderview"
	"github.com/ordersonkafka/orders/internal/consumer/projectionapi"
	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/migrations"
	"github.com/ordersonkafka/orders/openapi"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type server struct {
	*httptest.Server
	db    *pgtest.DB
	store *projectionstore.Store
	view  *orderview.View
	reads *atomic.Int64 // Gets the API made of the order projection
}

// countingStore is the projection store, counting the reads the API makes.
type countingStore struct {
	projectionapi.Store
	reads *atomic.Int64
}

func (c countingStore) Get(ctx context.Context, id uuid.UUID) (order.Projection, error) {
	c.reads.Add(1)
	return c.Store.Get(ctx, id)
}

// newServer serves the read API, configured by cfg, over a fresh projection
// database, with the database as a readiness check as order-consumer has it.
// Its log is kept, and printed if the test fails.
func newServer(t *testing.T, cfg projectionapi.Config) server {
	t.Helper()
	db := pgtest.MustDB(t, migrations.Projection())
	orders, customers := orderview.New(db.Pool), customertotals.New(db.Pool)
	store := projectionstore.New(db.Pool, order.Standard, nil, orders, customers)
	if cfg.Logger == nil {
		cfg.Logger = stacktest.Logger(t)
	}
	if cfg.MaxWaiting == 0 {
		cfg.MaxWaiting = 16
	}
	reads := new(atomic.Int64)
	srv := serve(t, projectionapi.New(cfg, projectionapi.Stores{Orders: countingStore{orders, reads}, Customers: customers},
		web.Check{Name: "database", Func: store.Ping}))
	return server{Server: srv, db: db, store: store, view: orders, reads: reads}
}

// serve serves h for the test, every request and response validated against
// the read API's OpenAPI document: a mismatch fails t.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(openapitest.Load(t, openapi.OrderConsumer()).Handler(t, h))
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// try sends a request; unlike do, it may run on any goroutine.
func (s server) try(method, path string, header map[string]string) (response, error) {
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		return response{}, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func (s server) do(t *testing.T, method, path string, header map[string]string) response {
	t.Helper()
	r, err := s.try(method, path, header)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// placedAndPaid applies a placed and a paid event of a new order and returns
// the paid one, whose state the projection then holds.
func placedAndPaid(t *testing.T, s server) order.Event {
	t.Helper()
	o, placed, err := order.Place(order.NewOrder{
		CustomerID: "c-7", Currency: "EUR", Items: []order.Item{{SKU: "sku-1", Quantity: 3, UnitPriceMinor: 700}},
	}, t0, order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	paid, err := order.Standard.Apply(&o, order.Change{Action: order.ActionPay, PaymentReference: "pay-1"}, t0.Add(time.Minute), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Apply(context.Background(), []order.Event{placed, paid}); err != nil {
		t.Fatal(err)
	}
	return paid
}

func TestGetOrder(t *testing.T) {
	t.Parallel()
	s := newServer(t, projectionapi.Config{})
	paid := placedAndPaid(t, s)
	path := "/orders/" + paid.Order.ID.String()

	t.Run("an applied order is its projected state with the version as ETag", func(t *testing.T) {
		r := s.do(t, http.MethodGet, path, nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if et := r.header.Get("ETag"); et != `"2"` {
			t.Errorf(`ETag %q, want "2"`, et)
		}
		var got map[string]any
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		p, err := s.view.Get(context.Background(), paid.Order.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"id": paid.Order.ID.String(), "status": "paid", "version": 2.0, "customer_id": "c-7",
			"currency": "EUR", "total_minor": 2100.0, "payment_reference": "pay-1",
			"items":         []any{map[string]any{"sku": "sku-1", "quantity": 3.0, "unit_price_minor": 700.0}},
			"created_at":    "2026-03-01T12:00:00Z",
			"updated_at":    "2026-03-01T12:01:00Z",
			"last_event_at": "2026-03-01T12:01:00Z",
			"projected_at":  p.ProjectedAt.Format(time.RFC3339Nano),
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("body\n got %v\nwant %v", got, want)
		}
	})

	t.Run("a matching If-None-Match is 304", func(t *testing.T) {
		r := s.do(t, http.MethodGet, path, map[string]string{"If-None-Match": `"2"`})
		if r.status != http.StatusNotModified || len(r.body) != 0 {
			t.Errorf("status %d body %q, want 304 and no body", r.status, r.body)
		}
		r = s.do(t, http.MethodGet, path, map[string]string{"If-None-Match": `"1"`})
		if r.status != http.StatusOK {
			t.Errorf("an older version's ETag: status %d, want 200", r.status)
		}
	})
}

// A customer's summary counts their orders by status and adds their totals
// per currency in each status, as applied so far; a customer ID is any
// text, percent-encoded in the path where it must be.
func TestCustomerSummary(t *testing.T) {
	t.Parallel()
	s := newServer(t, projectionapi.Config{})
	placedAndPaid(t, s) // c-7: paid, 2100 EUR
	place := func(customer, currency string, price int64) {
		t.Helper()
		_, placed, err := order.Place(order.NewOrder{CustomerID: customer, Currency: currency,
			Items: []order.Item{{SKU: "sku-2", Quantity: 1, UnitPriceMinor: price}}}, t0, order.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.store.Apply(context.Background(), []order.Event{placed}); err != nil {
			t.Fatal(err)
		}
	}
	place("c-7", "USD", 999)
	place("c-7", "EUR", 1)
	place("c 8/ü", "EUR", 5)

	for _, tc := range []struct {
		name, path, want string
	}{
		{"orders by status, totals per currency by status", "/customers/c-7/summary",
			`{"customer_id":"c-7","orders":{"paid":1,"placed":2},"totals":{"paid":{"EUR":2100},"placed":{"EUR":1,"USD":999}}}`},
		{"a customer ID with a space, a slash and a non-ASCII letter, percent-encoded", "/customers/c%208%2F%C3%BC/summary",
			`{"customer_id":"c 8/ü","orders":{"placed":1},"totals":{"placed":{"EUR":5}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, http.MethodGet, tc.path, nil)
			if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != tc.want {
				t.Fatalf("status %d body %s, want 200 %s", r.status, r.body, tc.want)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("Cache-Control %q, want no-cache", cc)
			}
		})
	}
	for _, tc := range []struct {
		name, path  string
		status      int
		typ, detail string
	}{
		{"a customer with no order applied is 404", "/customers/c-9/summary", 404, "/problems/not-found", `no order of customer "c-9"`},
		{"a customer ID over 64 bytes is 400", "/customers/" + strings.Repeat("c", 65) + "/summary", 400, "/problems/malformed-request", "1 to 64 bytes"},
		{"a NUL in the customer ID is 400", "/customers/c%00/summary", 400, "/problems/malformed-request", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, s.do(t, http.MethodGet, tc.path, nil), tc.status, tc.typ, tc.detail)
		})
	}
}

func TestProblems(t *testing.T) {
	t.Parallel()
	s := newServer(t, projectionapi.Config{})
	unknown := uuid.New()
	tests := []struct {
		name, method, path string
		status             int
		typ, detail        string
	}{
		{"a malformed id is 400", http.MethodGet, "/orders/not-a-uuid", 400, "/problems/malformed-request", "the order id in the path is not a UUID"},
		{"a braced id is 400", http.MethodGet, "/orders/{" + unknown.String() + "}", 400, "/problems/malformed-request", "is not a UUID"},
		{"an order never applied is 404", http.MethodGet, "/orders/" + unknown.String(), 404, "/problems/not-found", "order " + unknown.String() + " is not in the projection"},
		{"an unknown path is 404", http.MethodGet, "/nowhere", 404, "/problems/not-found", "no such resource"},
		{"the read API takes no writes", http.MethodPost, "/orders/" + unknown.String(), 405, "/problems/method-not-allowed", "POST is not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, tc.method, tc.path, nil)
			wantProblem(t, r, tc.status, tc.typ, tc.detail)
		})
	}
}

func wantProblem(t *testing.T, r response, status int, typ, detail string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d (%s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Type, Title, Detail, Instance string
		Status                        int
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if p.Type != typ || p.Status != status || p.Title == "" || !strings.Contains(p.Detail, detail) || p.Instance == "" {
		t.Errorf("problem %+v, want type %s, status %d, detail containing %q", p, typ, status, detail)
	}
}

func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	s := newServer(t, projectionapi.Config{})
	s.db.Pool.Close()

	t.Run("a read is a 500 problem that leaks no cause", func(t *testing.T) {
		r := s.do(t, http.MethodGet, "/orders/"+uuid.NewString(), nil)
		wantProblem(t, r, 500, "/problems/internal", "could not be read")
		if bytes.Contains(r.body, []byte("closed")) {
			t.Errorf("the body leaks the cause: %s", r.body)
		}
	})
	t.Run("readyz names the database", func(t *testing.T) {
		r := s.do(t, http.MethodGet, "/readyz", nil)
		var got struct {
			Status string
			Failed map[string]string
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if r.status != 503 || got.Status != "not ready" || got.Failed["database"] == "" {
			t.Errorf("readyz %d %s", r.status, r.body)
		}
	})
	t.Run("healthz stays 200: the process is alive", func(t *testing.T) {
		if r := s.do(t, http.MethodGet, "/healthz", nil); r.status != 200 {
			t.Errorf("healthz %d", r.status)
		}
	})
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("retrying: database unreachable") }
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name       string
		checks     []web.Check
		status     int
		wantFailed []string
	}{
		{"no checks is ready", nil, 200, nil},
		{"all checks passing is ready", []web.Check{{Name: "database", Func: ok}, {Name: "consumer", Func: ok}}, 200, nil},
		{"a consumer retrying a dependency is not ready", []web.Check{{Name: "database", Func: ok}, {Name: "consumer", Func: down}}, 503, []string{"consumer"}},
		{"every failed check is named", []web.Check{{Name: "database", Func: down}, {Name: "consumer", Func: down}}, 503, []string{"consumer", "database"}},
		{"a hanging check times out as failed", []web.Check{{Name: "database", Func: hang}, {Name: "consumer", Func: ok}}, 503, []string{"database"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, projectionapi.New(projectionapi.Config{Logger: stacktest.Logger(t), MaxWaiting: 1}, projectionapi.Stores{}, tc.checks...))
			r := server{Server: srv}.do(t, http.MethodGet, "/readyz", nil)
			var got struct {
				Status string
				Failed map[string]string
			}
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("body %q: %v", r.body, err)
			}
			var failed []string
			for _, name := range []string{"consumer", "database"} {
				if got.Failed[name] != "" {
					failed = append(failed, name)
				}
			}
			wantStatus := map[int]string{200: "ready", 503: "not ready"}[tc.status]
			if r.status != tc.status || got.Status != wantStatus || !reflect.DeepEqual(failed, tc.wantFailed) {
				t.Errorf("readyz %d %s, want %d failing %v", r.status, r.body, tc.status, tc.wantFailed)
			}
		})
	}
}
