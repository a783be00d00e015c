package orderconsumer

import (
	"errors"
	"fmt"
	"time"

	"github.com/ordersonkafka/orders/internal/logging"
)

// Config is everything order-consumer reads from its environment. Each
// field's variable and default are in its tags; the README lists them all.
type Config struct {
	// HTTPAddr is where the read API, /healthz and /readyz listen.
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8082"`
	// DatabaseURL is order-consumer's own database (projection, processed events).
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@localhost:5432/orders_projection?sslmode=disable"`
	// DatabaseMaxConns caps the connection pool.
	DatabaseMaxConns int32 `env:"DATABASE_MAX_CONNS" envDefault:"8"`
	// Migrate applies pending migrations at start-up.
	Migrate bool `env:"DATABASE_MIGRATE" envDefault:"true"`

	// KafkaBrokers is the bootstrap list, comma-separated.
	KafkaBrokers []string `env:"KAFKA_BROKERS" envDefault:"localhost:9092"`
	// SchemaRegistryURL is where writer schemas are fetched by ID.
	SchemaRegistryURL string `env:"SCHEMA_REGISTRY_URL" envDefault:"http://localhost:8081"`
	// Topic is the topic of order events.
	Topic string `env:"ORDER_EVENTS_TOPIC" envDefault:"order-events"`
	// DLQTopic receives the messages that can never be applied.
	DLQTopic string `env:"DLQ_TOPIC" envDefault:"order-events.dlq"`
	// GroupID is the consumer group; instances with the same one share the partitions.
	GroupID string `env:"CONSUMER_GROUP" envDefault:"order-projector"`

	// BatchSize is the most messages applied in one transaction and one commit.
	BatchSize int `env:"CONSUMER_BATCH_SIZE" envDefault:"500"`
	// BatchLinger is how long a batch waits for more messages once one arrived.
	BatchLinger time.Duration `env:"CONSUMER_BATCH_LINGER" envDefault:"5ms"`
	// LedgerRetention is how long processed_events keeps an event_id. It
	// must exceed the topic's retention plus the longest consumer outage:
	// a redelivery of an event whose row is gone is judged by version alone
	// (it changes nothing, but is recorded as a new, stale event).
	LedgerRetention time.Duration `env:"LEDGER_RETENTION" envDefault:"168h"`

	// BackoffMin and BackoffMax bound the retry delay while a dependency is down.
	BackoffMin time.Duration `env:"CONSUMER_BACKOFF_MIN" envDefault:"100ms"`
	BackoffMax time.Duration `env:"CONSUMER_BACKOFF_MAX" envDefault:"10s"`

	// ShutdownTimeout bounds the graceful shutdown (current batch, HTTP).
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or text.
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
}

// Validate reports every unusable setting at once.
func (c Config) Validate() error {
	var errs []error
	for name, v := range map[string]string{
		"DATABASE_URL": c.DatabaseURL, "SCHEMA_REGISTRY_URL": c.SchemaRegistryURL,
		"ORDER_EVENTS_TOPIC": c.Topic, "DLQ_TOPIC": c.DLQTopic, "CONSUMER_GROUP": c.GroupID,
	} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is empty", name))
		}
	}
	if len(c.KafkaBrokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS is empty"))
	}
	if c.Topic != "" && c.Topic == c.DLQTopic {
		errs = append(errs, errors.New("DLQ_TOPIC must differ from ORDER_EVENTS_TOPIC"))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("CONSUMER_BATCH_SIZE=%d must be at least 1", c.BatchSize))
	}
	if c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("CONSUMER_BACKOFF_MIN=%s and CONSUMER_BACKOFF_MAX=%s must satisfy 0 < min <= max", c.BackoffMin, c.BackoffMax))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("SHUTDOWN_TIMEOUT=%s must be positive", c.ShutdownTimeout))
	}
	errs = append(errs, logging.Check(c.LogLevel, c.LogFormat))
	return errors.Join(errs...)
}
