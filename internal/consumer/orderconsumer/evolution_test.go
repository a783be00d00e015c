package orderconsumer_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/schematest"
	"github.com/ordersonkafka/orders/internal/order"
)

// Events of a newer producer (the scratch future version: a new optional
// field, a new state SHIPPED) reach today's order-consumer: one that only
// adds a field is applied; one in the new state is parked in the DLQ,
// intact, with the class eventcodec.ErrUnknownSymbol, and the order stays
// where it was.
func TestEventsOfANewerProducerAreAppliedOrParked(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.start()
	h := history(t)
	s.produce(s.message(h[0])) // registers today's versions, oldest first
	future := schematest.Future()
	id := schematest.Register(t, s.registry.URL(), "order-events-value", future.Text)
	message := func(ev order.Event, extra map[string]any) kafka.Message {
		body, err := schematest.Encode(future, schematest.Record(ev, extra))
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Key: []byte(ev.Order.ID.String()), Value: schematest.Frame(id, body),
			Headers: []kafka.Header{{Key: "event_id", Value: []byte(ev.ID.String())}, {Key: "event_type", Value: []byte(ev.Type)}}}
	}
	paid := message(h[1], map[string]any{"tracking_number": "TRK-0"})
	shippedEvent := h[1]
	shippedEvent.ID, shippedEvent.Order.Version = uuid.New(), 3
	shipped := message(shippedEvent, map[string]any{"event_type": schematest.Shipped, "status": schematest.Shipped, "tracking_number": "TRK-1"})
	s.produce(paid, shipped)

	s.waitVersion(h[0].Order.ID, 2)
	dead := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, 1, 20*time.Second)
	if class, _ := kafkatest.Header(dead[0], deadletter.HeaderExceptionClass); class != "eventcodec.ErrUnknownSymbol" {
		t.Errorf("class %q, want eventcodec.ErrUnknownSymbol", class)
	}
	if !bytes.Equal(dead[0].Value, shipped.Value) || !bytes.Equal(dead[0].Key, shipped.Key) {
		t.Error("the parked event is not byte for byte what the producer wrote")
	}
	if p, ok := s.projection(h[0].Order.ID); !ok || p.status != "paid" || p.version != 2 {
		t.Errorf("projection %+v, want paid at version 2", p)
	}
}
