// Command playground runs the whole system in one process, without Docker:
// an embedded Kafka-protocol broker (kfake) on :9092, a Confluent-compatible
// Schema Registry on :8081, order-api on :8080 and order-consumer on :8082,
// on a real PostgreSQL with a database for each service (see
// devstack.EnsurePostgres for how one is found or started). `make run` starts
// it; Ctrl-C stops everything and removes what it started.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/ordersonkafka/orders/internal/config"
	"github.com/ordersonkafka/orders/internal/devstack"
	"github.com/ordersonkafka/orders/internal/logging"
	"github.com/ordersonkafka/orders/internal/orderapi"
	"github.com/ordersonkafka/orders/internal/orderconsumer"
	"github.com/ordersonkafka/orders/internal/pgdb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
	apiCfg, err := config.Load[orderapi.Config](overlay(getenv, shared, map[string]string{"HTTP_ADDR": apiAddr, "DATABASE_URL": ordersURL}))
	if err != nil {
		return err
	}
	consumerCfg, err := config.Load[orderconsumer.Config](overlay(getenv, shared, map[string]string{"HTTP_ADDR": consumerAddr, "DATABASE_URL": projectionURL}))
	if err != nil {
		return err
	}

	banner(stdout, pgdb.Redact(ordersURL), pgdb.Redact(projectionURL))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return orderapi.Run(gctx, apiCfg, log.With("service", "order-api")) })
	g.Go(func() error { return orderconsumer.Run(gctx, consumerCfg, log.With("service", "order-consumer")) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
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

Ctrl-C stops everything.
`, topic, dlqTopic, partitions, topic, ordersDB, projectionDB)
}
