// Command order-api serves the orders HTTP API and, unless RELAY_ENABLED is
// false, relays the transactional outbox to Kafka.
//
//	order-api                   run the service (configuration from the environment)
//	order-api migrate           create the database if needed, apply the migrations and exit
//	order-api health            exit 0 if the running service's /readyz answers 200
//	                            (the container health check: distroless has no curl)
//	order-api schemas check [-strict]
//	                            the schema gate: each version of schemas/ in the
//	                            registry, each version of the subject schemas/
//	                            lacks (a newer writer's), and whether the newest
//	                            is compatible with the subject (exit 1 if not;
//	                            with -strict, also if the subject holds a
//	                            version schemas/ lacks)
//	order-api schemas register  set the subject's level and register the
//	                            versions it lacks, oldest first
//	order-api outbox list       the outbox rows the relay set aside (Kafka
//	                            refused them, or an earlier event of their order)
//	order-api outbox retry (-order ID | -all)
//	                            move them back to the outbox, to be published
//	order-api -h                this list
package main

import (
	"context"
	"flag"

	"github.com/ordersonkafka/orders/internal/platform/cli"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
	"github.com/ordersonkafka/orders/migrations"
)

func main() { program.Main() }

// run is what main runs, for the tests.
var run = program.Run

type call = cli.Call[orderapi.Config]

var program = cli.Program[orderapi.Config]{
	Name: "order-api", Serve: orderapi.Run, Migrations: migrations.Orders(),
	Doc: "serves the orders HTTP API and, unless RELAY_ENABLED=false, relays the outbox to Kafka",
	Commands: []cli.Command[orderapi.Config]{
		{Name: "schemas check", Args: "[-strict]", Doc: "the schema gate: exit 1 if the newest schema may not be deployed (-strict: or if the registry holds a version schemas/ lacks)",
			Run: schemasCheck},
		{Name: "schemas register", Doc: "set the subject's level and register the schema versions it lacks",
			Run: func(ctx context.Context, c call) error { return orderapi.SchemasRegister(ctx, c.Config, c.Stdout) }},
		{Name: "outbox list", Doc: "the outbox rows set aside: Kafka refused them, or an earlier event of their order",
			Run: func(ctx context.Context, c call) error { return orderapi.OutboxList(ctx, c.Config, c.Stdout) }},
		{Name: "outbox retry", Args: "(-order ID | -all)", Doc: "move set-aside rows back to the outbox, to be published in their order",
			Run: outboxRetry},
	},
}

func schemasCheck(ctx context.Context, c call) error {
	fs := flag.NewFlagSet("schemas check", flag.ContinueOnError)
	strict := fs.Bool("strict", false, "exit 1 also if the subject holds a version schemas/ does not have (a newer writer's): for CI")
	if err := c.Parse(fs); err != nil {
		return err
	}
	return orderapi.SchemasCheck(ctx, c.Config, c.Stdout, *strict)
}

func outboxRetry(ctx context.Context, c call) error {
	fs := flag.NewFlagSet("outbox retry", flag.ContinueOnError)
	orderID := fs.String("order", "", "only this order's rows")
	all := fs.Bool("all", false, "every order's rows")
	if err := c.Parse(fs); err != nil {
		return err
	}
	return orderapi.OutboxRetry(ctx, c.Config, c.Stdout, *orderID, *all)
}
