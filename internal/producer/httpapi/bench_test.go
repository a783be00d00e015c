package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/producer/httpapi"
)

// BenchmarkPlaceOrder measures POST /orders through the real handler and
// store on real PostgreSQL (one order row + one outbox row per request), in
// parallel. `make bench-go` reports it; the load figures against pgbench
// are in docs/performance.md.
func BenchmarkPlaceOrder(b *testing.B) {
	store, _ := newStore(b)
	h := httpapi.New(httpapi.Config{Logger: stacktest.Logger(b)}, store)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/orders", strings.NewReader(validOrder))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}
