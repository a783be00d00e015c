package telemetry_test

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// TestMadeUpMethodsShareOneSeries: every request method a client makes up is
// counted under method="_OTHER", so /metrics does not grow with them (a
// series each, 500 made-up methods grew it from 66 KB to 950 KB).
func TestMadeUpMethodsShareOneSeries(t *testing.T) {
	reg := telemetry.NewRegistry()
	r := chi.NewRouter()
	r.Use(telemetry.NewHTTPMetrics(reg).Middleware)
	r.Get("/orders", func(w http.ResponseWriter, _ *http.Request) {})
	r.Method(http.MethodGet, "/metrics", telemetry.MetricsHandler(reg))
	srv := httptest.NewServer(r)
	defer srv.Close()

	do := func(method, path string) string {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	do(http.MethodGet, "/orders")
	do("get", "/orders") // methods are case-sensitive: not GET
	for range 50 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		do("X"+strings.ToUpper(hex.EncodeToString(b[:])), "/orders")
	}
	metrics := do(http.MethodGet, "/metrics")

	series := regexp.MustCompile(`(?m)^http_request_duration_seconds_count\{method="([^"]*)",route="([^"]*)",status="(\d+)"\} (\d+)$`).
		FindAllStringSubmatch(metrics, -1)
	got := map[string]string{}
	for _, s := range series {
		got[s[1]+" "+s[2]+" "+s[3]] = s[4]
	}
	// chi answers a method it does not know with 405 before matching a route.
	want := map[string]string{"GET /orders 200": "1", "_OTHER unmatched 405": "51"}
	if len(got) != len(want) || got["GET /orders 200"] != "1" || got["_OTHER unmatched 405"] != "51" {
		t.Errorf("series: %v, want %v", got, want)
	}
}

func TestMethod(t *testing.T) {
	for m, want := range map[string]string{
		"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH", "DELETE": "DELETE",
		"OPTIONS": "OPTIONS", "CONNECT": "CONNECT", "TRACE": "TRACE",
		"get": "_OTHER", "FOO": "_OTHER", "PROPFIND": "_OTHER", "": "_OTHER",
	} {
		if got := telemetry.Method(m); got != want {
			t.Errorf("Method(%q) = %q, want %q", m, got, want)
		}
	}
}

// Two components of one kind in one process (two projections, two APIs)
// share their series rather than panic on the second registration.
func TestASecondRegistrationSharesTheFirstsSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	first := telemetry.NewHTTPMetrics(reg)
	second := telemetry.NewHTTPMetrics(reg)
	for _, m := range []*telemetry.HTTPMetrics{first, second} {
		r := chi.NewRouter()
		r.Use(m.Middleware)
		r.Get("/x", func(w http.ResponseWriter, _ *http.Request) {})
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "http_request_duration_seconds" {
			if n := f.GetMetric()[0].GetHistogram().GetSampleCount(); n != 2 {
				t.Errorf("%d requests counted, want 2", n)
			}
			return
		}
	}
	t.Error("http_request_duration_seconds not gathered")
}
