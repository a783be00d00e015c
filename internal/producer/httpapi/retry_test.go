package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/producer/httpapi"
)

// failingStore fails every write with an error the API does not know.
type failingStore struct{ order.Store }

var errUnknown = errors.New("something nobody foresaw")

func (failingStore) Create(context.Context, order.Order, order.Event, *order.Idempotency) ([]byte, bool, error) {
	return nil, false, errUnknown
}

func (failingStore) Update(context.Context, uuid.UUID, order.VersionMatch, func(*order.Order) (order.Event, error)) (order.Order, error) {
	return order.Order{}, errUnknown
}

// The 500 of a request that failed for an unknown reason says how to retry
// it safely, and only what is true of its route: POST /orders honours
// Idempotency-Key, a change ignores it and is made safe by If-Match.
func TestInternalErrorSaysHowToRetryThisRoute(t *testing.T) {
	t.Parallel()
	srv := serve(t, httpapi.New(httpapi.Config{Logger: stacktest.Logger(t)}, failingStore{}))
	e := &env{t: t, srv: srv}
	p := wantProblem(t, e.do("POST", "/orders", validOrder, "Idempotency-Key", "k-1"), http.StatusInternalServerError, "/problems/internal")
	if !strings.Contains(p.Detail, "Idempotency-Key") {
		t.Errorf("POST /orders: %q does not say to retry with the same Idempotency-Key", p.Detail)
	}
	for _, a := range order.Standard.Actions() {
		p := wantProblem(t, e.do("POST", "/orders/"+uuid.NewString()+"/"+string(a), ""), http.StatusInternalServerError, "/problems/internal")
		if strings.Contains(p.Detail, "Idempotency-Key") || !strings.Contains(p.Detail, "If-Match") {
			t.Errorf("POST /orders/{id}/%s: %q promises what the route does not do", a, p.Detail)
		}
	}
}

// The 503 of a request the store could not serve says how to retry it, and
// only what is true of its route: POST /orders with the same
// Idempotency-Key, a change (pay, cancel, refund) with If-Match, which it
// honours (it ignores Idempotency-Key), a read as it is.
func TestUnavailableSaysHowToRetryThisRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.place()["id"].(string)
	e.store.Fail(fmt.Errorf("%w: the test's outage", order.ErrUnavailable))
	p := wantProblem(t, e.do("POST", "/orders", validOrder, "Idempotency-Key", "k-1"), http.StatusServiceUnavailable, "/problems/unavailable")
	if !strings.Contains(p.Detail, "Idempotency-Key") || strings.Contains(p.Detail, "If-Match") {
		t.Errorf("POST /orders: %q does not say to retry with the same Idempotency-Key", p.Detail)
	}
	for _, a := range order.Standard.Actions() {
		p := wantProblem(t, e.do("POST", "/orders/"+id+"/"+string(a), ""), http.StatusServiceUnavailable, "/problems/unavailable")
		if strings.Contains(p.Detail, "Idempotency-Key") || strings.Contains(p.Detail, "POST /orders") || !strings.Contains(p.Detail, "If-Match") {
			t.Errorf("POST /orders/{id}/%s: %q promises what the route does not do", a, p.Detail)
		}
	}
	p = wantProblem(t, e.do("GET", "/orders/"+id, ""), http.StatusServiceUnavailable, "/problems/unavailable")
	if strings.Contains(p.Detail, "Idempotency-Key") || strings.Contains(p.Detail, "If-Match") {
		t.Errorf("GET /orders/{id}: %q asks for what a read does not need", p.Detail)
	}
}
