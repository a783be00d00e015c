package projectionstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/consumer/customertotals"
	"github.com/ordersonkafka/orders/internal/consumer/orderview"
	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/devkit/cpustat"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/migrations"
)

// backlog returns n events as a partition would hold them: orders placed and
// paid, their events interleaved with other orders' (each order's in
// version order), about one in ten redelivered once.
func backlog(tb testing.TB, n int) []order.Event {
	tb.Helper()
	const window = 200 // orders in flight at once
	events := make([]order.Event, 0, n)
	now := order.Now()
	for len(events) < n {
		paid := make([]order.Event, 0, window)
		for i := 0; i < window && len(events) < n; i++ {
			o, placed, err := order.Place(order.NewOrder{
				CustomerID: fmt.Sprintf("c-%d", i%37), Currency: "EUR",
				Items: []order.Item{{SKU: "sku-1", Quantity: 1, UnitPriceMinor: 1000}, {SKU: "sku-2", Quantity: 3, UnitPriceMinor: 250}},
			}, now, order.Meta{})
			if err != nil {
				tb.Fatal(err)
			}
			events = append(events, placed)
			ev, err := order.Standard.Apply(&o, order.Change{Action: order.ActionPay, PaymentReference: "ref"}, now, order.Meta{})
			if err != nil {
				tb.Fatal(err)
			}
			paid = append(paid, ev)
		}
		for i, ev := range paid {
			if len(events) == n {
				break
			}
			events = append(events, ev)
			if i%10 == 0 && len(events) < n {
				events = append(events, ev) // a redelivery
			}
		}
	}
	return events
}

// BenchmarkApply applies a backlog of 100,000 events to an empty database
// in batches, as the consumer does when it catches up, and reports events/s
// and PostgreSQL's CPU per event (every process named postgres: see
// cpustat). The read models are the service's two, or the order projection
// alone: the difference is what the customers' totals cost.
func BenchmarkApply(b *testing.B) {
	const total = 100_000
	events := backlog(b, total)
	run := func(b *testing.B, size int, models func(*pgtest.DB) []projectionstore.ReadModel) {
		db := pgtest.MustDB(b, migrations.Projection())
		s := projectionstore.New(db.Pool, order.Standard, nil, models(db)...)
		ctx := context.Background()
		var (
			elapsed time.Duration
			pg      cpustat.PostgresTracker
			pgCPU   float64
		)
		for b.Loop() {
			b.StopTimer()
			if _, err := db.Pool.Exec(ctx, `TRUNCATE order_projection, processed_events, order_versions, customer_orders`); err != nil {
				b.Fatal(err)
			}
			if err := pg.Sample(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			for i := 0; i < total; i += size {
				if _, err := s.Apply(ctx, events[i:min(i+size, total)]); err != nil {
					b.Fatal(err)
				}
			}
			elapsed += time.Since(start)
			b.StopTimer()
			if err := pg.Sample(); err != nil {
				b.Fatal(err)
			}
			pgCPU = pg.Total()
			b.StartTimer()
		}
		b.ReportMetric(float64(total)*float64(b.N)/elapsed.Seconds(), "events/s")
		b.ReportMetric(pgCPU/float64(total*b.N)*1e6, "pg-cpu-µs/event")
	}
	both := func(db *pgtest.DB) []projectionstore.ReadModel {
		return []projectionstore.ReadModel{orderview.New(db.Pool), customertotals.New(db.Pool)}
	}
	for _, size := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { run(b, size, both) })
	}
	b.Run("batch=500/orders-only", func(b *testing.B) {
		run(b, 500, func(db *pgtest.DB) []projectionstore.ReadModel {
			return []projectionstore.ReadModel{orderview.New(db.Pool)}
		})
	})
	// A consumer restarted before committing, or a DLQ replay, delivers what
	// the database already holds: every event is a duplicate.
	b.Run("batch=500/redelivered", func(b *testing.B) {
		const size = 500
		db := pgtest.MustDB(b, migrations.Projection())
		view := orderview.New(db.Pool)
		s := projectionstore.New(db.Pool, order.Standard, nil, view, customertotals.New(db.Pool))
		ctx := context.Background()
		apply := func() {
			for i := 0; i < total; i += size {
				if _, err := s.Apply(ctx, events[i:min(i+size, total)]); err != nil {
					b.Fatal(err)
				}
			}
		}
		apply()
		start := time.Now()
		for b.Loop() {
			apply()
		}
		b.ReportMetric(float64(total)*float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
}
