package orderconsumer

import (
	"errors"
	"fmt"
	"time"

	"github.com/ordersonkafka/orders/internal/consumer/projector"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/service"
)

// Config is everything order-consumer reads from its environment. Each
// field's variable and default are in its tags; docs/configuration.md lists them all.
type Config struct {
	// Common is what order-api reads too: Kafka, the registry, the topic,
	// migrations, shutdown and logging.
	service.Common

	// HTTPAddr is where the read API, /healthz and /readyz listen.
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8082"`
	// MaxWaitingReads caps the reads of the read API waiting for a version
	// (?min_version=&wait=) at once; one more is answered 503 with
	// Retry-After at once. Each holds a goroutine and re-reads the database.
	MaxWaitingReads int `env:"HTTP_MAX_WAITING_READS" envDefault:"256"`
	// DatabaseURL is order-consumer's own database (projection, processed events).
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@localhost:5432/orders_projection?sslmode=disable"`
	// DatabaseMaxConns caps the connection pool (0: pgxpool's default, max(4, CPUs)).
	DatabaseMaxConns int32 `env:"DATABASE_MAX_CONNS" envDefault:"8"`

	// DLQTopic receives the messages that can never be applied.
	DLQTopic string `env:"DLQ_TOPIC" envDefault:"order-events.dlq"`
	// GroupID is the consumer group; instances with the same one share the
	// partitions. It must follow Kafka's rule for topic names (1 to 249 of
	// a-z, A-Z, 0-9, '.', '_', '-'): Kafka itself takes any string, but the
	// group is also a DLQ header, a metric label and a log field.
	GroupID string `env:"CONSUMER_GROUP" envDefault:"order-projector"`

	// BatchSize is the most messages applied in one transaction and one
	// commit, 1 to 10000 (maxBatchSize): a batch is held in memory and in
	// one transaction, and past that size a larger one saves next to nothing.
	BatchSize int `env:"CONSUMER_BATCH_SIZE" envDefault:"500"`
	// BatchLinger is how long a batch waits for more messages once one
	// arrived. It must be positive (the projector refuses 0, which would not
	// wait at all); a tiny value such as 1ms barely waits.
	BatchLinger time.Duration `env:"CONSUMER_BATCH_LINGER" envDefault:"5ms"`
	// LedgerRetention is how long processed_events keeps an event_id. It
	// must exceed the topic's retention plus the longest consumer outage:
	// a redelivery of an event whose row is gone is judged by version alone
	// (it changes nothing, but is recorded as a new, stale event).
	LedgerRetention time.Duration `env:"LEDGER_RETENTION" envDefault:"168h"`

	// OffsetReset is where a partition is read from when the group has no
	// offset for it, or the one it has lies outside the partition (the
	// topic deleted and created again, retention past it): earliest or
	// latest, as Kafka's auto.offset.reset names them. latest skips what
	// the partition holds, so with it events can be lost.
	OffsetReset string `env:"CONSUMER_OFFSET_RESET" envDefault:"earliest"`
	// TopicCheckInterval is how often the consumer checks its topic's
	// partitions and the group's offsets: partitions added are read, and
	// offsets out of range reset, within about this long.
	TopicCheckInterval time.Duration `env:"CONSUMER_TOPIC_CHECK_INTERVAL" envDefault:"10s"`

	// ParkedMaxAge is how long an event parked for its predecessor (a
	// version gap: its key moved partition, or the predecessor sits in the
	// DLQ) waits before it is dead-lettered (projection.ParkedTooLong), so
	// that nothing waits for ever unseen.
	ParkedMaxAge time.Duration `env:"CONSUMER_PARKED_MAX_AGE" envDefault:"24h"`

	// StallAfter is how long a partition may lag with the group's committed
	// offset unmoved before /readyz shows the degraded check
	// consumer_progress naming it (projector.Progress).
	StallAfter time.Duration `env:"CONSUMER_STALL_AFTER" envDefault:"2m"`

	// BackoffMin and BackoffMax bound the retry delay while a dependency is down.
	BackoffMin time.Duration `env:"CONSUMER_BACKOFF_MIN" envDefault:"100ms"`
	BackoffMax time.Duration `env:"CONSUMER_BACKOFF_MAX" envDefault:"10s"`
}

// maxBatchSize bounds CONSUMER_BATCH_SIZE.
const maxBatchSize = 10000

// Validate reports every unusable setting at once, each message starting
// with the variable and the value given (a database password never shown).
func (c Config) Validate() error {
	errs := append([]error{
		config.ListenAddr("HTTP_ADDR", c.HTTPAddr),
		config.AtLeast("HTTP_MAX_WAITING_READS", c.MaxWaitingReads, 1, ""),
		config.DatabaseURL("DATABASE_URL", c.DatabaseURL),
		config.AtLeast("DATABASE_MAX_CONNS", int(c.DatabaseMaxConns), 0, " (0: pgxpool's default)"),
		config.KafkaName("DLQ_TOPIC", "topic", c.DLQTopic),
		config.KafkaName("CONSUMER_GROUP", "consumer group", c.GroupID),
		config.AtLeast("CONSUMER_BATCH_SIZE", c.BatchSize, 1, ""),
		config.AtMost("CONSUMER_BATCH_SIZE", c.BatchSize, maxBatchSize),
		config.Positive("CONSUMER_BATCH_LINGER", c.BatchLinger),
		config.Positive("LEDGER_RETENTION", c.LedgerRetention),
		config.OneOf("CONSUMER_OFFSET_RESET", c.OffsetReset, projector.ResetEarliest, projector.ResetLatest),
		config.Positive("CONSUMER_TOPIC_CHECK_INTERVAL", c.TopicCheckInterval),
		config.Positive("CONSUMER_PARKED_MAX_AGE", c.ParkedMaxAge),
		config.Positive("CONSUMER_STALL_AFTER", c.StallAfter),
		config.Backoff("CONSUMER_BACKOFF_MIN", c.BackoffMin, "CONSUMER_BACKOFF_MAX", c.BackoffMax),
	}, c.Common.Check()...)
	if c.ParkedMaxAge > 0 && c.LedgerRetention > 0 && c.ParkedMaxAge >= c.LedgerRetention {
		// A parked event leaves (applied or dead-lettered) while the ledger
		// still holds the events of its order before it.
		errs = append(errs, fmt.Errorf("CONSUMER_PARKED_MAX_AGE=%s must be less than LEDGER_RETENTION=%s", c.ParkedMaxAge, c.LedgerRetention))
	}
	if c.Topic != "" && c.Topic == c.DLQTopic {
		errs = append(errs, fmt.Errorf("DLQ_TOPIC=%q must differ from ORDER_EVENTS_TOPIC", c.DLQTopic))
	}
	return errors.Join(errs...)
}

// Settings are what the service skeleton uses.
func (c Config) Settings() service.Settings {
	return c.Common.Settings("order-consumer", c.HTTPAddr, c.DatabaseURL, c.DatabaseMaxConns)
}
