package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/cpustat"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
)

// BenchmarkRelayDrain measures how fast one relay drains a backlog of
// 100,000 outbox rows (real events, distinct keys) to the embedded broker:
// read, frame, produce with acks=all, mark — or, with retention=0
// (RELAY_RETENTION=0), delete. Reported as events/s, and as CPU per event:
// this process's (the relay, and the embedded broker and registry it
// publishes to) and PostgreSQL's (every process named postgres: see
// cpustat). On a machine of n cores, n×1e6 ÷ their sum bounds events/s.
func BenchmarkRelayDrain(b *testing.B) {
	for _, retention := range []time.Duration{24 * time.Hour, 0} {
		b.Run("retention="+retention.String(), func(b *testing.B) { relayDrain(b, retention) })
	}
}

func relayDrain(b *testing.B, retention time.Duration) {
	const backlog = 100_000
	for range b.N {
		b.StopTimer()
		h := newHarness(b)
		enc, _ := eventcodec.NewEncoder()
		_, ev, _ := order.Place(order.NewOrder{CustomerID: "c-bench", Currency: "EUR",
			Items: []order.Item{{SKU: "SKU-1", Quantity: 2, UnitPriceMinor: 1250}}}, order.Now(), order.Meta{})
		payload, version, err := enc.Encode(ev)
		if err != nil {
			b.Fatal(err)
		}
		_, err = h.db.Pool.Exec(context.Background(), `
INSERT INTO outbox (event_id, topic, message_key, payload, schema_version, headers)
SELECT gen_random_uuid(), 'order-events', convert_to(gen_random_uuid()::text, 'UTF8'), $1, $2,
       jsonb_build_object('event_id', gen_random_uuid()::text, 'event_type', 'PLACED',
                          'traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'correlation_id', 'bench')
FROM generate_series(1, $3)`, payload, version, backlog)
		if err != nil {
			b.Fatal(err)
		}
		var pg cpustat.PostgresTracker
		if err := pg.Sample(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start, self := time.Now(), cpustat.Self()
		_, stop := h.relay(func(c *outbox.Config) { c.Retention = retention })
		// Not count(*): counting 100,000 rows every 10 ms took half a core
		// from the PostgreSQL the relay works with.
		for h.count("SELECT count(*) FROM (SELECT 1 FROM outbox ORDER BY id LIMIT 1) s") > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		elapsed, used := time.Since(start), cpustat.Self()-self
		if err := pg.Sample(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		stop()
		b.ReportMetric(float64(backlog)/elapsed.Seconds(), "events/s")
		b.ReportMetric(used/backlog*1e6, "go-cpu-µs/event")
		b.ReportMetric(pg.Total()/backlog*1e6, "pg-cpu-µs/event")
	}
}
