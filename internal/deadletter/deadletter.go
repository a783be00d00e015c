// Package deadletter is the dead-letter topic of order-consumer: publishing
// the messages that can never be applied, listing them, and replaying them.
//
// A dead letter is the original message byte for byte — key, value and
// headers untouched — plus the headers Spring for Apache Kafka's
// DeadLetterPublishingRecoverer writes, encoded as Spring encodes them, so
// Spring tooling reads ours:
//
//	kafka_dlt-original-topic            UTF-8 string
//	kafka_dlt-original-partition        4-byte big-endian int
//	kafka_dlt-original-offset           8-byte big-endian long
//	kafka_dlt-original-timestamp        8-byte big-endian long, epoch milliseconds
//	kafka_dlt-original-timestamp-type   UTF-8 "CreateTime"
//	kafka_dlt-original-consumer-group   UTF-8 string
//	kafka_dlt-exception-fqcn            UTF-8: our error class, e.g. "eventcodec.ErrUnknownSchema"
//	kafka_dlt-exception-message         UTF-8: the error text
//
// A dead letter goes to the same partition number as its original, as Spring
// does by default, whatever partitioner the original producer used (kcat's
// default is CRC32, not murmur2); if the DLQ has fewer partitions it falls
// back to murmur2 of the key. Replay republishes to the original topic with the original
// key, value and headers (the kafka_dlt-* ones dropped, so a second failure
// gets fresh ones) and adds two headers of ours, Spring having no standard
// for it: dlq_replayed_from ("<dlq topic>/<partition>@<offset>") and
// dlq_replayed_at (RFC 3339).
package deadletter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// The header names, as Spring for Apache Kafka writes them.
const (
	HeaderOriginalTopic         = "kafka_dlt-original-topic"
	HeaderOriginalPartition     = "kafka_dlt-original-partition"
	HeaderOriginalOffset        = "kafka_dlt-original-offset"
	HeaderOriginalTimestamp     = "kafka_dlt-original-timestamp"
	HeaderOriginalTimestampType = "kafka_dlt-original-timestamp-type"
	HeaderOriginalGroup         = "kafka_dlt-original-consumer-group"
	HeaderExceptionClass        = "kafka_dlt-exception-fqcn"
	HeaderExceptionMessage      = "kafka_dlt-exception-message"

	HeaderReplayedFrom = "dlq_replayed_from"
	HeaderReplayedAt   = "dlq_replayed_at"

	dltPrefix = "kafka_dlt-"
)

// DeadLetter is a message that can never be applied, and why.
type DeadLetter struct {
	Msg   kafka.Message // the original, as the reader returned it
	Class string        // stable error class for kafka_dlt-exception-fqcn
	Err   error
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Brokers      []string
	Topic        string        // default "order-events.dlq"
	Group        string        // the consumer group, for kafka_dlt-original-consumer-group
	WriteTimeout time.Duration // default 10s
}

// Publisher writes dead letters with acks=all.
type Publisher struct {
	w     *kafka.Writer
	topic string
	group string
}

// NewPublisher returns a Publisher; it connects on first use.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("deadletter: Brokers is required")
	}
	if cfg.Topic == "" {
		cfg.Topic = "order-events.dlq"
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	return &Publisher{
		w: &kafka.Writer{
			Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.Topic,
			RequiredAcks: kafka.RequireAll, Balancer: samePartition{},
			BatchTimeout: 2 * time.Millisecond, MaxAttempts: 1, WriteTimeout: cfg.WriteTimeout,
		},
		topic: cfg.Topic, group: cfg.Group,
	}, nil
}

// Publish writes every dead letter in one call; it returns nil only when the
// broker acknowledged all of them, so the caller may then commit past them.
func (p *Publisher) Publish(ctx context.Context, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(dls))
	for i, dl := range dls {
		msgs[i] = Message(dl, p.group)
	}
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %d dead letters to %s: %w", len(dls), p.topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (p *Publisher) Close() error { return p.w.Close() }

// Message builds the dead-letter message of dl: the original key, value and
// headers plus the kafka_dlt-* headers.
func Message(dl DeadLetter, group string) kafka.Message {
	m := dl.Msg
	headers := make([]kafka.Header, 0, len(m.Headers)+8)
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, dltPrefix) {
			headers = append(headers, h)
		}
	}
	msg := "unknown error"
	if dl.Err != nil {
		msg = dl.Err.Error()
	}
	headers = append(headers,
		kafka.Header{Key: HeaderOriginalTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderOriginalPartition, Value: binary.BigEndian.AppendUint32(nil, uint32(int32(m.Partition)))},
		kafka.Header{Key: HeaderOriginalOffset, Value: binary.BigEndian.AppendUint64(nil, uint64(m.Offset))},
		kafka.Header{Key: HeaderOriginalTimestamp, Value: binary.BigEndian.AppendUint64(nil, uint64(m.Time.UnixMilli()))},
		kafka.Header{Key: HeaderOriginalTimestampType, Value: []byte("CreateTime")},
		kafka.Header{Key: HeaderOriginalGroup, Value: []byte(group)},
		kafka.Header{Key: HeaderExceptionClass, Value: []byte(dl.Class)},
		kafka.Header{Key: HeaderExceptionMessage, Value: []byte(msg)},
	)
	return kafka.Message{Partition: m.Partition, Key: m.Key, Value: m.Value, Headers: headers}
}

// samePartition keeps a dead letter on its original's partition number.
type samePartition struct{}

func (samePartition) Balance(msg kafka.Message, partitions ...int) int {
	for _, p := range partitions {
		if p == msg.Partition {
			return p
		}
	}
	return (&kafka.Murmur2Balancer{Consistent: true}).Balance(msg, partitions...)
}
