package projectionstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// Events parked (order.OutcomeParked) wait in parked_events for their
// predecessor; the batch that applies it applies them (Apply). One that
// turns out never to apply, or waits longer than the consumer allows
// (ExpireParked), is marked to leave, with why; the consumer dead-letters
// the events leaving (Leaving) and then deletes them (Left).

// LeavingExpired is why a parked event leaves that waited too long; the
// others leave as order.OutcomeOutOfSequence or order.OutcomeTermsChanged.
const LeavingExpired = "expired"

// ParkedEvent is an event parked, as an operator sees it.
type ParkedEvent struct {
	EventID  uuid.UUID
	OrderID  uuid.UUID
	Version  int64
	Type     order.EventType
	Origin   Origin
	ParkedAt time.Time
	// Leaving is "" while the event waits; otherwise why it is to be
	// dead-lettered (LeavingExpired, or the outcome it got), and Reason
	// says more.
	Leaving string
	Reason  string
}

// marshalEvent is how parked_events keeps an event: the consumer's own
// JSON of it, read back by unmarshalEvent.
func marshalEvent(ev order.Event) ([]byte, error) { return json.Marshal(ev) }

func unmarshalEvent(doc []byte) (order.Event, error) {
	var ev order.Event
	err := json.Unmarshal(doc, &ev)
	return ev, err
}

const parkedColumns = `event_id, order_id, version, event->>'Type', topic, partition, "offset",
    msg_key, msg_value, header_keys, header_values, msg_time, parked_at, coalesce(leaving, ''), coalesce(leaving_reason, '')`

func scanParked(rows pgx.Rows) ([]ParkedEvent, error) {
	var out []ParkedEvent
	for rows.Next() {
		var (
			p      ParkedEvent
			typ    string
			keys   []string
			values [][]byte
		)
		if err := rows.Scan(&p.EventID, &p.OrderID, &p.Version, &typ, &p.Origin.Topic, &p.Origin.Partition, &p.Origin.Offset,
			&p.Origin.Key, &p.Origin.Value, &keys, &values, &p.Origin.Time, &p.ParkedAt, &p.Leaving, &p.Reason); err != nil {
			return nil, err
		}
		p.Type = order.EventType(typ)
		for i, k := range keys {
			p.Origin.Headers = append(p.Origin.Headers, Header{Key: k, Value: values[i]})
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Parked returns at most limit parked events, those of orderID only if it
// is not uuid.Nil, oldest first: waiting ones and those about to leave.
func (s *Store) Parked(ctx context.Context, orderID uuid.UUID, limit int) ([]ParkedEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+parkedColumns+` FROM parked_events
WHERE $1::uuid IS NULL OR order_id = $1 ORDER BY parked_at, order_id, version LIMIT $2`, nullUUID(orderID), limit)
	if err != nil {
		return nil, fmt.Errorf("list parked events: %w", err)
	}
	defer rows.Close()
	out, err := scanParked(rows)
	if err != nil {
		return nil, fmt.Errorf("list parked events: %w", err)
	}
	return out, nil
}

func nullUUID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id
}

// ExpireParked marks the events parked longer than maxAge to leave
// (LeavingExpired) and returns how many. It takes their orders' locks
// first, as a batch does, so an event is never both applied by a batch and
// marked to leave.
func (s *Store) ExpireParked(ctx context.Context, maxAge time.Duration) (int64, error) {
	var marked int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT DISTINCT order_id FROM parked_events WHERE leaving IS NULL AND parked_at < now() - $1::interval`, maxAge)
		orders, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil || len(orders) == 0 {
			return err
		}
		keys := make([]int32, len(orders))
		ids := make([][16]byte, len(orders))
		for i, id := range orders {
			keys[i], ids[i] = lockKey(id), id
		}
		slices.Sort(keys)
		if _, err := tx.Exec(ctx, lockOrdersSQL, lockNamespace, pgdb.Int4s(slices.Compact(keys))); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE parked_events SET leaving = $3,
    leaving_reason = format('parked at %s, longer than %s, waiting for version %s of order %s', parked_at, $1::interval, version - 1, order_id)
WHERE leaving IS NULL AND parked_at < now() - $1::interval AND order_id = ANY($2::uuid[])`, maxAge, pgdb.UUIDs(ids), LeavingExpired)
		marked = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire parked events: %w", err)
	}
	return marked, nil
}

// Leaving returns at most limit parked events marked to leave, oldest
// first.
func (s *Store) Leaving(ctx context.Context, limit int) ([]ParkedEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+parkedColumns+` FROM parked_events
WHERE leaving IS NOT NULL ORDER BY parked_at LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read parked events leaving: %w", err)
	}
	defer rows.Close()
	out, err := scanParked(rows)
	if err != nil {
		return nil, fmt.Errorf("read parked events leaving: %w", err)
	}
	return out, nil
}

// Left deletes the parked events ids that were marked to leave, once they
// are dead-lettered.
func (s *Store) Left(ctx context.Context, ids []uuid.UUID) error {
	b := make([][16]byte, len(ids))
	for i, id := range ids {
		b[i] = id
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM parked_events WHERE event_id = ANY($1::uuid[]) AND leaving IS NOT NULL`, pgdb.UUIDs(b)); err != nil {
		return fmt.Errorf("delete parked events dead-lettered: %w", err)
	}
	return nil
}

// parkedCollector reads the parked events at scrape time.
type parkedCollector struct {
	pool       *pgxpool.Pool
	count, age *prometheus.Desc
}

// NewParkedCollector returns a collector of
//
//	consumer_parked_events                   events parked, waiting for their predecessor
//	consumer_parked_oldest_age_seconds       how long the oldest has waited (0 when none)
//
// queried from pool on each scrape (bounded by 2 s; on failure both are
// left out of that scrape).
func NewParkedCollector(pool *pgxpool.Pool) prometheus.Collector {
	return &parkedCollector{pool: pool,
		count: prometheus.NewDesc("consumer_parked_events", "Events parked until their predecessor is applied.", nil, nil),
		age:   prometheus.NewDesc("consumer_parked_oldest_age_seconds", "How long the oldest parked event has waited; 0 when none.", nil, nil),
	}
}

func (c *parkedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.count; ch <- c.age }

func (c *parkedCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var (
		n   int64
		age float64
	)
	if err := c.pool.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(parked_at)), 0)::float8
FROM parked_events WHERE leaving IS NULL`).Scan(&n, &age); err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, max(age, 0))
}
