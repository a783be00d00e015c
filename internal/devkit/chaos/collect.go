package chaos

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/event/envelope"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
)

// TopicEvent is one record of the events topic, decoded.
type TopicEvent struct {
	Partition int
	Offset    int64
	EventID   uuid.UUID
	OrderID   uuid.UUID
	Version   int64
	Type      order.EventType
	Corr      string // the correlation_id header: the request that made it
}

// LedgerRow is one row of the consumer's ledger (processed_events).
type LedgerRow struct {
	EventID, OrderID uuid.UUID
	Version          int64
	Type, Outcome    string
	AppliedAt        time.Time
}

// State is an order's version and status, in order-api's orders table or
// in the consumer's projection.
type State struct {
	Version int64
	Status  string
}

// DeadLetter is one record of the dead-letter topic.
type DeadLetter struct {
	Partition     int
	Offset        int64
	Class, Reason string
}

// Records are what the checker reads once everything has drained: the
// client's log, the topic, the ledger and the projection, and order-api's
// own tables for the convergence check.
type Records struct {
	Requests    []Request
	Topic       []TopicEvent
	Undecodable []string // records of the topic that are not order events, described
	DeadLetters []DeadLetter
	Ledger      []LedgerRow
	Projection  map[uuid.UUID]State
	Orders      map[uuid.UUID]State
	Unpublished int // outbox rows not yet published
	SetAside    int // outbox rows the broker refused
	Parked      int // events the consumer holds for an earlier version
	// The topic's partitions at the start and now: an order may move
	// partition only if they grew.
	InitialPartitions, TopicPartitions int
	// CustomerTotals is the customer_orders read model; OrderTerms the
	// orders table's customer, currency and total of each order, from
	// which the checker computes what it should hold.
	CustomerTotals map[TotalsLine]Totals
	OrderTerms     map[uuid.UUID]Terms
}

// TotalsLine is one line of customer_orders: a customer's orders in one
// status and currency.
type TotalsLine struct{ Customer, Status, Currency string }

// Totals are a line's counts.
type Totals struct{ Orders, TotalMinor int64 }

// Terms are what an order was placed with.
type Terms struct {
	Customer, Currency string
	TotalMinor         int64
}

// collect reads every record but the client's log.
// name is the events topic (the self-test reads a corrupted copy).
func collect(ctx context.Context, brokers, registryURL, name, ordersURL, projectionURL string) (*Records, error) {
	r := &Records{}
	var err error
	r.InitialPartitions = partitions
	if r.Topic, r.Undecodable, r.TopicPartitions, err = readEvents(ctx, brokers, registryURL, name); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if r.DeadLetters, err = readDeadLetters(ctx, brokers, dlqTopic); err != nil {
		return nil, fmt.Errorf("read %s: %w", dlqTopic, err)
	}
	if err := withDB(ctx, ordersURL, func(c *pgx.Conn) error {
		if r.Orders, err = states(ctx, c, "SELECT id, version, status FROM orders"); err != nil {
			return err
		}
		rows, err := c.Query(ctx, "SELECT id, customer_id, currency, total_minor FROM orders")
		if err != nil {
			return err
		}
		r.OrderTerms = map[uuid.UUID]Terms{}
		var id uuid.UUID
		var t Terms
		if _, err := pgx.ForEachRow(rows, []any{&id, &t.Customer, &t.Currency, &t.TotalMinor}, func() error {
			r.OrderTerms[id] = t
			return nil
		}); err != nil {
			return err
		}
		if err := c.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&r.Unpublished); err != nil {
			return err
		}
		return c.QueryRow(ctx, "SELECT count(*) FROM outbox_set_aside").Scan(&r.SetAside)
	}); err != nil {
		return nil, fmt.Errorf("read order-api's database: %w", err)
	}
	if err := withDB(ctx, projectionURL, func(c *pgx.Conn) error {
		if r.Projection, err = states(ctx, c, "SELECT id, version, status FROM order_projection"); err != nil {
			return err
		}
		if err := c.QueryRow(ctx, "SELECT count(*) FROM parked_events").Scan(&r.Parked); err != nil {
			return err
		}
		lines, err := c.Query(ctx, "SELECT customer_id, status, currency, orders, total_minor::bigint FROM customer_orders WHERE orders > 0")
		if err != nil {
			return err
		}
		r.CustomerTotals = map[TotalsLine]Totals{}
		var line TotalsLine
		var t Totals
		if _, err := pgx.ForEachRow(lines, []any{&line.Customer, &line.Status, &line.Currency, &t.Orders, &t.TotalMinor}, func() error {
			r.CustomerTotals[line] = t
			return nil
		}); err != nil {
			return err
		}
		rows, err := c.Query(ctx, "SELECT event_id, order_id, version, event_type, outcome, applied_at FROM processed_events")
		if err != nil {
			return err
		}
		r.Ledger, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (LedgerRow, error) {
			var l LedgerRow
			err := row.Scan(&l.EventID, &l.OrderID, &l.Version, &l.Type, &l.Outcome, &l.AppliedAt)
			return l, err
		})
		return err
	}); err != nil {
		return nil, fmt.Errorf("read order-consumer's database: %w", err)
	}
	return r, nil
}

func withDB(ctx context.Context, url string, f func(*pgx.Conn) error) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return f(c)
}

func states(ctx context.Context, c *pgx.Conn, query string) (map[uuid.UUID]State, error) {
	rows, err := c.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	out := map[uuid.UUID]State{}
	var id uuid.UUID
	var s State
	_, err = pgx.ForEachRow(rows, []any{&id, &s.Version, &s.Status}, func() error {
		out[id] = s
		return nil
	})
	return out, err
}

// readTopic calls f with every record of every partition of topic, from
// the first offset to the end as it is now, partition by partition.
func readTopic(ctx context.Context, brokers, name string, f func(kafka.Message) error) (partitions int, err error) {
	conn, err := kafka.DialContext(ctx, "tcp", brokers)
	if err != nil {
		return 0, err
	}
	parts, err := conn.ReadPartitions(name)
	conn.Close()
	if err != nil {
		return 0, err
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].ID < parts[j].ID })
	for _, p := range parts {
		if err := readPartition(ctx, brokers, name, p.ID, f); err != nil {
			return 0, fmt.Errorf("partition %d: %w", p.ID, err)
		}
	}
	return len(parts), nil
}

func readPartition(ctx context.Context, brokers, name string, partition int, f func(kafka.Message) error) error {
	conn, err := kafka.DialLeader(ctx, "tcp", brokers, name, partition)
	if err != nil {
		return err
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return err
	}
	if first == last {
		return nil
	}
	if _, err := conn.Seek(first, kafka.SeekAbsolute); err != nil {
		return err
	}
	for next := first; next < last; {
		if err := ctx.Err(); err != nil {
			return err
		}
		from := next
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		batch := conn.ReadBatch(1, 10<<20)
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			if m.Offset >= last {
				break
			}
			if err := f(m); err != nil {
				batch.Close()
				return err
			}
			next = m.Offset + 1
		}
		if err := batch.Close(); err != nil && !errors.Is(err, kafka.ErrGenerationEnded) {
			return err
		}
		if next == from {
			return fmt.Errorf("no record read at offset %d of %d..%d", next, first, last)
		}
		if _, err := conn.Seek(next, kafka.SeekAbsolute); err != nil {
			return err
		}
	}
	return nil
}

func readEvents(ctx context.Context, brokers, registryURL, name string) ([]TopicEvent, []string, int, error) {
	dec, err := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: registryURL})
	if err != nil {
		return nil, nil, 0, err
	}
	var events []TopicEvent
	var bad []string
	n, err := readTopic(ctx, brokers, name, func(m kafka.Message) error {
		ev, err := dec.Decode(ctx, m.Value)
		if err != nil {
			bad = append(bad, fmt.Sprintf("partition %d offset %d: %v", m.Partition, m.Offset, err))
			return nil
		}
		te := TopicEvent{Partition: m.Partition, Offset: m.Offset, OrderID: ev.Order.ID, Version: ev.Order.Version, Type: ev.Type}
		for _, h := range m.Headers {
			switch h.Key {
			case envelope.HeaderEventID:
				te.EventID, _ = uuid.ParseBytes(h.Value)
			case envelope.HeaderCorrelationID:
				te.Corr = string(h.Value)
			}
		}
		if te.EventID == uuid.Nil {
			te.EventID = ev.ID
		}
		events = append(events, te)
		return nil
	})
	return events, bad, n, err
}

func readDeadLetters(ctx context.Context, brokers, name string) ([]DeadLetter, error) {
	var out []DeadLetter
	_, err := readTopic(ctx, brokers, name, func(m kafka.Message) error {
		d := DeadLetter{Partition: m.Partition, Offset: m.Offset}
		for _, h := range m.Headers {
			switch h.Key {
			case deadletter.HeaderExceptionClass:
				d.Class = string(h.Value)
			case deadletter.HeaderExceptionMessage:
				d.Reason = string(h.Value)
			}
		}
		out = append(out, d)
		return nil
	})
	return out, err
}
