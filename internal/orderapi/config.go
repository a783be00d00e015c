package orderapi

import (
	"errors"
	"fmt"
	"time"

	"github.com/ordersonkafka/orders/internal/logging"
)

// Config is everything order-api reads from its environment. Each field's
// variable and default are in its tags; the README's table lists them all.
type Config struct {
	// HTTPAddr is where the API listens.
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8080"`
	// DatabaseURL is order-api's own PostgreSQL database (orders, outbox).
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@localhost:5432/orders?sslmode=disable"`
	// DatabaseMaxConns caps the connection pool (0: pgxpool's default, max(4, CPUs)).
	DatabaseMaxConns int32 `env:"DATABASE_MAX_CONNS" envDefault:"16"`
	// Migrate applies pending migrations at start-up (under a lock, so
	// replicas starting together take turns).
	Migrate bool `env:"DATABASE_MIGRATE" envDefault:"true"`

	// KafkaBrokers is the bootstrap list, comma-separated.
	KafkaBrokers []string `env:"KAFKA_BROKERS" envDefault:"localhost:9092"`
	// SchemaRegistryURL is the Confluent Schema Registry the relay registers with.
	SchemaRegistryURL string `env:"SCHEMA_REGISTRY_URL" envDefault:"http://localhost:8081"`
	// Topic receives the order events; its value subject is <Topic>-value.
	Topic string `env:"ORDER_EVENTS_TOPIC" envDefault:"order-events"`

	// RelayEnabled runs the outbox relay in this process. Turn it off to run
	// API-only replicas; at most one relay publishes at a time anyway.
	RelayEnabled bool `env:"RELAY_ENABLED" envDefault:"true"`
	// RelayBatchSize is the most outbox rows published per Kafka round trip.
	RelayBatchSize int `env:"RELAY_BATCH_SIZE" envDefault:"1000"`
	// RelayPollInterval is the fallback poll when no NOTIFY arrives.
	RelayPollInterval time.Duration `env:"RELAY_POLL_INTERVAL" envDefault:"1s"`
	// RelayLockRetryInterval is how often a standby relay tries to take over.
	RelayLockRetryInterval time.Duration `env:"RELAY_LOCK_RETRY_INTERVAL" envDefault:"1s"`
	// RelayRetention is how long published outbox rows are kept before purge.
	RelayRetention time.Duration `env:"RELAY_RETENTION" envDefault:"24h"`
	// RelayBackoffMin and RelayBackoffMax bound the retry delay of a failed batch.
	RelayBackoffMin time.Duration `env:"RELAY_BACKOFF_MIN" envDefault:"100ms"`
	RelayBackoffMax time.Duration `env:"RELAY_BACKOFF_MAX" envDefault:"10s"`

	// ShutdownTimeout bounds the graceful shutdown: in-flight requests finish
	// and the relay completes its batch within it.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or text.
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
}

// Validate reports every unusable setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is empty"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("ORDER_EVENTS_TOPIC is empty"))
	}
	if c.RelayEnabled {
		if len(c.KafkaBrokers) == 0 {
			errs = append(errs, errors.New("KAFKA_BROKERS is empty"))
		}
		if c.SchemaRegistryURL == "" {
			errs = append(errs, errors.New("SCHEMA_REGISTRY_URL is empty"))
		}
		if c.RelayBatchSize < 1 {
			errs = append(errs, fmt.Errorf("RELAY_BATCH_SIZE=%d must be at least 1", c.RelayBatchSize))
		}
		if c.RelayBackoffMin <= 0 || c.RelayBackoffMax < c.RelayBackoffMin {
			errs = append(errs, fmt.Errorf("RELAY_BACKOFF_MIN=%s and RELAY_BACKOFF_MAX=%s must satisfy 0 < min <= max", c.RelayBackoffMin, c.RelayBackoffMax))
		}
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("SHUTDOWN_TIMEOUT=%s must be positive", c.ShutdownTimeout))
	}
	errs = append(errs, logging.Check(c.LogLevel, c.LogFormat))
	return errors.Join(errs...)
}
