package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/migrations"
)

// TestMain lets the test binary stand in for the playground's binary when
// startService runs it as a child.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == childArg {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := runService(ctx, os.Args[2], os.Getenv, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testOptions are the playground's options for a test: free ports, and
// databases of its own named after name, dropped when t ends.
func testOptions(t *testing.T, name string) options {
	t.Helper()
	suffix := fmt.Sprintf("%s_%d", name, time.Now().UnixNano())
	opts := options{registryAddr: freeAddr(t), apiAddr: freeAddr(t), consumerAddr: freeAddr(t), issuer: "127.0.0.1:0", kafkaPlainAddr: "127.0.0.1:0", inspectAddr: freeAddr(t),
		ordersDB: "playground_" + suffix, projectionDB: "playground_projection_" + suffix}
	t.Cleanup(func() {
		pgtest.Admin(t, "DROP DATABASE IF EXISTS "+opts.ordersDB+" WITH (FORCE)")
		pgtest.Admin(t, "DROP DATABASE IF EXISTS "+opts.projectionDB+" WITH (FORCE)")
	})
	return opts
}

// A running playground, started by a test.
type playground struct {
	banner *stacktest.Log
	stop   func() // as Ctrl-C, failing t unless it stops cleanly; once, and at the latest when t ends
}

// startPlayground runs the playground with opts, on the tests' PostgreSQL
// server, and returns once it printed its banner and both services are
// ready; it fails t at once if the playground stops before.
func startPlayground(t *testing.T, opts options) *playground {
	t.Helper()
	return startPlaygroundOn(t, opts, pgtest.ServerURL())
}

// startPlaygroundOn is startPlayground with DATABASE_URL set to databaseURL.
func startPlaygroundOn(t *testing.T, opts options, databaseURL string) *playground {
	t.Helper()
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return databaseURL
		}
		return os.Getenv(k)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &playground{banner: stacktest.NewLog(t)}
	logs := stacktest.NewLog(t) // printed if the test fails
	result := make(chan error, 1)
	go func() { result <- run(ctx, opts, getenv, p.banner, logs) }()
	p.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-result:
			if err != nil {
				t.Errorf("the playground after Ctrl-C: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("the playground did not stop")
		}
	})
	t.Cleanup(p.stop)
	running := func() {
		select {
		case err := <-result:
			result <- err // for stop
			t.Fatalf("the playground stopped before it was ready: %v", err)
		default:
		}
	}
	stacktest.WaitFor(t, "the banner", 60*time.Second, func() bool {
		running()
		return strings.Contains(p.banner.String(), "Ctrl-C stops everything")
	})
	for _, addr := range []string{opts.apiAddr, opts.consumerAddr} {
		stacktest.WaitFor(t, addr+" to be ready", 60*time.Second, func() bool {
			running()
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServiceRunsAsAChildAndStopsCleanly: order-api started as a child
// process serves real requests; when the playground's context ends it
// shuts down gracefully, startService returns nil and the port is free.
func TestServiceRunsAsAChildAndStopsCleanly(t *testing.T) {
	k := stacktest.Kafka(t, devstack.KafkaConfig{Topics: []string{topic}})
	reg := stacktest.Registry(t)
	db := pgtest.MustDB(t, migrations.Orders())
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	shared := map[string]string{"KAFKA_BROKERS": k.Brokers()[0], "SCHEMA_REGISTRY_URL": reg.URL(), "LOG_FORMAT": "text"}
	env := map[string]string{"HTTP_ADDR": addr, "DATABASE_URL": db.URL}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := stacktest.NewLog(t) // the child's output, printed if the test fails
	result := make(chan error, 1)
	go func() { result <- startService(ctx, self, "order-api", shared, env, logs) }()

	stacktest.WaitFor(t, "the child to be ready", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	resp, err := http.Post("http://"+addr+"/orders", "application/json",
		strings.NewReader(`{"customer_id":"c","currency":"EUR","items":[{"sku":"s","quantity":1,"unit_price_minor":100}]}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("POST /orders to the child: %v %v", resp, err)
	}
	resp.Body.Close()

	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("startService after the context ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not stop")
	}
	if stacktest.Listening(addr) {
		t.Error("the child's port still accepts connections after it stopped")
	}
}

// TestAChildThatFailsIsReported: a service that exits on its own (here on
// a configuration error) is an error naming it, before anyone stops it.
func TestAChildThatFailsIsReported(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	err = startService(context.Background(), self, "order-consumer", nil,
		map[string]string{"HTTP_ADDR": freeAddr(t), "CONSUMER_BATCH_SIZE": "0"}, &logs)
	if err == nil || !strings.HasPrefix(err.Error(), "order-consumer: ") {
		t.Fatalf("error %v, want one naming order-consumer", err)
	}
	if !strings.Contains(logs.String(), "CONSUMER_BATCH_SIZE") {
		t.Errorf("the child's output does not say why: %q", logs.String())
	}
}

// ADMIN_ADDR is order-api's pprof listener; order-consumer gets the next
// port, so both can be profiled from one variable.
func TestAdminAddrOfEachService(t *testing.T) {
	if got, err := nextPort("127.0.0.1:6060"); err != nil || got != "127.0.0.1:6061" {
		t.Errorf("nextPort = %q, %v", got, err)
	}
	for _, bad := range []string{"6060", "localhost:65535", "localhost:x"} {
		if _, err := nextPort(bad); err == nil || !strings.Contains(err.Error(), "ADMIN_ADDR") {
			t.Errorf("nextPort(%q) = %v, want an error naming ADMIN_ADDR", bad, err)
		}
	}
}
