package kafkalog_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/kafkalog"
)

// A null key or value reads back as nil, an empty one as a non-nil empty
// slice: the difference a dead letter must keep to be byte for byte.
func TestNullAndEmptyStayApart(t *testing.T) {
	k := stacktest.Kafka(t, devstack.KafkaConfig{Partitions: 1, Topics: []string{"t"}})
	w := &kafka.Writer{Addr: kafka.TCP(k.Brokers()...), Topic: "t", RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	sent := []kafka.Message{
		{Key: nil, Value: nil},
		{Key: []byte{}, Value: []byte{}},
		{Key: []byte("k"), Value: []byte{}, Headers: []kafka.Header{{Key: "h", Value: []byte{}}}},
		{Key: []byte{}, Value: []byte("v")},
	}
	ctx := context.Background()
	if err := w.WriteMessages(ctx, sent...); err != nil {
		t.Fatal(err)
	}
	got, err := kafkalog.ReadAll(ctx, kafkaconn.Plaintext.Client(k.Brokers(), 5*time.Second), "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(sent) {
		t.Fatalf("read %d messages, want %d", len(got), len(sent))
	}
	for i, m := range got {
		want := sent[i]
		if (m.Key == nil) != (want.Key == nil) || !bytes.Equal(m.Key, want.Key) {
			t.Errorf("message %d: key %#v, want %#v", i, m.Key, want.Key)
		}
		if (m.Value == nil) != (want.Value == nil) || !bytes.Equal(m.Value, want.Value) {
			t.Errorf("message %d: value %#v, want %#v", i, m.Value, want.Value)
		}
		if m.Offset != int64(i) || m.Partition != 0 || m.Topic != "t" {
			t.Errorf("message %d at %s/%d@%d", i, m.Topic, m.Partition, m.Offset)
		}
	}
	// A range reads just the offsets asked for.
	var offs []int64
	c := kafkaconn.Plaintext.Client(k.Brokers(), 5*time.Second)
	if err := kafkalog.Range(ctx, c, "t", 0, 1, 3, func(m kafka.Message) error { offs = append(offs, m.Offset); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(offs) != 2 || offs[0] != 1 || offs[1] != 2 {
		t.Errorf("range 1..3 read offsets %v", offs)
	}
	if _, err := kafkalog.Partitions(ctx, c, "no-such-topic"); err == nil {
		t.Error("a missing topic has partitions")
	}
}
