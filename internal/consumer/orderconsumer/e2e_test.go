package orderconsumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
	"github.com/ordersonkafka/orders/migrations"
	"github.com/ordersonkafka/orders/openapi"
)

// startOrderAPI runs a real order-api against the stack's Kafka and registry.
func startOrderAPI(t *testing.T, s *stack) string {
	t.Helper()
	return startOrderAPIWith(t, s, telemetry.Config{})
}

// startOrderAPIWith is startOrderAPI with the given telemetry.
func startOrderAPIWith(t *testing.T, s *stack, tel telemetry.Config) string {
	t.Helper()
	url, _ := serveOrderAPI(t, s, pgtest.MustDB(t, migrations.Orders()), stacktest.Logger(t), tel)
	return url
}

// serveOrderAPI runs order-api against the stack on db, logging to log,
// with env (name, value, …) set over the test defaults.
func serveOrderAPI(t *testing.T, s *stack, db *pgtest.DB, log *slog.Logger, tel telemetry.Config, env ...string) (string, func() error) {
	t.Helper()
	cfg, err := config.Load[orderapi.Config](stacktest.Env(map[string]string{"DATABASE_URL": db.URL, "KAFKA_BROKERS": s.kafka.Brokers()[0],
		"SCHEMA_REGISTRY_URL": s.registry.URL(), "RELAY_POLL_INTERVAL": "100ms", "RELAY_BACKOFF_MIN": "10ms", "RELAY_BACKOFF_MAX": "200ms"}, env...))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := orderapi.New(context.Background(), cfg, log, tel)
	if err != nil {
		t.Fatal(err)
	}
	url, stop := stacktest.Serve(t, svc)
	serves(t, url, openapi.OrderAPI())
	return url, stop
}

type apiOrder struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Version int64  `json:"version"`
}

// call sends a request and decodes the order it answers with (none if it
// answers a problem); it may run on any goroutine (a failure is t.Error,
// and a zero answer).
func call(t *testing.T, method, url, body string) (int, apiOrder) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, apiOrder{}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client(t, url).Do(req)
	if err != nil {
		t.Error(err)
		return 0, apiOrder{}
	}
	defer resp.Body.Close()
	var o apiOrder
	if resp.StatusCode/100 != 2 { // a problem, not an order
		_, _ = io.Copy(io.Discard, resp.Body) // so the connection is reused
		return resp.StatusCode, o
	}
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		t.Errorf("%s %s answered %d with a body that is not an order: %v", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode, o
}

// TestProjectionConvergesToTheAPI (docs/design.md, invariant 7): many
// orders placed, paid, refunded and cancelled concurrently through
// order-api; when traffic stops, every order's status and version at :8082
// equal those at :8080.
func TestProjectionConvergesToTheAPI(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api := startOrderAPI(t, s)
	consumer := s.start()

	const orders = 60
	ids := make([]string, orders)
	var wg sync.WaitGroup
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, o := call(t, "POST", api+"/orders", fmt.Sprintf(`{"customer_id":"c-%d","currency":"EUR","items":[{"sku":"s","quantity":1,"unit_price_minor":%d}]}`, i, 100+i))
			if st != 201 {
				t.Errorf("place: %d", st)
				return
			}
			ids[i] = o.ID
			// A random walk through the state machine, with some refused moves.
			for range 3 {
				action := []string{"pay", "refund", "cancel"}[rand.IntN(3)]
				call(t, "POST", api+"/orders/"+o.ID+"/"+action, "")
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, id := range ids {
		_, want := call(t, "GET", api+"/orders/"+id, "")
		stacktest.WaitFor(t, fmt.Sprintf("the projection of order %s to converge to the API's %+v", id, want), wait, func() bool {
			st, got := call(t, "GET", consumer.url+"/orders/"+id, "")
			return st == 200 && got.Version == want.Version && got.Status == want.Status
		})
	}
	// Each event applied once: the ledger holds one row per version of every order.
	var events, versions int64
	ctx := context.Background()
	if err := s.db.Pool.QueryRow(ctx, "SELECT count(*) FROM processed_events WHERE outcome = 'applied'").Scan(&events); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Pool.QueryRow(ctx, "SELECT coalesce(sum(version), 0) FROM order_projection").Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if events == 0 || events != versions {
		t.Fatalf("%d applied events for %d versions in all", events, versions)
	}
}
