package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
	"github.com/ordersonkafka/orders/migrations"
)

type stack struct {
	api, consumer string
	orders        *pgtest.DB
}

// startStack runs the real order-api and order-consumer in process, on
// kfake and the in-repo registry, as the playground does.
func startStack(t *testing.T) stack {
	t.Helper()
	k := stacktest.Kafka(t, devstack.KafkaConfig{Partitions: 6, Topics: []string{"order-events", "order-events.dlq"}})
	reg := stacktest.Registry(t)
	ordersDB := pgtest.MustDB(t, migrations.Orders())
	projectionDB := pgtest.MustDB(t, migrations.Projection())
	env := func(db string) func(string) string {
		return stacktest.Env(map[string]string{"DATABASE_URL": db, "KAFKA_BROKERS": k.Brokers()[0], "SCHEMA_REGISTRY_URL": reg.URL()})
	}
	apiCfg, err := config.Load[orderapi.Config](env(ordersDB.URL))
	if err != nil {
		t.Fatal(err)
	}
	api, err := orderapi.New(context.Background(), apiCfg, stacktest.Logger(t), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	consumerCfg, err := config.Load[orderconsumer.Config](env(projectionDB.URL))
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := orderconsumer.New(context.Background(), consumerCfg, stacktest.Logger(t), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	apiURL, _ := stacktest.Serve(t, api)
	consumerURL, _ := stacktest.Serve(t, consumer)
	return stack{api: apiURL, consumer: consumerURL, orders: ordersDB}
}

// TestReportMatchesWhatHappened runs loadgen against a real stack and checks
// its JSON report against the database and against itself.
func TestReportMatchesWhatHappened(t *testing.T) {
	s := startStack(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"-url", s.api, "-consumer-url", s.consumer,
		"-rate", "0", "-concurrency", "4", "-duration", "2s", "-e2e-sample", "1", "-json"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("-json output is not one JSON object: %v\n%s", err, out.Bytes())
	}
	var placed int64
	if err := s.orders.Pool.QueryRow(context.Background(), "SELECT count(*) FROM orders").Scan(&placed); err != nil {
		t.Fatal(err)
	}
	if r.OrdersPlaced == 0 || r.OrdersPlaced != placed {
		t.Errorf("report says %d orders placed, the database holds %d", r.OrdersPlaced, placed)
	}
	requests := 0
	for op, st := range r.Statuses {
		for code, n := range st {
			if !strings.HasPrefix(code, "2") {
				t.Errorf("%s answered %s ×%d", op, code, n)
			}
			requests += n
		}
	}
	if requests != r.Requests || r.HTTP.Count != r.Requests || r.Requests < int(r.OrdersPlaced) {
		t.Errorf("requests %d, statuses add up to %d, latency samples %d, orders %d", r.Requests, requests, r.HTTP.Count, r.OrdersPlaced)
	}
	for name, l := range map[string]latency{"http": r.HTTP, "end-to-end": r.EndToEnd} {
		if l.Count == 0 || !(0 < l.P50 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max) {
			t.Errorf("%s latency %+v: want samples with 0 < p50 <= p95 <= p99 <= max", name, l)
		}
	}
	// Every change was sampled, and every one became visible at the consumer.
	if r.EndToEnd.Count != r.Requests || r.E2EMissing != 0 || r.E2ERefused != 0 {
		t.Errorf("end-to-end samples %d (missing %d, refused %d) for %d accepted changes", r.EndToEnd.Count, r.E2EMissing, r.E2ERefused, r.Requests)
	}
	for _, svc := range []string{"order-api", "order-consumer"} {
		if r.RSSMaxMiB[svc] <= 0 {
			t.Errorf("no resident memory read for %s: %v %v", svc, r.RSSMaxMiB, r.RSSErrors)
		}
	}
	// The services here share the test's process, so their figures are the
	// same; PostgreSQL's is the local server's (these tests need one).
	for _, p := range []string{"order-api", "order-consumer", "postgresql"} {
		if r.CPUPer1000Orders[p] <= 0 || r.CPUSeconds[p] <= 0 {
			t.Errorf("no CPU per 1,000 orders for %s: %v %v", p, r.CPUPer1000Orders, r.CPUErrors)
		}
	}
}

// -place-only places orders and sends nothing else.
func TestPlaceOnly(t *testing.T) {
	s := startStack(t)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-url", s.api, "-consumer-url", "", "-rate", "0", "-concurrency", "2", "-duration", "1s", "-place-only", "-json"}, &out); err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Statuses) != 1 || r.Statuses["place"]["201"] == 0 || int64(r.Requests) != r.OrdersPlaced {
		t.Errorf("statuses %v, %d requests for %d orders: want places only", r.Statuses, r.Requests, r.OrdersPlaced)
	}
}

// TestRateModeAndText: with -rate the report is text, names the mode, and
// does not place more orders than the rate allows.
func TestRateModeAndText(t *testing.T) {
	s := startStack(t)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-url", s.api, "-consumer-url", s.consumer,
		"-rate", "40", "-concurrency", "4", "-duration", "1s"}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"open loop at 40 orders/s", "orders placed", "HTTP latency", "end-to-end latency", "p99", "max RSS"} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
	var placed int64
	if err := s.orders.Pool.QueryRow(context.Background(), "SELECT count(*) FROM orders").Scan(&placed); err != nil {
		t.Fatal(err)
	}
	if placed == 0 || placed > 41 {
		t.Errorf("%d orders placed at -rate 40 for 1s", placed)
	}
}

// The defaults are make bench's, so BENCH_ARGS='-rate 250' keeps the rest;
// with -limit they are make bench-limit's.
func TestDefaultsAreTheBenchTargets(t *testing.T) {
	for _, c := range []struct {
		args        []string
		rate        float64
		concurrency int
		duration    time.Duration
	}{
		{nil, 500, 64, time.Minute},
		{[]string{"-rate", "250"}, 250, 64, time.Minute},
		{[]string{"-limit"}, 500, 32, 20 * time.Second}, // -limit ignores the rate: a closed loop
		{[]string{"-limit", "-concurrency", "8"}, 500, 8, 20 * time.Second},
		{[]string{"-floor"}, 1000, 64, 20 * time.Second},
	} {
		o, err := parse(c.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.rate != c.rate || o.concurrency != c.concurrency || o.duration != c.duration {
			t.Errorf("%v: rate %v, concurrency %d, duration %s; want %v, %d, %s", c.args, o.rate, o.concurrency, o.duration, c.rate, c.concurrency, c.duration)
		}
	}
}

// A sampled read the consumer refuses (503 when HTTP_MAX_WAITING_READS are
// already waiting) is counted as refused, not as a change missing from the
// projection: the report must not suggest lost events when the consumer
// only shed load. The consumer here is the real one behind a proxy that
// refuses every waiting read.
func TestRefusedReadsAreNotMissing(t *testing.T) {
	s := startStack(t)
	target, err := url.Parse(s.consumer)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	shedding := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("min_version") {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many waiting reads", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer shedding.Close()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-url", s.api, "-consumer-url", shedding.URL,
		"-rate", "0", "-concurrency", "2", "-duration", "1s", "-e2e-sample", "1", "-json"}, &out); err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.E2ERefused != int64(r.Requests) || r.E2EMissing != 0 || r.EndToEnd.Count != 0 {
		t.Errorf("%d changes, all sampled and refused: report says refused %d, missing %d, measured %d", r.Requests, r.E2ERefused, r.E2EMissing, r.EndToEnd.Count)
	}
}

func TestClearErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-url", "http://127.0.0.1:1", "-duration", "1s"}, "not reachable (is `make run` running?)"},
		{[]string{"-concurrency", "0"}, "-concurrency must be at least 1"},
		{[]string{"-floor", "-limit"}, "pick one"},
		{[]string{"-floor", "-rate", "0"}, "-floor needs a -rate above 0"},
		{[]string{"-e2e-sample", "2"}, "-e2e-sample must be within [0, 1]"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		err := run(context.Background(), c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}

// -limit: place-only through HTTP, then pgbench with order-api's place
// statement on a scratch database, which is dropped; the ratio is theirs.
func TestLimit(t *testing.T) {
	s := startStack(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"-url", s.api, "-consumer-url", s.consumer, "-concurrency", "2",
		"-duration", "1s", "-limit", "-pg-url", pgtest.ServerURL(), "-json"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var r limitReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("-json output: %v\n%s", err, out.Bytes())
	}
	if r.HTTP.OrdersPerSecond <= 0 || r.PgbenchTPS <= 0 || r.Ratio <= 0 || len(r.HTTP.Statuses) != 1 {
		t.Fatalf("report %+v", r)
	}
	// The report's figures are rounded, so the ratio recomputed from them
	// may differ in its last digit.
	if want := r.HTTP.OrdersPerSecond / r.PgbenchTPS; math.Abs(r.Ratio-want) > 0.0015 {
		t.Errorf("ratio %v, want %v", r.Ratio, want)
	}
	var left int
	if err := s.orders.Pool.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", r.PgbenchDatabase).Scan(&left); err != nil || left != 0 {
		t.Errorf("the scratch database %s is still there (%v)", r.PgbenchDatabase, err)
	}
}
