// Command order-consumer applies order events to its projection database and
// serves it on :8082. Its subcommands are the operator's tools:
//
//	order-consumer                          run the consumer and the read API
//	order-consumer migrate                  create the database if needed, apply the projection migrations and exit
//	order-consumer health                   exit 0 if the running service's /readyz answers 200
//	order-consumer rebuild [-allow-partial] rebuild the projection from the start of the topic
//	order-consumer dlq list [flags]         show what the dead-letter topic holds
//	order-consumer dlq replay [flags]       republish dead letters to their original topic
//	order-consumer parked list [-order ID] [-json]
//	                                        show the events parked until their predecessor is applied
//	order-consumer events tail [-order ID] [-n N | -from-beginning] [-follow]
//	                                        print the topic's records as JSON lines, decoded
//	order-consumer -h                       this list
//
// Selection flags of dlq list and replay: -partition N, -from OFFSET, -to OFFSET
// (inclusive offsets in DLQ partition N, so they need -partition), -key KEY;
// list also takes -json. replay needs a selection, or -all to replay
// everything; it skips letters replayed before unless -force, and letters
// cut to fit the DLQ. An invalid selection (a partition the DLQ does not
// have, a negative offset, from after to) is refused, nothing replayed.
//
// events tail reads ORDER_EVENTS_TOPIC's partitions directly, never joining
// CONSUMER_GROUP nor committing: from the last N records of each partition
// (-n, 20; counted before -order selects) or -from-beginning, partition by
// partition, then with -follow what arrives, until interrupted. A record
// that does not decode, or breaks a rule, is printed with its error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/consumer/projector"
	"github.com/ordersonkafka/orders/internal/platform/cli"
	"github.com/ordersonkafka/orders/migrations"
)

func main() { program.Main() }

// run is what main runs, for the tests.
var run = program.Run

type call = cli.Call[orderconsumer.Config]

var program = cli.Program[orderconsumer.Config]{
	Name: "order-consumer", Serve: orderconsumer.Run, Migrations: migrations.Projection(),
	Doc: "applies order events to its projection database and serves it on HTTP_ADDR",
	Commands: []cli.Command[orderconsumer.Config]{
		{Name: "rebuild", Args: "[-allow-partial]", Doc: "rebuild the projection from the start of the topic, then swap it in", Run: rebuild},
		{Name: "dlq list", Args: "[-json] [selection]", Doc: "show what the dead-letter topic holds",
			Run: func(ctx context.Context, c call) error { return dlq(ctx, c, "list") }},
		{Name: "dlq replay", Args: "(selection | -all) [-force]", Doc: "republish dead letters to their original topic",
			Run: func(ctx context.Context, c call) error { return dlq(ctx, c, "replay") }},
		{Name: "parked list", Args: "[-order ID] [-json]", Doc: "show the events parked until their predecessor is applied", Run: parkedList},
		{Name: "events tail", Args: "[-order ID] [-n N | -from-beginning] [-follow]",
			Doc: "print the topic's records as JSON lines, read outside the consumer group", Run: eventsTail},
	},
	Notes: `selection: -partition N, -from OFFSET, -to OFFSET (inclusive offsets in DLQ partition N,
so they need -partition), -key KEY. replay skips letters replayed before unless -force.`,
}

func parkedList(ctx context.Context, c call) error {
	fs := flag.NewFlagSet("parked list", flag.ContinueOnError)
	orderID := fs.String("order", "", "only this order's events (its ID)")
	asJSON := fs.Bool("json", false, "one JSON object per event")
	if err := c.Parse(fs); err != nil {
		return err
	}
	var id uuid.UUID
	if *orderID != "" {
		var err error
		if id, err = uuid.Parse(*orderID); err != nil {
			return fmt.Errorf("-order %q is not an order ID: %w", *orderID, err)
		}
	}
	parked, err := orderconsumer.ListParked(ctx, c.Config, id)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.Stdout)
	for _, p := range parked {
		if *asJSON {
			if err := enc.Encode(map[string]any{"event_id": p.EventID, "order_id": p.OrderID, "version": p.Version,
				"event_type": p.Type, "topic": p.Origin.Topic, "partition": p.Origin.Partition, "offset": p.Origin.Offset,
				"parked_at": p.ParkedAt, "leaving": p.Leaving, "reason": p.Reason}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(c.Stdout, "%s order %s version %d %s from %s/%d@%d, parked %s",
			p.EventID, p.OrderID, p.Version, p.Type, p.Origin.Topic, p.Origin.Partition, p.Origin.Offset, p.ParkedAt.UTC().Format(time.RFC3339))
		if p.Leaving != "" {
			fmt.Fprintf(c.Stdout, ", leaving for the DLQ (%s: %s)", p.Leaving, p.Reason)
		}
		fmt.Fprintln(c.Stdout)
	}
	if !*asJSON {
		fmt.Fprintf(c.Stdout, "%d parked\n", len(parked))
	}
	return nil
}

func eventsTail(ctx context.Context, c call) error {
	fs := flag.NewFlagSet("events tail", flag.ContinueOnError)
	orderID := fs.String("order", "", "only this order's records (its ID): keyed by it, or whose event names it")
	fromBeginning := fs.Bool("from-beginning", false, "read each partition from its first offset")
	last := fs.Int("n", 20, "start this many records before each partition's end, counted before -order selects")
	follow := fs.Bool("follow", false, "then print what arrives, until interrupted")
	if err := c.Parse(fs); err != nil {
		return err
	}
	nGiven := false // a flag given is meant: -n with -from-beginning is refused, not ignored
	fs.Visit(func(fl *flag.Flag) { nGiven = nGiven || fl.Name == "n" })
	switch {
	case nGiven && *fromBeginning:
		return errors.New("events tail takes -from-beginning or -n, not both")
	case *last < 0:
		return fmt.Errorf("-n %d: want 0 or more records", *last)
	}
	opts := orderconsumer.TailOptions{FromBeginning: *fromBeginning, Last: *last, Follow: *follow}
	if *orderID != "" {
		var err error
		if opts.Order, err = uuid.Parse(*orderID); err != nil {
			return fmt.Errorf("-order %q is not an order ID: %w", *orderID, err)
		}
	}
	enc := json.NewEncoder(c.Stdout)
	enc.SetEscapeHTML(false)
	return orderconsumer.Tail(ctx, c.Config, opts, func(r orderconsumer.TailRecord) error { return enc.Encode(r) })
}

func rebuild(ctx context.Context, c call) error {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	allowPartial := fs.Bool("allow-partial", false, "rebuild even if the topic lost events the projection was built from")
	if err := c.Parse(fs); err != nil {
		return err
	}
	cfg, stdout := c.Config, c.Stdout
	res, err := orderconsumer.Rebuild(ctx, cfg, c.Log, *allowPartial)
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
	fmt.Fprintf(stdout, "rebuilt from %s: %d read, %d applied, %d duplicate, %d stale, %d parked (applied once their predecessor came), %d skipped (undecodable, invalid or out of sequence: see the DLQ)\n",
		cfg.Topic, res.Read, res.Applied, res.Duplicate, res.Stale, res.Parked, res.Skipped)
	return nil
}

func dlq(ctx context.Context, c call, cmd string) error {
	fs := flag.NewFlagSet("dlq "+cmd, flag.ContinueOnError)
	partition := fs.Int("partition", 0, "only this DLQ partition")
	from := fs.Int64("from", 0, "only DLQ offsets >= this (in -partition)")
	to := fs.Int64("to", 0, "only DLQ offsets <= this (in -partition)")
	key := fs.String("key", "", "only messages with this key (an order ID)")
	asJSON := fs.Bool("json", false, "print JSON (list)")
	all := fs.Bool("all", false, "replay every dead letter (replay)")
	force := fs.Bool("force", false, "replay letters replayed before too (replay)")
	if err := c.Parse(fs); err != nil {
		return err
	}
	cfg, stdout := c.Config, c.Stdout
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
