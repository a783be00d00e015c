package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ordersonkafka/orders/internal/devkit/memstore"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/producer/httpapi"
)

// What a client sees when it sends what no well-behaved client sends, or
// when PostgreSQL is away.

// problemBody is an RFC 9457 body as a client reads it.
type problemBody struct {
	Type, Title, Detail, Instance string
	Status                        int
	Errors                        []struct{ Field, Detail string }
}

// wantProblem fails unless r is a problem+json of status and type.
func wantProblem(t *testing.T, r response, status int, typ string) problemBody {
	t.Helper()
	if r.status != status || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %q %.300s, want %d problem", r.status, r.header.Get("Content-Type"), r.body, status)
	}
	var p problemBody
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %.300q: %v", r.body, err)
	}
	if p.Status != status || p.Type != typ || p.Title == "" || p.Detail == "" {
		t.Fatalf("problem %+v, want status %d type %s", p, status, typ)
	}
	return p
}

// doRaw sends body as is, with the headers given (Content-Type included); a
// header given twice is sent twice.
func (e *env) doRaw(method, path string, body []byte, headers ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// written counts what refused requests must not have written.
func (e *env) written() string {
	e.t.Helper()
	return fmt.Sprintf("orders %d, outbox %d, idempotency keys %d", e.count("orders"), e.count("outbox"), e.count("idempotency_keys"))
}

// Text PostgreSQL cannot hold (NUL) is the client's error, a
// 422 naming the field, and writes nothing; it never reaches PostgreSQL as
// a 500 that promises a retry would work.
func TestTextWithNULIsUnprocessableAndWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	paid := e.place()["id"].(string)
	if r := e.do("POST", "/orders/"+paid+"/pay", ""); r.status != 200 {
		t.Fatalf("pay: %d %s", r.status, r.body)
	}
	placed := e.place()["id"].(string)
	item := func(sku string) string { return `{"sku":"` + sku + `","quantity":1,"unit_price_minor":1}` }
	cases := []struct {
		name, path, body, field string
	}{
		{"NUL in customer_id", "/orders", `{"customer_id":"c\u0000","currency":"EUR","items":[` + item("a") + `]}`, "customer_id"},
		{"customer_id that is only NUL", "/orders", `{"customer_id":"\u0000","currency":"EUR","items":[` + item("a") + `]}`, "customer_id"},
		{"NUL in a sku", "/orders", `{"customer_id":"c","currency":"EUR","items":[` + item("a") + `,` + item(`b\u0000`) + `]}`, "items[1].sku"},
		{"NUL in currency", "/orders", `{"customer_id":"c","currency":"EU\u0000","items":[` + item("a") + `]}`, "currency"},
		{"NUL in payment_reference", "/orders/" + placed + "/pay", `{"payment_reference":"psp\u0000-1"}`, "payment_reference"},
		{"NUL in a cancel reason", "/orders/" + placed + "/cancel", `{"reason":"\u0000"}`, "reason"},
		{"NUL in a refund reason", "/orders/" + paid + "/refund", `{"reason":"damaged\u0000"}`, "reason"},
	}
	before := e.written()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := wantProblem(t, e.do("POST", tc.path, tc.body, "Idempotency-Key", "k-"+tc.field), 422, "/problems/validation")
			found := false
			for _, f := range p.Errors {
				found = found || f.Field == tc.field
			}
			if !found {
				t.Errorf("errors %+v do not name %s", p.Errors, tc.field)
			}
		})
	}
	if after := e.written(); after != before {
		t.Errorf("refused requests wrote: %s → %s", before, after)
	}
	for id, version := range map[string]float64{paid: 2, placed: 1} {
		if g := e.do("GET", "/orders/"+id, "").json(t); g["version"] != version {
			t.Errorf("order %s changed: %v", id, g)
		}
	}
}

// A query or path parameter that is not text is 400 and never reaches the
// store (PostgreSQL would refuse it as an error): the answers below come
// with the store failing every call.
func TestParametersThatAreNotTextAreBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.place()["id"].(string)
	e.store.Fail(errors.New("a request reached the store")) // any request that reached the store would fail now
	for _, path := range []string{
		"/orders?customer_id=%00",
		"/orders?customer_id=%ff",
		"/orders?customer_id=%c3",
		"/orders?customer_id=c%00-1",
		"/orders?status=%00",
		"/orders?status=paid%ff",
		"/orders?cursor=%ff",
		"/orders?limit=%00",
		"/orders?limit=10&customer_id=%e2%82",
		"/orders?%ff=1",
		"/orders?customer_id=%zz",
		"/orders/%00",
		"/orders/" + id + "%00",
		"/orders/%ff%fe/pay",
		"/orders/" + id + "?x=%c3%28",
	} {
		t.Run(path, func(t *testing.T) {
			method := "GET"
			if strings.HasSuffix(path, "/pay") {
				method = "POST"
			}
			wantProblem(t, e.do(method, path, ""), 400, "/problems/malformed-request")
		})
	}
}

// A body is UTF-8 JSON or it is refused — before decoding, which
// would silently replace bad bytes with U+FFFD — and a charset other than
// UTF-8 is 415.
func TestBodiesThatAreNotUTF8AreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.place()["id"].(string)
	before := e.written()
	order := func(customer string) []byte {
		return []byte(`{"customer_id":"` + customer + `","currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":1}]}`)
	}
	cases := []struct {
		name, path string
		body       []byte
		headers    []string
		status     int
		typ        string
	}{
		{"an invalid byte in customer_id", "/orders", order("c\xff"), nil, 400, "/problems/malformed-request"},
		{"22 bytes of 0xff, not 'over 64 bytes'", "/orders", order(strings.Repeat("\xff", 22)), nil, 400, "/problems/malformed-request"},
		{"a truncated sequence", "/orders", order("caf\xc3"), nil, 400, "/problems/malformed-request"},
		{"an encoded surrogate", "/orders", order("\xed\xa0\x80"), nil, 400, "/problems/malformed-request"},
		{"an overlong encoding", "/orders", order("\xc0\xaf"), nil, 400, "/problems/malformed-request"},
		{"an invalid byte outside a string", "/orders", append(order("c"), 0xff), nil, 400, "/problems/malformed-request"},
		{"an invalid byte in a reason", "/orders/" + id + "/cancel", []byte("{\"reason\":\"\xfe\"}"), nil, 400, "/problems/malformed-request"},
		{"charset iso-8859-1", "/orders", order("caf\xe9"), []string{"Content-Type", "application/json; charset=iso-8859-1"}, 415, "/problems/unsupported-media-type"},
		{"charset latin1 on valid UTF-8", "/orders", order("c"), []string{"Content-Type", "application/json; charset=latin1"}, 415, "/problems/unsupported-media-type"},
		{"charset utf-16", "/orders", order("c"), []string{"Content-Type", "application/json; charset=utf-16"}, 415, "/problems/unsupported-media-type"},
		{"charset on a change", "/orders/" + id + "/cancel", []byte(`{"reason":"x"}`), []string{"Content-Type", "application/json;charset=windows-1252"}, 415, "/problems/unsupported-media-type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			headers := tc.headers
			if headers == nil {
				headers = []string{"Content-Type", "application/json"}
			}
			wantProblem(t, e.doRaw("POST", tc.path, tc.body, append(headers, "Idempotency-Key", "same-key")...), tc.status, tc.typ)
		})
	}
	if after := e.written(); after != before {
		t.Errorf("refused requests wrote: %s → %s", before, after)
	}
	if g := e.do("GET", "/orders/"+id, "").json(t); g["status"] != "placed" {
		t.Errorf("order changed: %v", g)
	}
	t.Run("the same key with two bodies invalid differently is not a replay", func(t *testing.T) {
		a := e.doRaw("POST", "/orders", order("\xff\xfe"), "Content-Type", "application/json", "Idempotency-Key", "k-2")
		b := e.doRaw("POST", "/orders", order("\xfe\xff"), "Content-Type", "application/json", "Idempotency-Key", "k-2")
		wantProblem(t, a, 400, "/problems/malformed-request")
		wantProblem(t, b, 400, "/problems/malformed-request")
	})
	t.Run("UTF-8 however it is spelled, or no charset, is accepted", func(t *testing.T) {
		for i, ct := range []string{"application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8", `application/json; charset="utf-8"`} {
			r := e.doRaw("POST", "/orders", order(fmt.Sprintf("café-%d", i)), "Content-Type", ct)
			if r.status != 201 {
				t.Fatalf("%s: %d %s", ct, r.status, r.body)
			}
			if got := r.json(t)["customer_id"]; got != fmt.Sprintf("café-%d", i) {
				t.Errorf("%s: customer_id %q", ct, got)
			}
		}
	})
}

// PostgreSQL unreachable is 503 with Retry-After and its own
// problem type on every route that needs it, /readyz says not ready, and
// everything works again once it is back.
func TestDatabaseUnavailableIs503WithRetryAfter(t *testing.T) {
	t.Parallel()
	e := newPostgresEnv(t)
	id := e.place()["id"].(string)
	restart := e.db.Stop(t)

	requests := []struct{ name, method, path, body string }{
		{"get", "GET", "/orders/" + id, ""},
		{"list", "GET", "/orders?customer_id=c-1", ""},
		{"place", "POST", "/orders", validOrder},
		{"pay", "POST", "/orders/" + id + "/pay", `{"payment_reference":"psp-1"}`},
		{"cancel", "POST", "/orders/" + id + "/cancel", ""},
	}
	for range 2 { // more requests than the pool has (dead) connections
		for _, rq := range requests {
			t.Run(rq.name+" while the database is down", func(t *testing.T) {
				r := e.do(rq.method, rq.path, rq.body, "Idempotency-Key", "k-1")
				p := wantProblem(t, r, 503, "/problems/unavailable")
				if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
					t.Errorf("Retry-After %q, want a number of seconds", r.header.Get("Retry-After"))
				}
				if strings.Contains(p.Detail, "ALLOW") || strings.Contains(p.Detail, "57P01") || strings.Contains(p.Detail, "terminat") {
					t.Errorf("the detail leaks the cause: %s", p.Detail)
				}
			})
		}
	}
	if r := e.do("GET", "/readyz", ""); r.status != 503 || !strings.Contains(string(r.body), "database") {
		t.Errorf("readyz during the outage: %d %s", r.status, r.body)
	}

	restart()
	stacktest.WaitFor(t, "the order to be readable again", 15*time.Second, func() bool { return e.do("GET", "/orders/"+id, "").status == 200 })
	if r := e.do("POST", "/orders/"+id+"/pay", `{"payment_reference":"psp-1"}`); r.status != 200 || r.json(t)["version"] != 2.0 {
		t.Errorf("pay after the outage: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/orders", validOrder, "Idempotency-Key", "k-1"); r.status != 201 {
		t.Errorf("place after the outage: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/orders", ""); r.status != 200 {
		t.Errorf("list after the outage: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/readyz", ""); r.status != 200 {
		t.Errorf("readyz after the outage: %d %s", r.status, r.body)
	}
	// Nothing the outage refused was written: 2 orders, 3 events.
	if got := e.written(); got != "orders 2, outbox 3, idempotency keys 1" {
		t.Errorf("after the outage: %s", got)
	}
}

// A pool that cannot hand out a connection does not hold a
// request until the client gives up: after pgdb.CallTimeout it is 503.
func TestNoFreeConnectionIs503WithinTheBound(t *testing.T) {
	t.Parallel()
	e := newPostgresEnv(t)
	id := e.place()["id"].(string)
	ctx := context.Background()
	for range e.db.Pool.Stat().MaxConns() { // every connection busy elsewhere
		c, err := e.db.Pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
	}
	r := e.do("GET", "/orders/"+id, "")
	wantProblem(t, r, 503, "/problems/unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

// Made-up methods are one "_OTHER" series, span name and log
// value, however many a client invents.
func TestMadeUpMethodsAreCountedAsOther(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	reg := telemetry.NewRegistry()
	logs := stacktest.NewLog(t)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(context.Background()) //nolint:errcheck
	srv := serve(t, httpapi.New(httpapi.Config{
		Logger:     slog.New(slog.NewJSONHandler(logs, nil)),
		Tracer:     tp.Tracer("test"),
		Middleware: []func(http.Handler) http.Handler{telemetry.NewHTTPMetrics(reg).Middleware},
		Metrics:    telemetry.MetricsHandler(reg),
	}, store))
	e := &env{t: t, srv: srv, store: store}
	id := e.place()["id"].(string)

	methods := map[string]bool{}
	for i := range 50 {
		var b [6]byte
		_, _ = rand.Read(b[:])
		m := "M" + strings.ToUpper(hex.EncodeToString(b[:]))
		if i == 0 {
			m = strings.Repeat("LONG", 100)
		}
		methods[m] = true
		path := "/orders"
		if i%2 == 1 {
			path = "/orders/" + id
		}
		if r := e.do(m, path, ""); r.status != 405 {
			t.Fatalf("%s %s: %d", m, path, r.status)
		}
	}
	metrics := string(e.do("GET", "/metrics", "").body)
	labels := regexp.MustCompile(`(?m)^http_request_duration_seconds_count\{method="([^"]*)"`).FindAllStringSubmatch(metrics, -1)
	other := 0
	for _, l := range labels {
		if methods[l[1]] {
			t.Fatalf("method %.40s is a label value", l[1])
		}
		if l[1] == "_OTHER" {
			other++
		}
	}
	if other != 1 {
		t.Errorf("%d series with method _OTHER, want 1:\n%s", other, metrics)
	}
	for _, s := range spans.GetSpans() {
		if methods[strings.Fields(s.Name)[0]] {
			t.Errorf("span named %.40s", s.Name)
		}
	}
	for line := range strings.Lines(logs.String()) {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		if m, _ := l["method"].(string); methods[m] {
			t.Errorf("log line with method %.40s", m)
		}
		o, _ := l["method_original"].(string)
		if len(o) > 40 {
			t.Errorf("method_original of %d bytes logged", len(o))
		}
		// As sent (the log escapes it), not quoted a second time.
		if o != "" && !methods[o] && !strings.HasPrefix(strings.Repeat("LONG", 100), strings.TrimSuffix(o, "…")) {
			t.Errorf("method_original %q is not a method sent", o)
		}
	}

	// A path no route matches logs route=unmatched, as its metrics say,
	// not an empty route; a matched one logs its pattern.
	if r := e.do("GET", "/no/such/route", ""); r.status != 404 {
		t.Fatalf("GET /no/such/route: %d", r.status)
	}
	routes := map[string]string{}
	for line := range strings.Lines(logs.String()) {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		if route, ok := l["route"].(string); ok && l["method"] == "GET" {
			routes[route] = route
		}
	}
	if _, ok := routes["unmatched"]; !ok {
		t.Errorf("no log line with route=unmatched for GET /no/such/route; GET routes logged: %v", routes)
	}
	if _, ok := routes[""]; ok {
		t.Error("a log line with an empty route")
	}
	if _, ok := routes["/metrics"]; !ok {
		t.Errorf("no log line with route=/metrics; GET routes logged: %v", routes)
	}
}

// Error details speak JSON, never Go.
func TestTypeErrorsSpeakJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.place()["id"].(string)
	cases := []struct{ name, path, body, want string }{
		{"items an object", "/orders", `{"customer_id":"c","currency":"EUR","items":{}}`, "must be an array"},
		{"an item an array", "/orders", `{"customer_id":"c","currency":"EUR","items":[[]]}`, "must be an object"},
		{"the body an array", "/orders", `[{"customer_id":"c"}]`, "must be an object"},
		{"the body a string", "/orders", `"order"`, "must be an object"},
		{"customer_id a number", "/orders", `{"customer_id":7,"currency":"EUR","items":[]}`, "must be a string"},
		{"quantity a string", "/orders", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":"1","unit_price_minor":1}]}`, "must be an integer"},
		{"quantity a fraction", "/orders", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1.5,"unit_price_minor":1}]}`, "must be an integer"},
		{"quantity beyond 32 bits", "/orders", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":4294967296,"unit_price_minor":1}]}`, "must be an integer"},
		{"price beyond 64 bits", "/orders", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":1e30}]}`, "must be an integer"},
		{"a reason an object", "/orders/" + id + "/cancel", `{"reason":{}}`, "must be a string"},
		{"a change body an array", "/orders/" + id + "/cancel", `[]`, "must be an object"},
	}
	goSpeak := regexp.MustCompile(`httpapi|itemJSON|placeRequest|changeRequest|int32|int64|\[\]|\*string|struct|Go `)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := wantProblem(t, e.do("POST", tc.path, tc.body), 400, "/problems/malformed-request")
			if !strings.Contains(p.Detail, tc.want) || goSpeak.MatchString(p.Detail) {
				t.Errorf("detail %q, want %q and no Go", p.Detail, tc.want)
			}
		})
	}
}

// A long path is echoed at most once, cut, whatever the error.
func TestLongInputIsEchoedOnceAndCut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	long := strings.Repeat("a", 100<<10)
	cases := []struct {
		name, method, path string
		status             int
	}{
		{"a long order id", "GET", "/orders/" + long, 400},
		{"a long order id on pay", "POST", "/orders/" + long + "/pay", 400},
		{"a long unknown path", "GET", "/" + long, 404},
		{"a long path with a method not allowed", "DELETE", "/orders/" + long, 405},
		{"a long list status", "GET", "/orders?status=" + long, 400},
		{"a long list limit", "GET", "/orders?limit=" + long, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, "")
			p := wantProblem(t, r, tc.status, map[int]string{400: "/problems/malformed-request", 404: "/problems/not-found", 405: "/problems/method-not-allowed"}[tc.status])
			if len(r.body) > 2048 {
				t.Errorf("a %d-byte problem body", len(r.body))
			}
			run := strings.Repeat("a", 40)
			if n := strings.Count(string(r.body), `"`+run) + strings.Count(string(r.body), "/"+run); n > 1 {
				t.Errorf("the input is echoed %d times: detail %q instance %q", n, p.Detail, p.Instance)
			}
			if p.Instance == "" || !strings.HasPrefix(tc.path, p.Instance) {
				t.Errorf("instance %q is not the start of the path", p.Instance)
			}
		})
	}
}

// A body with a key twice, or a key that only matches a field
// name case-insensitively, is 400: encoding/json would take the last value
// and the wrong-case name silently.
func TestDuplicateAndWrongCaseKeysAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.place()["id"].(string)
	before := e.written()
	item := `{"sku":"a","quantity":1,"unit_price_minor":1}`
	cases := []struct{ name, path, body, want string }{
		{"customer_id twice", "/orders", `{"customer_id":"a","currency":"EUR","items":[` + item + `],"customer_id":"b"}`, "customer_id"},
		{"customer_id twice, once escaped", "/orders", `{"customer_id":"a","customer\u005fid":"b","currency":"EUR","items":[` + item + `]}`, "customer_id"},
		{"items twice", "/orders", `{"customer_id":"a","currency":"EUR","items":[` + item + `],"items":[]}`, "items"},
		{"a sku twice in the second item", "/orders", `{"customer_id":"a","currency":"EUR","items":[` + item + `,{"sku":"a","sku":"b","quantity":1,"unit_price_minor":1}]}`, "sku"},
		{"Customer_ID", "/orders", `{"Customer_ID":"a","currency":"EUR","items":[` + item + `]}`, "Customer_ID"},
		{"CURRENCY", "/orders", `{"customer_id":"a","CURRENCY":"EUR","items":[` + item + `]}`, "CURRENCY"},
		{"Items", "/orders", `{"customer_id":"a","currency":"EUR","Items":[` + item + `]}`, "Items"},
		{"SKU in an item", "/orders", `{"customer_id":"a","currency":"EUR","items":[{"SKU":"a","quantity":1,"unit_price_minor":1}]}`, "SKU"},
		{"a Kelvin sign folding to k", "/orders", `{"customer_id":"a","currency":"EUR","items":[{"s\u212au":"a","quantity":1,"unit_price_minor":1}]}`, "items[0]"},
		{"reason twice", "/orders/" + id + "/cancel", `{"reason":"a","reason":"b"}`, "reason"},
		{"Reason", "/orders/" + id + "/cancel", `{"Reason":"a"}`, "Reason"},
		{"PAYMENT_REFERENCE", "/orders/" + id + "/pay", `{"PAYMENT_REFERENCE":"a"}`, "PAYMENT_REFERENCE"},
		{"a duplicate in an unknown nested object", "/orders/" + id + "/cancel", `{"reason":"a","x":{"k":1,"k":2}}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := wantProblem(t, e.do("POST", tc.path, tc.body), 400, "/problems/malformed-request")
			if !strings.Contains(p.Detail, tc.want) {
				t.Errorf("detail %q does not name %s", p.Detail, tc.want)
			}
		})
	}
	if after := e.written(); after != before {
		t.Errorf("refused requests wrote: %s → %s", before, after)
	}
	if r := e.do("POST", "/orders", `{"customer_id":"a","currency":"EUR","items":[`+item+`]} `+"\n"); r.status != 201 {
		t.Errorf("a well-formed body with trailing space: %d %s", r.status, r.body)
	}
}

// HEAD works on every GET route, like GET without a body; a 405
// says in Allow what is allowed.
func TestHeadAndAllow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.place()["id"].(string)
	for _, path := range []string{"/orders/" + id, "/orders", "/orders?customer_id=c-1", "/healthz", "/readyz"} {
		t.Run("HEAD "+path, func(t *testing.T) {
			get, head := e.do("GET", path, ""), e.do("HEAD", path, "")
			if head.status != 200 || get.status != 200 || len(head.body) != 0 {
				t.Fatalf("HEAD %d (%d bytes), GET %d", head.status, len(head.body), get.status)
			}
			for _, h := range []string{"Content-Type", "ETag"} {
				if head.header.Get(h) != get.header.Get(h) {
					t.Errorf("%s: HEAD %q, GET %q", h, head.header.Get(h), get.header.Get(h))
				}
			}
		})
	}
	if r := e.do("HEAD", "/orders/0193f2a0-0000-7000-8000-000000000000", ""); r.status != 404 || len(r.body) != 0 {
		t.Errorf("HEAD of an unknown order: %d %q", r.status, r.body)
	}
	if r := e.do("HEAD", "/orders/"+id, "", "If-None-Match", `"1"`); r.status != 304 {
		t.Errorf("HEAD with a matching If-None-Match: %d", r.status)
	}
	cases := []struct{ method, path, allow string }{
		{"DELETE", "/orders/" + id, "GET, HEAD"},
		{"PUT", "/orders/" + id, "GET, HEAD"},
		{"PUT", "/orders", "GET, HEAD, POST"},
		{"GET", "/orders/" + id + "/pay", "POST"},
		{"HEAD", "/orders/" + id + "/refund", "POST"},
		{"POST", "/healthz", "GET, HEAD"},
		{"FOO", "/orders", "GET, HEAD, POST"},
		{"FOO", "/orders/" + id + "/cancel", "POST"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := e.do(tc.method, tc.path, "")
			if r.status != 405 || r.header.Get("Allow") != tc.allow {
				t.Errorf("%d Allow %q, want 405 Allow %q", r.status, r.header.Get("Allow"), tc.allow)
			}
			if tc.method != "HEAD" {
				wantProblem(t, r, 405, "/problems/method-not-allowed")
			}
		})
	}
	t.Run("a made-up method on a path nothing serves is 404", func(t *testing.T) {
		wantProblem(t, e.do("FOO", "/nowhere", ""), 404, "/problems/not-found")
	})
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	_, _ = z.Write([]byte(s))
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A content-coded body is 415, with Accept-Encoding saying what is
// accepted, not a 400 "malformed JSON".
func TestContentEncodedBodiesAreUnsupported(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.place()["id"].(string)
	before := e.written()
	cases := []struct {
		name, path, encoding string
		body                 []byte
	}{
		{"gzip", "/orders", "gzip", gzipped(t, validOrder)},
		{"br", "/orders", "br", []byte(validOrder)},
		{"deflate on a change", "/orders/" + id + "/pay", "deflate", []byte(`{"payment_reference":"x"}`)},
		{"GZIP", "/orders", "GZIP", gzipped(t, validOrder)},
		{"identity then gzip", "/orders", "identity, gzip", gzipped(t, validOrder)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.doRaw("POST", tc.path, tc.body, "Content-Type", "application/json", "Content-Encoding", tc.encoding)
			wantProblem(t, r, 415, "/problems/unsupported-media-type")
			if r.header.Get("Accept-Encoding") != "identity" {
				t.Errorf("Accept-Encoding %q", r.header.Get("Accept-Encoding"))
			}
		})
	}
	if after := e.written(); after != before {
		t.Errorf("refused requests wrote: %s → %s", before, after)
	}
	if r := e.doRaw("POST", "/orders", []byte(validOrder), "Content-Type", "application/json", "Content-Encoding", "identity"); r.status != 201 {
		t.Errorf("identity: %d %s", r.status, r.body)
	}
}

// If-Match compares strongly (RFC 9110 §13.1.1) against the ETag
// "<version>" and takes a list.
func TestIfMatchIsAStrongComparisonAgainstAList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name    string
		ifMatch []string // header lines
		status  int
	}{
		{"the current ETag", []string{`"1"`}, 200},
		{"any", []string{`*`}, 200},
		{"a list holding it", []string{`"1", "2"`}, 200},
		{"a list holding it last", []string{`"5","1"`}, 200},
		{"a list with empty elements", []string{` , "1" ,, `}, 200},
		{"a weak tag and the strong one", []string{`W/"1", "1"`}, 200},
		{"two header lines, the second holding it", []string{`"7"`, `"1"`}, 200},
		{"the weak ETag", []string{`W/"1"`}, 412},
		{"a leading zero", []string{`"01"`}, 412},
		{"a plus sign", []string{`"+1"`}, 412},
		{"a space inside", []string{`"1 "`}, 400},
		{"an empty tag", []string{`""`}, 412},
		{"another tag", []string{`"abc"`}, 412},
		{"a list without it", []string{`"2", "3"`}, 412},
		{"a version of 19 nines", []string{`"9999999999999999999"`}, 412},
		{"unquoted", []string{`1`}, 400},
		{"unterminated", []string{`"1`}, 400},
		{"a list without commas", []string{`"1" "2"`}, 400},
		{"* in a list", []string{`*, "1"`}, 400},
		{"weak unquoted", []string{`W/1`}, 400},
		{"only commas", []string{`,`}, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := e.place()["id"].(string)
			var headers []string
			for _, v := range tc.ifMatch {
				headers = append(headers, "If-Match", v)
			}
			r := e.doRaw("POST", "/orders/"+id+"/cancel", nil, headers...)
			if r.status != tc.status {
				t.Fatalf("If-Match %q: %d %s, want %d", tc.ifMatch, r.status, r.body, tc.status)
			}
			want := 1.0
			if tc.status == 200 {
				want = 2
			}
			if g := e.do("GET", "/orders/"+id, "").json(t); g["version"] != want {
				t.Errorf("version %v, want %v", g["version"], want)
			}
		})
	}
}

// X-Correlation-ID is used only if it is printable ASCII of at
// most 128 bytes; otherwise one is made up, so what is echoed is what is
// stored in the outbox (and sent to Kafka, and logged).
func TestCorrelationIDEchoedIsCorrelationIDStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	cases := []struct {
		name, id string
		kept     bool
	}{
		{"a letter beyond ASCII", "corr-7/ä", false},
		{"plain", "corr-7", true},
		{"128 bytes", strings.Repeat("c", 128), true},
		{"129 bytes", strings.Repeat("c", 129), false},
		{"invalid UTF-8", "corr-\xff\xfe", false},
		{"valid UTF-8 beyond ASCII", "café", false},
		{"a space", "corr 7", false},
		{"a tab", "corr\t7", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.doRaw("POST", "/orders", []byte(validOrder), "Content-Type", "application/json", "X-Correlation-ID", tc.id)
			if r.status != 201 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			echoed := r.header.Get("X-Correlation-ID")
			if tc.kept && echoed != tc.id || !tc.kept && !uuidRE.MatchString(echoed) {
				t.Errorf("echoed %q for %q", echoed, tc.id)
			}
			stored := "no event"
			id := r.json(t)["id"].(string)
			for _, ev := range e.store.Events() {
				if ev.Order.ID.String() == id {
					stored = ev.Meta.CorrelationID
				}
			}
			if stored != echoed {
				t.Errorf("stored %q, echoed %q", stored, echoed)
			}
		})
	}
}
