package orderapi

import (
	"errors"
	"time"

	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/service"
)

// Config is everything order-api reads from its environment. Each field's
// variable and default are in its tags; docs/configuration.md's table lists them all.
type Config struct {
	// Common is what order-consumer reads too: Kafka, the registry, the
	// topic, migrations, shutdown and logging.
	service.Common

	// HTTPAddr is where the API listens.
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8080"`
	// DatabaseURL is order-api's own PostgreSQL database (orders, outbox).
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@localhost:5432/orders?sslmode=disable"`
	// DatabaseMaxConns caps the connection pool (0: pgxpool's default, max(4, CPUs)).
	DatabaseMaxConns int32 `env:"DATABASE_MAX_CONNS" envDefault:"16"`

	// IdempotencyKeyTTL is how long an Idempotency-Key is honoured: a retry
	// with the key within it replays the first answer; past it the key is
	// purged, and using it again places a new order.
	IdempotencyKeyTTL time.Duration `env:"IDEMPOTENCY_KEY_TTL" envDefault:"24h"`

	// SchemaAutoRegister lets the relay register the event schema (and set
	// its subject's level) on first use, as Confluent's serializers do with
	// auto.register.schemas. Off, it only looks the schema up, and a version
	// the registry lacks keeps its rows in the outbox until someone runs
	// `order-api schemas register`.
	SchemaAutoRegister bool `env:"SCHEMA_AUTO_REGISTER" envDefault:"true"`

	// RelayEnabled runs the outbox relay in this process. Turn it off to run
	// API-only replicas; at most one relay publishes at a time anyway.
	RelayEnabled bool `env:"RELAY_ENABLED" envDefault:"true"`
	// RelayBatchSize is the most outbox rows per relay cycle: one read, one
	// Kafka write (one produce request per partition), one mark.
	RelayBatchSize int `env:"RELAY_BATCH_SIZE" envDefault:"1000"`
	// RelayPollInterval is the fallback poll when no NOTIFY arrives.
	RelayPollInterval time.Duration `env:"RELAY_POLL_INTERVAL" envDefault:"1s"`
	// RelayLockRetryInterval is how often a standby relay tries to take over.
	RelayLockRetryInterval time.Duration `env:"RELAY_LOCK_RETRY_INTERVAL" envDefault:"1s"`
	// RelayRetention is how long published outbox rows are kept before purge;
	// 0 deletes each row as soon as Kafka acknowledged it (see outbox.Config).
	RelayRetention time.Duration `env:"RELAY_RETENTION" envDefault:"24h"`
	// RelayBackoffMin and RelayBackoffMax bound the retry delay of a failed batch.
	RelayBackoffMin time.Duration `env:"RELAY_BACKOFF_MIN" envDefault:"100ms"`
	RelayBackoffMax time.Duration `env:"RELAY_BACKOFF_MAX" envDefault:"10s"`
	// RelayStallAfter is how long the outbox may hold rows with nothing
	// published before /readyz shows the degraded check outbox_relay
	// (outbox.Watch); every replica reports it, relay or not.
	RelayStallAfter time.Duration `env:"RELAY_STALL_AFTER" envDefault:"1m"`
}

// Validate reports every unusable setting at once, each message starting
// with the variable and the value given (a database password never shown).
// The relay's settings, Kafka's and the registry's are checked even when
// RELAY_ENABLED is false: a typo should not wait for the day the relay is
// switched on, and their defaults are valid, so an API-only replica that
// leaves them unset is never refused for them.
func (c Config) Validate() error {
	return errors.Join(append([]error{
		config.ListenAddr("HTTP_ADDR", c.HTTPAddr),
		config.DatabaseURL("DATABASE_URL", c.DatabaseURL),
		config.AtLeast("DATABASE_MAX_CONNS", int(c.DatabaseMaxConns), 0, " (0: pgxpool's default)"),
		config.AtLeast("RELAY_BATCH_SIZE", c.RelayBatchSize, 1, ""),
		config.Positive("IDEMPOTENCY_KEY_TTL", c.IdempotencyKeyTTL),
		config.Positive("RELAY_POLL_INTERVAL", c.RelayPollInterval),
		config.Positive("RELAY_LOCK_RETRY_INTERVAL", c.RelayLockRetryInterval),
		config.NotNegative("RELAY_RETENTION", c.RelayRetention),
		config.Backoff("RELAY_BACKOFF_MIN", c.RelayBackoffMin, "RELAY_BACKOFF_MAX", c.RelayBackoffMax),
		config.Positive("RELAY_STALL_AFTER", c.RelayStallAfter),
	}, c.Common.Check()...)...)
}

// Settings are what the service skeleton uses.
func (c Config) Settings() service.Settings {
	return c.Common.Settings("order-api", c.HTTPAddr, c.DatabaseURL, c.DatabaseMaxConns)
}
