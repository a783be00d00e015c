package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/producer/httpapi"
	"github.com/ordersonkafka/orders/internal/producer/orderstore"
	"github.com/ordersonkafka/orders/migrations"
)

// BenchmarkPlaceOrder measures POST /orders through the real handler and
// store on real PostgreSQL (one order row + one outbox row per request), in
// parallel. `make bench-go` reports it; the load figures against pgbench
// are in the README.
func BenchmarkPlaceOrder(b *testing.B) {
	db := pgtest.MustDB(b, migrations.Orders())
	enc, _ := eventcodec.NewEncoder()
	store := orderstore.New(db.Pool, enc, "order-events", nil, 0)
	h := httpapi.New(httpapi.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, store)
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
