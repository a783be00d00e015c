package orderconsumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
	"github.com/ordersonkafka/orders/migrations"
)

// startOrderAPI runs a real order-api against the stack's Kafka and registry.
func startOrderAPI(t *testing.T, s *stack) string {
	t.Helper()
	return startOrderAPIWith(t, s, telemetry.Config{})
}

// startOrderAPIWith is startOrderAPI with the given telemetry.
func startOrderAPIWith(t *testing.T, s *stack, tel telemetry.Config) string {
	t.Helper()
	db := pgtest.MustDB(t, migrations.Orders())
	env := map[string]string{"DATABASE_URL": db.URL, "KAFKA_BROKERS": s.kafka.Brokers()[0], "SCHEMA_REGISTRY_URL": s.registry.URL(),
		"RELAY_POLL_INTERVAL": "100ms", "RELAY_BACKOFF_MIN": "10ms", "RELAY_BACKOFF_MAX": "200ms"}
	cfg, err := config.Load[orderapi.Config](func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := orderapi.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), tel)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan struct{})
	go func() { _ = svc.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

type apiOrder struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Version int64  `json:"version"`
}

func call(t *testing.T, method, url, body string) (int, apiOrder) {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, apiOrder{}
	}
	defer resp.Body.Close()
	var o apiOrder
	_ = json.NewDecoder(resp.Body).Decode(&o)
	return resp.StatusCode, o
}

// TestProjectionConvergesToTheAPI: many orders placed, paid, refunded and
// cancelled concurrently through order-api; when traffic stops, every order's
// status and version at :8082 equal those at :8080 (invariant 7).
func TestProjectionConvergesToTheAPI(t *testing.T) {
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
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		_, want := call(t, "GET", api+"/orders/"+id, "")
		for {
			st, got := call(t, "GET", consumer.url+"/orders/"+id, "")
			if st == 200 && got.Version == want.Version && got.Status == want.Status {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s: projection %d %+v, API %+v", id, st, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Each event applied once: the ledger holds one row per version of every order.
	var events, versions int64
	_ = s.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM processed_events WHERE outcome = 'applied'").Scan(&events)
	_ = s.db.Pool.QueryRow(context.Background(), "SELECT coalesce(sum(version), 0) FROM order_projection").Scan(&versions)
	if events != versions {
		t.Fatalf("%d applied events for %d versions in all", events, versions)
	}
}
