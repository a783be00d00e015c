// Command order-consumer applies order events to its projection database and
// serves it on :8082. Its subcommands are the operator's tools:
//
//	order-consumer                          run the consumer and the read API
//	order-consumer migrate                  apply the projection migrations and exit
//	order-consumer dlq list [flags]         show what the dead-letter topic holds
//	order-consumer dlq replay [flags]       republish dead letters to their original topic
//	order-consumer rebuild [-allow-partial] rebuild the projection from the start of the topic
//	order-consumer health                   exit 0 if the running service's /readyz answers 200
//
// Selection flags of dlq list and replay: -partition N, -from OFFSET, -to OFFSET
// (inclusive offsets in DLQ partition N, so they need -partition), -key KEY;
// list also takes -json. replay needs a selection, or -all to replay
// everything; it skips letters replayed before unless -force, and letters
// cut to fit the DLQ. An invalid selection (a partition the DLQ does not
// have, a negative offset, from after to) is refused, nothing replayed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/consumer/projector"
	"github.com/ordersonkafka/orders/internal/platform/healthcheck"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/platform/service"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/migrations"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "order-consumer:", err)
		os.Exit(1)
	}
}

const usage = "usage: order-consumer [migrate | rebuild [-allow-partial] | health | dlq list [-json] [selection] | dlq replay (selection | -all) [-force]]"

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, log, err := service.Load[orderconsumer.Config](getenv, stderr)
	if err != nil {
		return err
	}
	switch {
	case len(args) == 0:
		return orderconsumer.Run(ctx, cfg, log, telemetry.Config{Getenv: getenv})
	case args[0] == "migrate" && len(args) == 1:
		if err := pgdb.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
			return err
		}
		if err := pgdb.Migrate(ctx, cfg.DatabaseURL, migrations.Projection()); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "order-consumer: migrations applied to", pgdb.Redact(cfg.DatabaseURL))
		return nil
	case args[0] == "rebuild":
		return rebuild(ctx, cfg, log, args[1:], stdout, stderr)
	case args[0] == "health" && len(args) == 1:
		return healthcheck.Ready(ctx, cfg.HTTPAddr, stdout)
	case args[0] == "dlq" && len(args) >= 2 && (args[1] == "list" || args[1] == "replay"):
		return dlq(ctx, cfg, args[1], args[2:], stdout, stderr)
	}
	return errors.New(usage)
}

func rebuild(ctx context.Context, cfg orderconsumer.Config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	allowPartial := fs.Bool("allow-partial", false, "rebuild even if the topic lost events the projection was built from")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; %s", fs.Args(), usage)
	}
	res, err := orderconsumer.Rebuild(ctx, cfg, log, *allowPartial)
	var (
		partial *projector.PartialTopicError
		loss    *projector.LossError
	)
	if errors.As(err, &partial) || errors.As(err, &loss) {
		return fmt.Errorf("%w; the projection is unchanged. To rebuild anyway, without those orders, run `order-consumer rebuild -allow-partial`", err)
	}
	if err != nil {
		return fmt.Errorf("%w; the projection is unchanged", err)
	}
	for _, b := range res.Partial {
		fmt.Fprintf(stdout, "partial: partition %d starts at offset %d; orders whose events were before it are not in the projection\n", b.Partition, b.First)
	}
	fmt.Fprintf(stdout, "rebuilt from %s: %d read, %d applied, %d duplicate, %d stale, %d skipped (undecodable, invalid or out of sequence: see the DLQ)\n",
		cfg.Topic, res.Read, res.Applied, res.Duplicate, res.Stale, res.Skipped)
	return nil
}

func dlq(ctx context.Context, cfg orderconsumer.Config, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlq "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	partition := fs.Int("partition", 0, "only this DLQ partition")
	from := fs.Int64("from", 0, "only DLQ offsets >= this (in -partition)")
	to := fs.Int64("to", 0, "only DLQ offsets <= this (in -partition)")
	key := fs.String("key", "", "only messages with this key (an order ID)")
	asJSON := fs.Bool("json", false, "print JSON (list)")
	all := fs.Bool("all", false, "replay every dead letter (replay)")
	force := fs.Bool("force", false, "replay letters replayed before too (replay)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; %s", fs.Args(), usage)
	}
	// A flag given is part of the selection whatever its value: a negative
	// partition is refused, never read as "every partition".
	var f deadletter.Filter
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "partition":
			f.Partition = partition
		case "from":
			f.FromOffset = from
		case "to":
			f.ToOffset = to
		}
	})
	f.Key = *key
	selected := f.Partition != nil || f.FromOffset != nil || f.ToOffset != nil || f.Key != ""

	switch cmd {
	case "list":
		if *all || *force {
			return errors.New("dlq list takes no -all or -force")
		}
		entries, err := orderconsumer.ListDLQ(ctx, cfg, f)
		if err != nil {
			return err
		}
		if *asJSON {
			return deadletter.WriteJSON(stdout, entries)
		}
		return deadletter.WriteTable(stdout, entries)
	default: // replay
		if !selected && !*all {
			return errors.New("dlq replay needs a selection (-partition, -from, -to, -key) or -all")
		}
		if selected && *all {
			return errors.New("dlq replay takes a selection or -all, not both")
		}
		res, err := orderconsumer.ReplayDLQ(ctx, cfg, f, *force)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(res)
	}
}
