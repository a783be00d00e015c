package orderapi

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
	"github.com/ordersonkafka/orders/migrations"
)

func openOutbox(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	return pgdb.OpenMigrated(ctx, cfg.DatabaseURL, 2, cfg.Migrate, migrations.Orders())
}

// OutboxList is `order-api outbox list`: one line per outbox row the relay
// set aside, in outbox id order (each order's in its order), with its
// order, event, size, when and why, then the count.
func OutboxList(ctx context.Context, cfg Config, w io.Writer) error {
	pool, err := openOutbox(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := outbox.ListSetAside(ctx, pool)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTBOX ID\tORDER\tEVENT\tEVENT ID\tBYTES\tSET ASIDE\tREASON")
	for _, s := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.OrderID, s.EventType, s.EventID, s.Bytes,
			s.SetAsideAt.UTC().Format(time.RFC3339), s.Reason)
	}
	fmt.Fprintf(tw, "set aside: %d\n", len(rows))
	return tw.Flush()
}

// OutboxRetry is `order-api outbox retry`: it moves the set-aside rows of
// the order orderID, or of every order when all, back to the outbox, where
// the relay publishes them in their order, and prints how many it moved.
// A row Kafka still refuses is set aside again.
func OutboxRetry(ctx context.Context, cfg Config, w io.Writer, orderID string, all bool) error {
	switch {
	case all == (orderID != ""):
		return fmt.Errorf("outbox retry takes -order ID or -all, one of them")
	case !all:
		id, err := uuid.Parse(orderID)
		if err != nil {
			return fmt.Errorf("outbox retry -order %q: not an order ID: %w", orderID, err)
		}
		orderID = id.String() // the message key's form
	}
	pool, err := openOutbox(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := outbox.RetrySetAside(ctx, pool, orderID)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "moved back to the outbox: %d\n", n)
	return nil
}
