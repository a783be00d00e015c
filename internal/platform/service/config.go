package service

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
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
	// DatabaseTimeout bounds each call to PostgreSQL (pgdb.CallTimeout by
	// default): a request's (then 503 with Retry-After), a statement of the
	// relay or of a purge; a consumer batch's round trip may wait twice it
	// for its orders' locks on top. A server that accepts connections and
	// never answers is down after it.
	DatabaseTimeout time.Duration `env:"DATABASE_TIMEOUT" envDefault:"5s"`
	// KafkaBrokers is the bootstrap list, comma-separated.
	KafkaBrokers []string `env:"KAFKA_BROKERS" envDefault:"localhost:9092"`
	// Kafka is how to connect to them: KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*
	// and KAFKA_TLS_*, the same for every client and command.
	Kafka kafkaconn.Config
	// SchemaRegistryURL is the Confluent Schema Registry: order-api's relay
	// registers with it, order-consumer fetches writer schemas by ID.
	SchemaRegistryURL string `env:"SCHEMA_REGISTRY_URL" envDefault:"http://localhost:8081"`
	// SchemaRegistryUserInfo is "user:password" for the registry's basic
	// auth (Confluent's basic.auth.user.info; Confluent Cloud: API key and
	// secret).
	SchemaRegistryUserInfo string `env:"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"`
	// SchemaRegistryBearerToken is sent as a bearer token instead.
	SchemaRegistryBearerToken string `env:"SCHEMA_REGISTRY_BEARER_TOKEN"`
	// SchemaRegistryCAFile is a PEM file of the CAs to trust for an
	// https:// registry; empty: the system's roots.
	SchemaRegistryCAFile string `env:"SCHEMA_REGISTRY_TLS_CA_FILE"`
	// SchemaRegistryTimeout bounds each call to the registry, its answer
	// included (eventcodec.DefaultRegistryTimeout): a registry that accepts
	// the connection and never answers is down after it.
	SchemaRegistryTimeout time.Duration `env:"SCHEMA_REGISTRY_TIMEOUT" envDefault:"5s"`
	// Topic is the topic of order events; its value subject is <Topic>-value.
	Topic string `env:"ORDER_EVENTS_TOPIC" envDefault:"order-events"`
	// AuthJWKSURL turns on API authentication: the APIs then take only JWT
	// bearer tokens signed by a key of this JWKS, issued by AuthIssuer for
	// AuthAudience. Empty: authentication is off (warned at start-up).
	AuthJWKSURL  string `env:"AUTH_JWKS_URL"`
	AuthIssuer   string `env:"AUTH_ISSUER"`
	AuthAudience string `env:"AUTH_AUDIENCE"`
	// AuthJWKSRefreshInterval is the least time between two fetches of the
	// JWKS: tokens naming a key not held, however many, fetch it at most
	// this often (web.KeySetConfig.RefreshInterval).
	AuthJWKSRefreshInterval time.Duration `env:"AUTH_JWKS_REFRESH_INTERVAL" envDefault:"10s"`
	// AdminAddr, when set, serves net/http/pprof's profiles at
	// /debug/pprof/ on a listener of its own (e.g. 127.0.0.1:6060): off by
	// default, never on the API's listener; bind it to localhost or a
	// private network only.
	AdminAddr string `env:"ADMIN_ADDR"`
	// ShutdownTimeout bounds the graceful shutdown: in-flight requests
	// finish, and the relay or the consumer completes its batch, within it.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
	// LivenessTimeout is how long a long-running loop (the relay, the
	// consumer, a purger) may go without a heartbeat before /livez fails
	// naming it. Waiting loops beat every quarter of it, so it must only
	// exceed the longest single call a loop makes (a Kafka write or a lock
	// wait: 10 s).
	LivenessTimeout time.Duration `env:"LIVENESS_TIMEOUT" envDefault:"2m"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or text.
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
}

// Check reports each unusable setting of c, each message starting with the
// variable and the value given; a service's Validate joins them with its own.
func (c Common) Check() []error {
	return append(c.Kafka.Check(),
		config.Positive("DATABASE_TIMEOUT", c.DatabaseTimeout),
		config.Brokers("KAFKA_BROKERS", c.KafkaBrokers),
		config.Positive("KAFKA_TIMEOUT", c.Kafka.Timeout),
		config.HTTPURL("SCHEMA_REGISTRY_URL", c.SchemaRegistryURL),
		c.checkRegistryAuth(),
		config.Positive("SCHEMA_REGISTRY_TIMEOUT", c.SchemaRegistryTimeout),
		c.checkAuth(),
		config.KafkaName("ORDER_EVENTS_TOPIC", "topic", c.Topic),
		c.checkAdmin(),
		config.Positive("SHUTDOWN_TIMEOUT", c.ShutdownTimeout),
		config.Positive("LIVENESS_TIMEOUT", c.LivenessTimeout),
		logging.Check(c.LogLevel, c.LogFormat),
	)
}

// Settings are the skeleton's settings of a service named name, listening
// on addr, with its database at dsn and a pool of maxConns.
func (c Common) Settings(name, addr, dsn string, maxConns int32) Settings {
	return Settings{Name: name, HTTPAddr: addr, DatabaseURL: dsn, DatabaseMaxConns: maxConns, Migrate: c.Migrate,
		ShutdownTimeout: c.ShutdownTimeout, LivenessTimeout: c.LivenessTimeout, LogLevel: c.LogLevel, LogFormat: c.LogFormat,
		AuthJWKSURL: c.AuthJWKSURL, AuthIssuer: c.AuthIssuer, AuthAudience: c.AuthAudience,
		AuthJWKSRefreshInterval: c.AuthJWKSRefreshInterval, AdminAddr: c.AdminAddr}
}

// checkRegistryAuth refuses registry credentials that cannot work: user
// info that is not user:password, two kinds of credentials at once, a CA
// file that cannot be read or holds no certificate, or one for a registry
// that is not https. Secrets are never shown.
func (c Common) checkRegistryAuth() error {
	var errs []error
	if c.SchemaRegistryUserInfo != "" {
		if user, _, ok := strings.Cut(c.SchemaRegistryUserInfo, ":"); !ok || user == "" {
			errs = append(errs, errors.New("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO (not shown) is not user:password"))
		}
		if c.SchemaRegistryBearerToken != "" {
			errs = append(errs, errors.New("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO and SCHEMA_REGISTRY_BEARER_TOKEN are both set: choose one"))
		}
	}
	if f := c.SchemaRegistryCAFile; f != "" {
		if !strings.HasPrefix(c.SchemaRegistryURL, "https://") {
			errs = append(errs, fmt.Errorf("SCHEMA_REGISTRY_TLS_CA_FILE=%q is set but SCHEMA_REGISTRY_URL is not https://", f))
		} else if pem, err := os.ReadFile(f); err != nil {
			errs = append(errs, fmt.Errorf("SCHEMA_REGISTRY_TLS_CA_FILE=%q: %w", f, err))
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			errs = append(errs, fmt.Errorf("SCHEMA_REGISTRY_TLS_CA_FILE=%q: no PEM certificate in it", f))
		}
	}
	return errors.Join(errs...)
}

// MinJWKSRefreshInterval is the least AUTH_JWKS_REFRESH_INTERVAL: below
// it, forged tokens could make a service fetch the JWKS many times a second.
const MinJWKSRefreshInterval = time.Second

// checkAuth refuses half an authentication setting: a JWKS without its
// issuer and audience, or an issuer or audience without a JWKS (which would
// leave the API open while looking configured); and a JWKS refresh interval
// under MinJWKSRefreshInterval, even with authentication off, so that a
// typo does not wait for the day it is turned on.
func (c Common) checkAuth() error {
	var interval error
	if c.AuthJWKSRefreshInterval < MinJWKSRefreshInterval {
		interval = fmt.Errorf("AUTH_JWKS_REFRESH_INTERVAL=%s must be at least %s: it bounds how often tokens naming an unknown key make the service fetch the JWKS",
			c.AuthJWKSRefreshInterval, MinJWKSRefreshInterval)
	}
	if c.AuthJWKSURL == "" {
		if c.AuthIssuer != "" || c.AuthAudience != "" {
			return errors.Join(interval, errors.New("AUTH_JWKS_URL is empty but AUTH_ISSUER or AUTH_AUDIENCE is set: set it to turn authentication on, or unset them"))
		}
		return interval
	}
	errs := []error{interval, config.HTTPURL("AUTH_JWKS_URL", c.AuthJWKSURL)}
	if c.AuthIssuer == "" || c.AuthAudience == "" {
		errs = append(errs, errors.New("AUTH_ISSUER and AUTH_AUDIENCE are required with AUTH_JWKS_URL"))
	}
	return errors.Join(errs...)
}

func (c Common) checkAdmin() error {
	if c.AdminAddr == "" {
		return nil
	}
	return config.ListenAddr("ADMIN_ADDR", c.AdminAddr)
}
