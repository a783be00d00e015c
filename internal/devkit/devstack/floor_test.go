package devstack_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
)

// BenchmarkKafkaFloor is the floor under the relay's and the consumer's
// drains (BenchmarkRelayDrain, BenchmarkConsume): kafka-go writing 100,000
// messages of an order event's size to the embedded broker in writes of
// 1,000, as the relay does, then a consumer group reading them and
// committing every 500, as the consumer does, with nothing else — no
// PostgreSQL, no framing or decoding. A drain slower than this is slowed
// by its own work, not by the broker or the client.
func BenchmarkKafkaFloor(b *testing.B) {
	const n, writeBatch, commitBatch = 100_000, 1000, 500
	value := make([]byte, 300)
	headers := []kafka.Header{{Key: "event_type", Value: []byte("PLACED")},
		{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		k, err := devstack.StartKafka(devstack.KafkaConfig{Topics: []string{"t"}})
		if err != nil {
			b.Fatal(err)
		}
		w := &kafka.Writer{Addr: kafka.TCP(k.Brokers()...), Topic: "t", RequiredAcks: kafka.RequireAll,
			Balancer: &kafka.Murmur2Balancer{Consistent: true}, BatchSize: writeBatch, BatchBytes: 1 << 20, BatchTimeout: time.Millisecond}
		msgs := make([]kafka.Message, writeBatch)
		b.StartTimer()
		start := time.Now()
		for i := 0; i < n; i += writeBatch {
			for j := range msgs {
				msgs[j] = kafka.Message{Key: fmt.Appendf(nil, "order-%d", i+j), Value: value, Headers: headers}
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				b.Fatal(err)
			}
		}
		wrote := time.Since(start)
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers(), GroupID: "g", Topic: "t", StartOffset: kafka.FirstOffset,
			MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond, QueueCapacity: writeBatch})
		start = time.Now()
		batch := make([]kafka.Message, 0, commitBatch)
		for got := 0; got < n; {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			got++
			if batch = append(batch, m); len(batch) == commitBatch || got == n {
				if err := r.CommitMessages(ctx, batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		read := time.Since(start)
		b.StopTimer()
		_ = r.Close()
		_ = w.Close()
		k.Close()
		b.ReportMetric(n/wrote.Seconds(), "written/s")
		b.ReportMetric(n/read.Seconds(), "read+committed/s")
	}
}
