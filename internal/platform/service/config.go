package service

import (
	"time"

	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/logging"
)

// Common is the configuration both services read the same way and with the
// same defaults; each service's Config embeds it, and adds what differs
// (its address, its database, its own parts).
type Common struct {
	// Migrate applies pending migrations at start-up (under a lock, so
	// replicas starting together take turns).
	Migrate bool `env:"DATABASE_MIGRATE" envDefault:"true"`
	// KafkaBrokers is the bootstrap list, comma-separated.
	KafkaBrokers []string `env:"KAFKA_BROKERS" envDefault:"localhost:9092"`
	// Kafka is how to connect to them: KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*
	// and KAFKA_TLS_*, the same for every client and command.
	Kafka kafkaconn.Config
	// SchemaRegistryURL is the Confluent Schema Registry: order-api's relay
	// registers with it, order-consumer fetches writer schemas by ID.
	SchemaRegistryURL string `env:"SCHEMA_REGISTRY_URL" envDefault:"http://localhost:8081"`
	// Topic is the topic of order events; its value subject is <Topic>-value.
	Topic string `env:"ORDER_EVENTS_TOPIC" envDefault:"order-events"`
	// ShutdownTimeout bounds the graceful shutdown: in-flight requests
	// finish, and the relay or the consumer completes its batch, within it.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or text.
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
}

// Check reports each unusable setting of c, each message starting with the
// variable and the value given; a service's Validate joins them with its own.
func (c Common) Check() []error {
	return append(c.Kafka.Check(),
		config.Brokers("KAFKA_BROKERS", c.KafkaBrokers),
		config.HTTPURL("SCHEMA_REGISTRY_URL", c.SchemaRegistryURL),
		config.KafkaName("ORDER_EVENTS_TOPIC", "topic", c.Topic),
		config.Positive("SHUTDOWN_TIMEOUT", c.ShutdownTimeout),
		logging.Check(c.LogLevel, c.LogFormat),
	)
}

// Settings are the skeleton's settings of a service named name, listening
// on addr, with its database at dsn and a pool of maxConns.
func (c Common) Settings(name, addr, dsn string, maxConns int32) Settings {
	return Settings{Name: name, HTTPAddr: addr, DatabaseURL: dsn, DatabaseMaxConns: maxConns, Migrate: c.Migrate,
		ShutdownTimeout: c.ShutdownTimeout, LogLevel: c.LogLevel, LogFormat: c.LogFormat}
}
