package outbox_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/event/envelope"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
)

// One key's rows, more of them than kafka-go's default batch (100), are
// published in their order even when a produce request fails: each
// partition gets one batch per write, so nothing written after the failed
// rows can land before their retry. In batches of 40 the relay has read and
// framed the next batch while the failing one was written (the pipeline):
// that batch must still wait for the retry.
func TestAFailedProduceKeepsOneKeysOrder(t *testing.T) {
	for _, c := range []struct{ batch, failAt int }{{1000, 1}, {40, 1}, {40, 3}} {
		t.Run(fmt.Sprintf("batch=%d,failing=%d", c.batch, c.failAt), func(t *testing.T) {
			t.Parallel()
			failedProduceKeepsOrder(t, c.batch, c.failAt)
		})
	}
}

func failedProduceKeepsOrder(t *testing.T, batch, failAt int) {
	h := newHarness(t)
	const rows = 250
	enc, _ := eventcodec.NewEncoder()
	_, ev, err := order.Place(order.NewOrder{CustomerID: "c", Currency: "EUR",
		Items: []order.Item{{SKU: "s", Quantity: 1, UnitPriceMinor: 100}}}, order.Now(), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	payload, version, err := enc.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	// The same order's key on every row; correlation_id numbers them.
	if _, err := h.db.Pool.Exec(context.Background(), `
INSERT INTO outbox (event_id, topic, message_key, payload, schema_version, headers)
SELECT gen_random_uuid(), $1, $2, $3, $4, jsonb_build_object('event_id', gen_random_uuid()::text, 'event_type', 'PLACED', 'correlation_id', i::text)
FROM generate_series(1, $5) AS i ORDER BY i`, topic, []byte(ev.Order.ID.String()), payload, version, rows); err != nil {
		t.Fatal(err)
	}
	failed := make(chan struct{})
	produces := 0
	h.kafka.Cluster.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Cluster.KeepControl()
		if produces++; produces < failAt {
			return nil, nil, false
		}
		h.kafka.Cluster.DropControl()
		close(failed)
		return nil, fmt.Errorf("injected: produce request %d fails", failAt), true
	})
	h.relay(func(c *outbox.Config) { c.BatchSize = batch })
	select {
	case <-failed:
	case <-time.After(wait):
		t.Fatal("the relay never produced")
	}
	h.waitAllPublished()
	msgs := kafkatest.WaitForCount(t, h.kafka.Brokers()[0], topic, rows, wait)
	next := 1 // first occurrences must count up; a retry may repeat what landed
	for _, m := range msgs {
		seq := 0
		for _, hd := range m.Headers {
			if hd.Key == envelope.HeaderCorrelationID {
				seq, _ = strconv.Atoi(string(hd.Value))
			}
		}
		switch {
		case seq == next:
			next++
		case seq > next:
			t.Fatalf("row %d published before row %d (partition %d, offset %d): the key's order is broken", seq, next, m.Partition, m.Offset)
		}
	}
	if next != rows+1 {
		t.Fatalf("rows 1..%d published in order, want all %d", next-1, rows)
	}
}
