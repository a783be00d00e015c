package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ordersonkafka/orders/internal/devkit/memstore"
	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/internal/producer/httpapi"
	"github.com/ordersonkafka/orders/internal/producer/orderstore"
	"github.com/ordersonkafka/orders/migrations"
	"github.com/ordersonkafka/orders/openapi"
)

// env is order-api served for a test, on one of two stores: the in-memory
// store, for what the HTTP layer does (routing, validation, problem bodies,
// headers, If-Match, Idempotency-Key answers), or its PostgreSQL store, for
// what only PostgreSQL shows (outbox rows, an outage, a pool with no free
// connection). memstore keeps the same contract (storetest holds both to it).
type env struct {
	t     *testing.T
	srv   *httptest.Server
	store *memstore.Store // set by newEnv
	db    *pgtest.DB      // set by newPostgresEnv
}

// newEnv serves order-api on an in-memory store of its own.
func newEnv(t *testing.T) *env {
	t.Helper()
	store := memstore.New()
	srv := serve(t, httpapi.New(httpapi.Config{Logger: stacktest.Logger(t)}, store, web.Check{Name: "database", Func: store.Ping}))
	return &env{t: t, srv: srv, store: store}
}

// newPostgresEnv serves order-api on its PostgreSQL store, on a fresh
// database of its own.
func newPostgresEnv(t *testing.T) *env {
	t.Helper()
	store, db := newStore(t)
	srv := serve(t, httpapi.New(httpapi.Config{Logger: stacktest.Logger(t)}, store, web.Check{Name: "database", Func: store.Ping}))
	return &env{t: t, srv: srv, db: db}
}

// serve serves h for the test, every request and response validated against
// order-api's OpenAPI document: a mismatch fails t.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(openapitest.Load(t, openapi.OrderAPI()).Handler(t, h))
	t.Cleanup(srv.Close)
	return srv
}

// newStore is order-api's store on a fresh database of its own.
func newStore(tb testing.TB) (*orderstore.Store, *pgtest.DB) {
	tb.Helper()
	db := pgtest.MustDB(tb, migrations.Orders())
	enc, err := eventcodec.NewEncoder()
	if err != nil {
		tb.Fatal(err)
	}
	return orderstore.New(db.Pool, enc, "order-events", nil, 0), db
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func (e *env) do(method, path, body string, headers ...string) response {
	e.t.Helper()
	if body != "" {
		headers = append([]string{"Content-Type", "application/json"}, headers...)
	}
	return e.doRaw(method, path, []byte(body), headers...)
}

// count is how many rows table holds: in PostgreSQL, or what the in-memory
// store holds in its stead (its events are the outbox's rows).
func (e *env) count(table string) int {
	e.t.Helper()
	if e.db == nil {
		switch table {
		case "orders":
			return len(e.store.Orders())
		case "outbox":
			return len(e.store.Events())
		case "idempotency_keys":
			return len(e.store.IdempotencyKeys())
		}
		e.t.Fatalf("the in-memory store has no table %s", table)
	}
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

const validOrder = `{"customer_id":"c-1","currency":"EUR","items":[{"sku":"BOOK","quantity":2,"unit_price_minor":1250}]}`

func (e *env) place() map[string]any {
	e.t.Helper()
	r := e.do("POST", "/orders", validOrder)
	if r.status != http.StatusCreated {
		e.t.Fatalf("place: %d %s", r.status, r.body)
	}
	return r.json(e.t)
}

func TestPlacePayRefundAndPlaceCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/orders", validOrder)
	if r.status != http.StatusCreated {
		t.Fatalf("place: %d %s", r.status, r.body)
	}
	o := r.json(t)
	id := o["id"].(string)
	if got := r.header.Get("Location"); got != "/orders/"+id {
		t.Errorf("Location %q", got)
	}
	if r.header.Get("ETag") != `"1"` || o["status"] != "placed" || o["version"] != 1.0 || o["total_minor"] != 2500.0 {
		t.Errorf("placed order: ETag %s body %s", r.header.Get("ETag"), r.body)
	}

	steps := []struct{ action, body, status string }{
		{"pay", `{"payment_reference":"psp-1"}`, "paid"},
		{"refund", `{"reason":"damaged"}`, "refunded"},
	}
	for i, s := range steps {
		r := e.do("POST", "/orders/"+id+"/"+s.action, s.body)
		got := r.json(t)
		if r.status != 200 || got["status"] != s.status || got["version"] != float64(i+2) || r.header.Get("ETag") != fmt.Sprintf(`"%d"`, i+2) {
			t.Fatalf("%s: %d %s", s.action, r.status, r.body)
		}
	}
	got := e.do("GET", "/orders/"+id, "").json(t)
	if got["payment_reference"] != "psp-1" || got["refund_reason"] != "damaged" || got["version"] != 3.0 {
		t.Errorf("GET after refund: %v", got)
	}

	id2 := e.place()["id"].(string)
	r = e.do("POST", "/orders/"+id2+"/cancel", "")
	if c := r.json(t); r.status != 200 || c["status"] != "cancelled" || c["version"] != 2.0 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	// Every change wrote one outbox row: 3 for the first order, 2 for the second.
	if n := e.count("outbox"); n != 5 {
		t.Errorf("outbox rows = %d, want 5", n)
	}
}

func TestInvalidTransitionsAreConflictsAndChangeNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// reach each status, then try every action that is not allowed from it
	setups := map[string][]string{
		"placed":    nil,
		"paid":      {"pay"},
		"refunded":  {"pay", "refund"},
		"cancelled": {"cancel"},
	}
	refused := map[string][]string{
		"placed":    {"refund"},
		"paid":      {"pay", "cancel"},
		"refunded":  {"pay", "refund", "cancel"},
		"cancelled": {"pay", "refund", "cancel"},
	}
	for status, path := range setups {
		for _, action := range refused[status] {
			t.Run(action+" of a "+status+" order is refused", func(t *testing.T) {
				id := e.place()["id"].(string)
				for _, a := range path {
					if r := e.do("POST", "/orders/"+id+"/"+a, ""); r.status != 200 {
						t.Fatalf("setup %s: %d", a, r.status)
					}
				}
				before := e.count("outbox")
				r := e.do("POST", "/orders/"+id+"/"+action, "")
				if r.status != http.StatusConflict || r.header.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("got %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
				}
				p := r.json(t)
				if p["status"] != 409.0 || !strings.Contains(p["detail"].(string), status) {
					t.Errorf("problem %v does not name the status %s", p, status)
				}
				if after := e.count("outbox"); after != before {
					t.Errorf("outbox rows %d → %d", before, after)
				}
				if g := e.do("GET", "/orders/"+id, "").json(t); g["status"] != status || g["version"] != float64(1+len(path)) {
					t.Errorf("order changed: %v", g)
				}
			})
		}
	}
}

func TestBadInputIsRefusedPreciselyAndWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	huge := `{"customer_id":"c","currency":"EUR","items":[{"sku":"` + strings.Repeat("x", 1<<20) + `","quantity":1,"unit_price_minor":1}]}`
	var manyItems []string
	for range 101 {
		manyItems = append(manyItems, `{"sku":"a","quantity":1,"unit_price_minor":1}`)
	}
	cases := []struct {
		name, body, contentType string
		status                  int
		field                   string // for 422: a field the errors must name
	}{
		{"malformed JSON", `{"customer_id":`, "application/json", 400, ""},
		{"not an object", `[1,2]`, "application/json", 400, ""},
		{"unknown field", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":1}],"coupon":"x"}`, "application/json", 400, ""},
		{"wrong type", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":"one","unit_price_minor":1}]}`, "application/json", 400, ""},
		{"trailing data", validOrder + `{}`, "application/json", 400, ""},
		{"empty body", ``, "application/json", 400, ""},
		{"body over 1 MiB", huge, "application/json", 413, ""},
		{"wrong content type", validOrder, "text/plain", 415, ""},
		{"missing customer", `{"currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":1}]}`, "application/json", 422, "customer_id"},
		{"missing item price", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1}]}`, "application/json", 422, "items[0].unit_price_minor"},
		{"zero quantity", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":0,"unit_price_minor":1}]}`, "application/json", 422, "items[0].quantity"},
		{"negative price", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":-5}]}`, "application/json", 422, "items[0].unit_price_minor"},
		{"lower-case currency", `{"customer_id":"c","currency":"eur","items":[{"sku":"a","quantity":1,"unit_price_minor":1}]}`, "application/json", 422, "currency"},
		{"four-letter currency", `{"customer_id":"c","currency":"EURO","items":[{"sku":"a","quantity":1,"unit_price_minor":1}]}`, "application/json", 422, "currency"},
		{"no items", `{"customer_id":"c","currency":"EUR","items":[]}`, "application/json", 422, "items"},
		{"too many items", `{"customer_id":"c","currency":"EUR","items":[` + strings.Join(manyItems, ",") + `]}`, "application/json", 422, "items"},
		{"total overflows int64", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":2,"unit_price_minor":9223372036854775807}]}`, "application/json", 422, "items"},
		{"sum overflows int64", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":9223372036854775807},{"sku":"b","quantity":1,"unit_price_minor":1}]}`, "application/json", 422, "items"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.srv.URL+"/orders", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			var p struct {
				Type, Title, Detail string
				Status              int
				Errors              []struct{ Field, Detail string }
			}
			if err := json.Unmarshal(b, &p); err != nil || p.Status != tc.status || p.Title == "" || p.Type == "" || p.Detail == "" {
				t.Fatalf("problem body %s (%v)", b, err)
			}
			if tc.field != "" {
				found := false
				for _, fe := range p.Errors {
					found = found || fe.Field == tc.field
				}
				if !found {
					t.Errorf("errors %+v do not name %s", p.Errors, tc.field)
				}
			}
		})
	}
	for _, table := range []string{"orders", "outbox", "idempotency_keys"} {
		if n := e.count(table); n != 0 {
			t.Errorf("%s has %d rows after refused requests", table, n)
		}
	}
}

func TestPathAndHeaderErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.place()["id"].(string)
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
	}{
		{"malformed UUID", "GET", "/orders/not-a-uuid", "", nil, 400},
		{"malformed UUID on pay", "POST", "/orders/1234/pay", "", nil, 400},
		{"unknown order", "GET", "/orders/0193f2a0-0000-7000-8000-000000000000", "", nil, 404},
		{"unknown order on cancel", "POST", "/orders/0193f2a0-0000-7000-8000-000000000000/cancel", "", nil, 404},
		{"malformed If-Match", "POST", "/orders/" + id + "/pay", "", []string{"If-Match", "one"}, 400},
		{"stale If-Match", "POST", "/orders/" + id + "/pay", "", []string{"If-Match", `"7"`}, 412},
		{"reason on pay", "POST", "/orders/" + id + "/pay", `{"reason":"x"}`, nil, 422},
		{"unknown field on pay", "POST", "/orders/" + id + "/pay", `{"amount":1}`, nil, 400},
		{"bad Idempotency-Key", "POST", "/orders", validOrder, []string{"Idempotency-Key", "has space"}, 400},
		{"bad list limit", "GET", "/orders?limit=1000", "", nil, 400},
		{"list limit with a plus sign", "GET", "/orders?limit=%2B5", "", nil, 400},
		{"list limit with a plus, read as a space", "GET", "/orders?limit=+5", "", nil, 400},
		{"list limit with a leading zero", "GET", "/orders?limit=05", "", nil, 400},
		{"bad list status", "GET", "/orders?status=shipped", "", nil, 400},
		{"bad cursor", "GET", "/orders?cursor=not-a-cursor!", "", nil, 400},
		{"method not allowed", "DELETE", "/orders/" + id, "", nil, 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.body, tc.headers...)
			if r.status != tc.status || r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("got %d %q %s, want %d problem", r.status, r.header.Get("Content-Type"), r.body, tc.status)
			}
		})
	}
	// None of the above changed the order or wrote an event.
	if g := e.do("GET", "/orders/"+id, "").json(t); g["version"] != 1.0 || e.count("outbox") != 1 || e.count("orders") != 1 {
		t.Errorf("refused requests wrote something: %v, outbox %d", g, e.count("outbox"))
	}
}

func TestIfMatchAndETag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.place()["id"].(string)
	if r := e.do("GET", "/orders/"+id, "", "If-None-Match", `"1"`); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match current: %d", r.status)
	}
	if r := e.do("POST", "/orders/"+id+"/pay", "", "If-Match", `"1"`); r.status != 200 || r.header.Get("ETag") != `"2"` {
		t.Fatalf("If-Match current: %d %s", r.status, r.body)
	}
	r := e.do("POST", "/orders/"+id+"/refund", "", "If-Match", `"1"`)
	if r.status != http.StatusPreconditionFailed {
		t.Fatalf("If-Match stale: %d %s", r.status, r.body)
	}
	if g := e.do("GET", "/orders/"+id, ""); g.json(t)["status"] != "paid" || g.header.Get("ETag") != `"2"` {
		t.Errorf("stale If-Match changed the order: %s", g.body)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.do("POST", "/orders", validOrder, "Idempotency-Key", "k-1")
	if first.status != 201 {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	// The same request, formatted differently, after the order moved on.
	id := first.json(t)["id"].(string)
	e.do("POST", "/orders/"+id+"/pay", "")
	reformatted := "{\n \"items\": [{\"unit_price_minor\": 1250, \"sku\": \"BOOK\", \"quantity\": 2}],\n \"currency\": \"EUR\", \"customer_id\": \"c-1\"}"
	replay := e.do("POST", "/orders", reformatted, "Idempotency-Key", "k-1")
	if replay.status != 201 || !bytes.Equal(replay.body, first.body) || replay.header.Get("Location") != first.header.Get("Location") ||
		replay.header.Get("ETag") != `"1"` || replay.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %v %s\nfirst: %s", replay.status, replay.header, replay.body, first.body)
	}
	conflict := e.do("POST", "/orders", strings.Replace(validOrder, "c-1", "c-2", 1), "Idempotency-Key", "k-1")
	if conflict.status != 422 || conflict.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("conflict: %d %s", conflict.status, conflict.body)
	}
	if n := e.count("orders"); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}
	if n := e.count("outbox"); n != 2 { // placed + paid
		t.Errorf("outbox = %d, want 2", n)
	}
}

func TestConcurrentIdempotentPlacesCreateOneOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var wg sync.WaitGroup
	bodies := make([][]byte, 10)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", e.srv.URL+"/orders", strings.NewReader(validOrder))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "same")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 201 {
				t.Errorf("status %d", resp.StatusCode)
			}
			bodies[i], _ = io.ReadAll(resp.Body)
		}()
	}
	wg.Wait()
	for _, b := range bodies[1:] {
		if !bytes.Equal(b, bodies[0]) {
			t.Fatalf("responses differ:\n%s\n%s", b, bodies[0])
		}
	}
	if e.count("orders") != 1 || e.count("outbox") != 1 {
		t.Errorf("orders %d outbox %d, want 1 and 1", e.count("orders"), e.count("outbox"))
	}
}

func TestConcurrentPayAndCancelOneWins(t *testing.T) {
	t.Parallel()
	e := newPostgresEnv(t)
	id := e.place()["id"].(string)
	const n = 20
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			action := "pay"
			if i%2 == 1 {
				action = "cancel"
			}
			req, _ := http.NewRequest("POST", e.srv.URL+"/orders/"+id+"/"+action, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	wins := 0
	for _, s := range statuses {
		switch s {
		case 200:
			wins++
		case 409:
		default:
			t.Errorf("unexpected status %d", s)
		}
	}
	if wins != 1 {
		t.Fatalf("%d requests won, want exactly 1 (%v)", wins, statuses)
	}
	g := e.do("GET", "/orders/"+id, "").json(t)
	if g["version"] != 2.0 {
		t.Errorf("version %v, want 2", g["version"])
	}
	// Gap-free: exactly one event per version, in outbox id order.
	rows, err := e.db.Pool.Query(context.Background(), `SELECT headers->>'event_type' FROM outbox WHERE message_key = $1 ORDER BY id`, []byte(id))
	if err != nil {
		t.Fatal(err)
	}
	types, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := "PLACED," + map[any]string{"paid": "PAID", "cancelled": "CANCELLED"}[g["status"]]
	if strings.Join(types, ",") != want {
		t.Errorf("events %v, want %s", types, want)
	}
}

func TestListPaginatesWithoutGapsAndFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ids []string
	for i := range 7 {
		body := strings.Replace(validOrder, "c-1", fmt.Sprintf("c-%d", i%2), 1)
		r := e.do("POST", "/orders", body)
		ids = append(ids, r.json(t)["id"].(string))
	}
	e.do("POST", "/orders/"+ids[0]+"/pay", "")
	var seen []string
	cursor := ""
	for page := 0; page < 10; page++ {
		r := e.do("GET", "/orders?limit=3&cursor="+cursor, "")
		var l struct {
			Items      []struct{ ID string }
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &l); err != nil || r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		for _, it := range l.Items {
			seen = append(seen, it.ID)
		}
		if l.NextCursor == "" {
			break
		}
		cursor = l.NextCursor
	}
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Fatalf("pages gave %v, want %v", seen, ids)
	}
	var byCustomer struct {
		Items []struct {
			CustomerID string `json:"customer_id"`
		}
	}
	_ = json.Unmarshal(e.do("GET", "/orders?customer_id=c-1", "").body, &byCustomer)
	if len(byCustomer.Items) != 3 {
		t.Errorf("customer c-1 has %d orders, want 3", len(byCustomer.Items))
	}
	var paid struct{ Items []struct{ ID string } }
	_ = json.Unmarshal(e.do("GET", "/orders?status=paid", "").body, &paid)
	if len(paid.Items) != 1 || paid.Items[0].ID != ids[0] {
		t.Errorf("paid orders %v, want [%s]", paid.Items, ids[0])
	}
}

func TestMetadataHeadersReachTheOutbox(t *testing.T) {
	t.Parallel()
	e := newPostgresEnv(t)
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := e.do("POST", "/orders", validOrder, "X-Correlation-ID", "corr-7", "traceparent", tp)
	if r.header.Get("X-Correlation-ID") != "corr-7" {
		t.Errorf("correlation id not echoed: %v", r.header)
	}
	var h map[string]string
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT headers FROM outbox").Scan(&h); err != nil {
		t.Fatal(err)
	}
	if h["traceparent"] != tp || h["correlation_id"] != "corr-7" || h["event_type"] != "PLACED" || len(h["event_id"]) != 36 {
		t.Errorf("outbox headers %v", h)
	}
	// Without them, both are made up, and the traceparent is valid W3C.
	e.do("POST", "/orders", validOrder)
	var tp2 string
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT headers->>'traceparent' FROM outbox ORDER BY id DESC LIMIT 1").Scan(&tp2); err != nil {
		t.Fatal(err)
	}
	if len(tp2) != 55 || !strings.HasPrefix(tp2, "00-") || tp2 == tp {
		t.Errorf("generated traceparent %q", tp2)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := e.do("GET", "/healthz", ""); r.status != 200 {
		t.Errorf("healthz %d", r.status)
	}
	if r := e.do("GET", "/readyz", ""); r.status != 200 {
		t.Errorf("readyz %d %s", r.status, r.body)
	}
	e.store.Fail(fmt.Errorf("%w: the test's outage", order.ErrUnavailable)) // the database is gone for this service
	r := e.do("GET", "/readyz", "")
	if r.status != 503 || !strings.Contains(string(r.body), "database") {
		t.Errorf("readyz without database: %d %s", r.status, r.body)
	}
}
