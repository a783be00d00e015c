// Command order-api serves the orders HTTP API and, unless RELAY_ENABLED is
// false, relays the transactional outbox to Kafka.
//
//	order-api            run the service (configuration from the environment)
//	order-api migrate    apply the database migrations and exit
//	order-api health     exit 0 if the running service's /readyz answers 200
//	                     (the container health check: distroless has no curl)
//	order-api schemas check     the schema gate: each version of schemas/ in the
//	                            registry, and whether the newest is compatible
//	                            with the subject (exit 1 if not)
//	order-api schemas register  set the subject's level and register the
//	                            versions it lacks, oldest first
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ordersonkafka/orders/internal/platform/healthcheck"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/platform/service"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
	"github.com/ordersonkafka/orders/migrations"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "order-api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, log, err := service.Load[orderapi.Config](getenv, stderr)
	if err != nil {
		return err
	}
	switch {
	case len(args) == 0:
	case len(args) == 1 && args[0] == "migrate":
		if err := pgdb.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
			return err
		}
		if err := pgdb.Migrate(ctx, cfg.DatabaseURL, migrations.Orders()); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "order-api: migrations applied to", pgdb.Redact(cfg.DatabaseURL))
		return nil
	case len(args) == 1 && args[0] == "health":
		return healthcheck.Ready(ctx, cfg.HTTPAddr, stderr)
	case len(args) == 2 && args[0] == "schemas" && args[1] == "check":
		return orderapi.SchemasCheck(ctx, cfg, stdout)
	case len(args) == 2 && args[0] == "schemas" && args[1] == "register":
		return orderapi.SchemasRegister(ctx, cfg, stdout)
	default:
		return fmt.Errorf("unknown arguments %q (usage: order-api [migrate | health | schemas check | schemas register])", args)
	}
	return orderapi.Run(ctx, cfg, log, telemetry.Config{Getenv: getenv})
}
