// Command playground runs the whole system without Docker: an embedded
// Kafka-protocol broker (kfake) on :9092 and a Confluent-compatible Schema
// Registry on :8081 in this process, and order-api on :8080 and
// order-consumer on :8082 as two child processes of the same binary (so
// each has its own memory and its own /metrics, as in production), on a real
// PostgreSQL with a database for each service (see devstack.EnsurePostgres
// for how one is found or started). `make run` starts it; Ctrl-C stops the
// services gracefully, then everything else, and removes what it started.
//
// The OTEL_* and LOG_* variables of the environment reach both services, so
// `OTEL_TRACES_EXPORTER=console make run` prints their spans.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/logging"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/platform/service"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) == 3 && os.Args[1] == childArg {
		if err := runService(ctx, os.Args[2], os.Getenv, os.Stderr); err != nil {
			fmt.Fprintf(os.Stderr, "playground %s: %v\n", os.Args[2], err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "playground:", err)
		os.Exit(1)
	}
}

// The playground's fixed addresses, the same as docker-compose.yml's.
const (
	kafkaPort    = 9092
	registryAddr = ":8081"
	apiAddr      = ":8080"
	consumerAddr = ":8082"
	topic        = "order-events"
	dlqTopic     = "order-events.dlq"
	partitions   = 6
)

func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	log, err := logging.New(stderr, "info", "text")
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }

	server, stopPG, err := devstack.EnsurePostgres(ctx, getenv, logf)
	if err != nil {
		return err
	}
	defer func() {
		if err := stopPG(); err != nil {
			log.Warn("stop PostgreSQL", "error", err)
		}
	}()
	ordersURL, err := withDatabase(server, "orders")
	if err != nil {
		return err
	}
	projectionURL, err := withDatabase(server, "orders_projection")
	if err != nil {
		return err
	}
	for _, u := range []string{ordersURL, projectionURL} {
		if err := pgdb.EnsureDatabase(ctx, u); err != nil {
			return err
		}
	}

	kafka, err := devstack.StartKafka(devstack.KafkaConfig{Port: kafkaPort, Partitions: partitions, Topics: []string{topic, dlqTopic}})
	if err != nil {
		return fmt.Errorf("start Kafka on :%d: %w", kafkaPort, err)
	}
	defer kafka.Close()
	registry, err := devstack.StartRegistry(registryAddr)
	if err != nil {
		return fmt.Errorf("start Schema Registry on %s: %w", registryAddr, err)
	}
	defer registry.Close()

	shared := map[string]string{
		"KAFKA_BROKERS":       kafka.Brokers()[0],
		"SCHEMA_REGISTRY_URL": registry.URL(),
		"ORDER_EVENTS_TOPIC":  topic,
		"DLQ_TOPIC":           dlqTopic,
		"LOG_FORMAT":          "text",
	}
	services := map[string]map[string]string{
		"order-api":      {"HTTP_ADDR": apiAddr, "DATABASE_URL": ordersURL},
		"order-consumer": {"HTTP_ADDR": consumerAddr, "DATABASE_URL": projectionURL},
	}
	// Check both configurations here, so a bad variable fails before anything starts.
	if _, err := config.Load[orderapi.Config](overlay(getenv, shared, services["order-api"])); err != nil {
		return err
	}
	if _, err := config.Load[orderconsumer.Config](overlay(getenv, shared, services["order-consumer"])); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the playground's binary to start the services: %w", err)
	}

	banner(stdout, pgdb.Redact(ordersURL), pgdb.Redact(projectionURL))
	g, gctx := errgroup.WithContext(ctx)
	for name, env := range services {
		g.Go(func() error { return startService(gctx, self, name, shared, env, stderr) })
	}
	return g.Wait()
}

// childArg makes the binary run one service instead of the playground.
const childArg = "-playground-service"

// startService runs service name as a child process and waits for it. When
// ctx ends it is sent SIGTERM (its graceful shutdown) and given
// shutdownGrace before it is killed. It returns nil after such a shutdown
// if the service exited cleanly, and an error naming it otherwise.
func startService(ctx context.Context, self, name string, shared, env map[string]string, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, self, childArg, name)
	cmd.Env = os.Environ()
	for _, layer := range []map[string]string{shared, env} {
		for k, v := range layer {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = shutdownGrace
	err := cmd.Run()
	switch {
	case ctx.Err() != nil && (err == nil || errors.Is(err, ctx.Err())):
		// Stopped by us (or by the same Ctrl-C) and exited 0: Wait reports
		// a clean exit after Cancel as the context's error.
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s did not stop cleanly: %w", name, err)
	case err == nil:
		err = errors.New("exited")
	}
	return fmt.Errorf("%s: %w", name, err)
}

// shutdownGrace is how long a service may take to stop after SIGTERM: its
// own SHUTDOWN_TIMEOUT (20s by default) and a little more.
const shutdownGrace = 25 * time.Second

// runService is the child: one service, configured by the environment the
// playground gave it, logging as text with its name.
func runService(ctx context.Context, name string, getenv func(string) string, stderr io.Writer) error {
	tel := telemetry.Config{Getenv: getenv}
	switch name {
	case "order-api":
		cfg, log, err := service.Load[orderapi.Config](getenv, stderr)
		if err != nil {
			return err
		}
		return orderapi.Run(ctx, cfg, log, tel)
	case "order-consumer":
		cfg, log, err := service.Load[orderconsumer.Config](getenv, stderr)
		if err != nil {
			return err
		}
		return orderconsumer.Run(ctx, cfg, log, tel)
	}
	return fmt.Errorf("unknown service %q", name)
}

// overlay gives a service the playground's settings; anything else comes
// from the environment, so LOG_LEVEL=debug make run works.
func overlay(getenv func(string) string, layers ...map[string]string) func(string) string {
	return func(k string) string {
		for i := len(layers) - 1; i >= 0; i-- {
			if v, ok := layers[i][k]; ok {
				return v
			}
		}
		return getenv(k)
	}
}

// withDatabase returns the server URL pointing at database name.
func withDatabase(server, name string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

func banner(w io.Writer, ordersDB, projectionDB string) {
	fmt.Fprintf(w, `
Orders on Kafka — playground
  order-api        http://localhost:8080
  order-consumer   http://localhost:8082   group order-projector
  Kafka            localhost:9092   topics %s, %s (%d partitions)
  Schema Registry  http://localhost:8081   subject %s-value
  PostgreSQL       %s (order-api), %s (order-consumer)

Place an order:
  curl -si localhost:8080/orders -H 'Content-Type: application/json' \
    -d '{"customer_id":"c-42","currency":"EUR","items":[{"sku":"BOOK-1","quantity":2,"unit_price_minor":1250}]}'
Pay it (use the id from the Location header), then read the projection:
  curl -si -X POST localhost:8080/orders/<id>/pay
  curl -s localhost:8082/orders/<id>
Read the events (raw bytes; any Confluent Avro client decodes them with the registry above):
  kcat -b localhost:9092 -t order-events -C -e -f '%%p/%%o key=%%k headers=%%h\n'
Send a poison message, then see it in the dead-letter topic:
  echo 'not avro' | kcat -b localhost:9092 -t order-events -P -k some-order
  go run ./cmd/order-consumer dlq list
Metrics, and a minute of load at 500 orders/s:
  curl -s localhost:8080/metrics; curl -s localhost:8082/metrics
  make bench

Ctrl-C stops everything.
`, topic, dlqTopic, partitions, topic, ordersDB, projectionDB)
}
