package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/memstore"
	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/producer/httpapi"
	"github.com/ordersonkafka/orders/openapi"
)

// FuzzRequests sends order-api's handler, on the in-memory store (what is
// fuzzed is the HTTP layer; storetest holds that store to PostgreSQL's
// contract), requests whose body, headers, path and query come from the
// fuzzer: place an order, pay, refund or cancel one, read one, list.
// Whatever comes in, the answer is not a 5xx (a hostile request is the
// client's fault, and the store is up), and an error is a small
// problem+json body with the same status, however much the client sent; and
// each exchange follows order-api's OpenAPI document (openapitest). The
// seeds are the hostile requests of hostile_test.go. `make fuzz` runs it
// for a while; `make test` runs the seeds.
func FuzzRequests(f *testing.F) {
	store := memstore.New()
	h := httpapi.New(httpapi.Config{Logger: stacktest.Logger(f)}, store)
	contract := openapitest.Load(f, openapi.OrderAPI())
	var seeded struct{ ID string }
	placeReq := httptest.NewRequest("POST", "/orders", strings.NewReader(`{"customer_id":"c","currency":"EUR","items":[{"sku":"s","quantity":1,"unit_price_minor":1}]}`))
	placeReq.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, placeReq)
	if err := json.Unmarshal(rec.Body.Bytes(), &seeded); err != nil || rec.Code != 201 {
		f.Fatalf("seed order: %d %s", rec.Code, rec.Body)
	}
	valid := `{"customer_id":"c-1","currency":"EUR","items":[{"sku":"BOOK","quantity":2,"unit_price_minor":1250}]}`
	const js = "application/json"
	for _, s := range []struct {
		route                                     uint8
		param, ctype, encoding, key, ifMatch, cid string
		body                                      string
	}{
		{0, "", js, "", "", "", "", valid},
		{0, "", js, "", "k-1", "", "", valid},
		{0, "", js, "", "", "", "", `{"customer_id":"c\u0000","currency":"EUR","items":[{"sku":"s\u0000","quantity":1,"unit_price_minor":1}]}`},
		{0, "", js, "", "", "", "", "{\"customer_id\":\"" + strings.Repeat("\xff", 22) + "\",\"currency\":\"EUR\",\"items\":[]}"},
		{0, "", js + "; charset=iso-8859-1", "", "", "", "", valid},
		{0, "", js, "gzip", "", "", "", valid},
		{0, "", js, "", "", "", "", `{"customer_id":"a","customer_id":"b","currency":"EUR","items":[]}`},
		{0, "", js, "", "", "", "", `{"Customer_ID":"a","currency":"EUR","items":[]}`},
		{0, "", js, "", "", "", "", `{"customer_id":"c","currency":"EUR","items":{"sku":1}}`},
		{0, "", js, "", "", "", "", `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`},
		{0, "", js, "", "", "", "\xff\xfe raw", valid},
		{0, "", "text/plain", "", "key with spaces", "", "", "hello"},
		{1, "", js, "", "", `W/"1"`, "", `{"payment_reference":"p\u0000"}`},
		{1, "", js, "", "", `"01"`, "", ""},
		{1, "", js, "", "", `"1", "2"`, "", `{"payment_reference":"psp"}`},
		{2, "", js, "", "", `"+1"`, "", `{"reason":"` + strings.Repeat("r", 300) + `"}`},
		{3, "", js, "", "", "*", "", `{"reason":"x\u0000"}`},
		{4, "customer_id=%00", "", "", "", "", "", ""},
		{4, "customer_id=%ff&status=%c3", "", "", "", "", "", ""},
		{4, "status=paid&limit=9999999999999999999&cursor=%zz", "", "", "", "", "", ""},
		{5, strings.Repeat("a", 100_000), "", "", "", "", "", ""},
		{5, "%00", "", "", "", "", "", ""},
	} {
		f.Add(s.route, s.param, s.ctype, s.encoding, s.key, s.ifMatch, s.cid, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, route uint8, param, ctype, encoding, key, ifMatch, cid string, body []byte) {
		var method, target string
		switch route % 6 {
		case 0:
			method, target = "POST", "/orders"
		case 1, 2, 3:
			method, target = "POST", "/orders/"+seeded.ID+"/"+[]string{"pay", "refund", "cancel"}[route%6-1]
		case 4:
			method, target = "GET", "/orders?"+param
		case 5:
			method, target = "GET", "/orders/"+param
		}
		req, err := http.NewRequestWithContext(t.Context(), method, "http://api"+target, strings.NewReader(string(body)))
		if err != nil {
			return // not a request a server could receive
		}
		for name, v := range map[string]string{"Content-Type": ctype, "Content-Encoding": encoding,
			"Idempotency-Key": key, "If-Match": ifMatch, "X-Correlation-ID": cid} {
			if v != "" {
				req.Header.Set(name, v)
			}
		}
		rec := httptest.NewRecorder()
		contract.Handler(t, h).ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %.80s: %d %s", method, target, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			if rec.Body.Len() > 4<<10 { // what a client sent is echoed at most once, cut
				t.Fatalf("%s %.80s: a %d-byte problem", method, target, rec.Body.Len())
			}
			var p struct{ Status int }
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("%d answered as %q", rec.Code, ct)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code {
				t.Fatalf("%d with body %s (%v)", rec.Code, rec.Body, err)
			}
		}
	})
}
