package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/platform/web"
)

// A problem body stays small and a valid URI reference whatever the path,
// and never cuts a percent-escape in two.
func TestInstanceIsTheEscapedPathCut(t *testing.T) {
	for _, path := range []string{
		"/orders/" + strings.Repeat("a", 100<<10),
		"/orders/" + strings.Repeat("\xff", 1000),
		"/orders/" + strings.Repeat("a", 247) + "\xff\xff",
		"/orders/" + strings.Repeat("a", 246) + "\xff\xff",
		"/orders/" + strings.Repeat("a", 245) + "\xff\xff",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.Path = path
		got := web.Instance(r)
		if len(got) > web.MaxInstance || !strings.HasPrefix(r.URL.EscapedPath(), got) || strings.Contains(got[max(0, len(got)-2):], "%") {
			t.Errorf("Instance of a %d-byte path: %q", len(path), got)
		}
	}
}

func TestWriteCutsDetailsAndUnavailableSaysRetryAfter(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/orders", nil)
	long := strings.Repeat("é", 10000)
	web.Problem(w, r, 422, web.TypeValidation, "Unprocessable Content", long,
		[]web.FieldError{{Field: "currency", Detail: "got " + long}})
	var p web.Details
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Detail) > web.MaxDetail || len(p.Errors[0].Detail) > web.MaxDetail || !strings.HasSuffix(p.Detail, "…") {
		t.Errorf("detail of %d bytes, field detail of %d", len(p.Detail), len(p.Errors[0].Detail))
	}

	for d, want := range map[time.Duration]string{0: "1", 1500 * time.Millisecond: "2", 2 * time.Second: "2"} {
		w := httptest.NewRecorder()
		web.Unavailable(w, r, d, web.TypeUnavailable, "down")
		if w.Code != 503 || w.Header().Get("Retry-After") != want || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("Unavailable(%s): %d Retry-After %q", d, w.Code, w.Header().Get("Retry-After"))
		}
	}
}
