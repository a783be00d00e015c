package orderconsumer_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/cpustat"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// BenchmarkConsume measures order-consumer draining a backlog of 100,000
// events (50,000 orders, placed then paid) from the embedded broker: fetch,
// decode through the registry, apply in batches, commit. Reported as events/s,
// and as CPU per event: this process's (the consumer, and the embedded broker
// and registry it reads from) and PostgreSQL's (every process named
// postgres: see cpustat). On a machine of n cores, n×1e6 ÷ their sum bounds
// events/s.
func BenchmarkConsume(b *testing.B) {
	const orders = 50_000
	for range b.N {
		b.StopTimer()
		s := newStack(b)
		batch := make([]kafka.Message, 0, 2000)
		for range orders {
			h := history(b)
			batch = append(batch, s.message(h[0]), s.message(h[1]))
			if len(batch) == cap(batch) {
				s.produce(batch...)
				batch = batch[:0]
			}
		}
		s.produce(batch...)
		var pg cpustat.PostgresTracker
		if err := pg.Sample(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start, self := time.Now(), cpustat.Self()
		// The service's default logging (LOG_LEVEL=info, JSON): the tests'
		// logger keeps a debug line per event in memory, which is not what
		// a deployment pays.
		c := s.startWith(telemetry.Config{}, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))) // default CONSUMER_BATCH_SIZE (500)
		for c.svc.Consumer().Stats().Applied < 2*orders {
			time.Sleep(5 * time.Millisecond)
		}
		elapsed, used := time.Since(start), cpustat.Self()-self
		if err := pg.Sample(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = c.stop()
		b.ReportMetric(2*orders/elapsed.Seconds(), "events/s")
		b.ReportMetric(used/(2*orders)*1e6, "go-cpu-µs/event")
		b.ReportMetric(pg.Total()/(2*orders)*1e6, "pg-cpu-µs/event")
		var n int
		if err := s.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM order_projection WHERE version = 2").Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n != orders {
			b.Fatalf("%d orders at version 2, want %d", n, orders)
		}
	}
}
