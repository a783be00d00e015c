package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/order"
)

// TestEveryTransitionHasARoute walks the state machine through the API:
// for every transition of order.Transitions, an order is brought to its
// From status by POSTing the actions that lead there, then POST
// /orders/{id}/{action} must answer 200 with the To status. A new action
// without its route answers 404 or 405 here.
func TestEveryTransitionHasARoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	defer func() { e.t = t }()
	for _, tr := range order.Standard.Transitions() {
		t.Run(string(tr.Action)+" of a "+string(tr.From)+" order", func(t *testing.T) {
			e.t = t // the env's helpers fail this subtest
			id := e.place()["id"].(string)
			for _, a := range append(pathTo(t, tr.From), tr.Action) {
				r := e.do("POST", "/orders/"+id+"/"+string(a), "")
				if r.status == http.StatusNotFound || r.status == http.StatusMethodNotAllowed {
					t.Fatalf("POST /orders/{id}/%s on an existing order: %d %s: no route for action %s", a, r.status, r.body, a)
				}
				if r.status != http.StatusOK {
					t.Fatalf("POST /orders/{id}/%s: %d %s", a, r.status, r.body)
				}
			}
			if got := e.do("GET", "/orders/"+id, "").json(t)["status"]; got != string(tr.To) {
				t.Errorf("after %s the order is %v, want %s", tr.Action, got, tr.To)
			}
		})
	}
}

// TestEveryStatusIsAListFilter: GET /orders?status= accepts every status of
// the domain, and the refusal of an unknown one names them all.
func TestEveryStatusIsAListFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, s := range order.Standard.Statuses() {
		if r := e.do("GET", "/orders?status="+string(s), ""); r.status != http.StatusOK {
			t.Errorf("GET /orders?status=%s: %d %s", s, r.status, r.body)
		}
	}
	p := wantProblem(t, e.do("GET", "/orders?status=no-such-status", ""), http.StatusBadRequest, "/problems/malformed-request")
	for _, s := range order.Standard.Statuses() {
		if !strings.Contains(p.Detail, string(s)) {
			t.Errorf("the refusal of an unknown status does not name %s: %q", s, p.Detail)
		}
	}
}

// pathTo returns the actions that take a placed order to s.
func pathTo(t *testing.T, s order.Status) []order.Action {
	t.Helper()
	p, ok := order.Standard.PathTo(s)
	if !ok {
		t.Fatalf("no transition leads to %s", s)
	}
	return p
}
