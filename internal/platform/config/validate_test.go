package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
)

// The configuration of both services, checked as the services check it:
// loaded from the environment by config.Load, then Validate: a DATABASE_URL
// naming no database, negative intervals and sizes, empty broker lists, and
// the class around them.

type invalid struct {
	name string
	env  map[string]string
	vars []string // each must start a line of the error
}

// service is one service's configuration under test.
type service struct {
	name     string
	vars     func() ([]config.Var, error)
	validate func(t *testing.T, env map[string]string, edit func(brokers *[]string)) error
	valid    []map[string]string // its own valid settings, besides the shared ones
	invalid  []invalid           // its own invalid settings, besides the shared ones
}

// validator loads T from env (Load refusing a malformed value fails the
// test), lets edit change its broker list, and validates it.
func validator[T interface{ Validate() error }](brokers func(*T) *[]string) func(*testing.T, map[string]string, func(*[]string)) error {
	return func(t *testing.T, env map[string]string, edit func(*[]string)) error {
		t.Helper()
		cfg, err := config.Load[T](func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("Load(%v): %v", env, err)
		}
		if edit != nil {
			edit(brokers(&cfg))
		}
		return cfg.Validate()
	}
}

var services = []service{
	{
		name:     "order-api",
		vars:     config.Vars[orderapi.Config],
		validate: validator(func(c *orderapi.Config) *[]string { return &c.KafkaBrokers }),
		valid: []map[string]string{
			{"RELAY_BATCH_SIZE": "1", "RELAY_BACKOFF_MIN": "1s", "RELAY_BACKOFF_MAX": "1s"},
		},
		invalid: []invalid{
			{"a negative poll interval", map[string]string{"RELAY_POLL_INTERVAL": "-1s"}, []string{"RELAY_POLL_INTERVAL"}},
			{"a negative lock retry interval", map[string]string{"RELAY_LOCK_RETRY_INTERVAL": "-1s"}, []string{"RELAY_LOCK_RETRY_INTERVAL"}},
			{"a negative retention", map[string]string{"RELAY_RETENTION": "-24h"}, []string{"RELAY_RETENTION"}},
			{"relay settings with the relay off", map[string]string{"RELAY_ENABLED": "false", "RELAY_POLL_INTERVAL": "-1s", "KAFKA_BROKERS": ","}, []string{"RELAY_POLL_INTERVAL", "KAFKA_BROKERS"}},
			{"a batch size of 0", map[string]string{"RELAY_BATCH_SIZE": "0"}, []string{"RELAY_BATCH_SIZE"}},
			{"a backoff max below its min", map[string]string{"RELAY_BACKOFF_MIN": "2s", "RELAY_BACKOFF_MAX": "1s"}, []string{"RELAY_BACKOFF_MAX"}},
			{"every problem at once", map[string]string{"DATABASE_URL": "postgres://localhost:5432", "KAFKA_BROKERS": ",", "RELAY_POLL_INTERVAL": "-1s", "HTTP_ADDR": "8080", "ORDER_EVENTS_TOPIC": "..", "SHUTDOWN_TIMEOUT": "0s"}, []string{"DATABASE_URL", "KAFKA_BROKERS", "RELAY_POLL_INTERVAL", "HTTP_ADDR", "ORDER_EVENTS_TOPIC", "SHUTDOWN_TIMEOUT"}},
		},
	},
	{
		name:     "order-consumer",
		vars:     config.Vars[orderconsumer.Config],
		validate: validator(func(c *orderconsumer.Config) *[]string { return &c.KafkaBrokers }),
		valid: []map[string]string{
			{"DLQ_TOPIC": "orders.dlq", "CONSUMER_GROUP": "projector_eu-1.v2"},
			{"CONSUMER_BATCH_SIZE": "1", "CONSUMER_BATCH_LINGER": "1ns", "CONSUMER_BACKOFF_MIN": "1s", "CONSUMER_BACKOFF_MAX": "1s"},
			{"CONSUMER_BATCH_SIZE": "10000", "LEDGER_RETENTION": "1h", "CONSUMER_PARKED_MAX_AGE": "30m"},
			{"CONSUMER_OFFSET_RESET": "latest", "CONSUMER_TOPIC_CHECK_INTERVAL": "1s"},
		},
		invalid: []invalid{
			{"no waiting read allowed", map[string]string{"HTTP_MAX_WAITING_READS": "0"}, []string{"HTTP_MAX_WAITING_READS"}},
			{"a negative linger", map[string]string{"CONSUMER_BATCH_LINGER": "-5ms"}, []string{"CONSUMER_BATCH_LINGER"}},
			{"a linger of 0, which would mean 5ms", map[string]string{"CONSUMER_BATCH_LINGER": "0s"}, []string{"CONSUMER_BATCH_LINGER"}},
			{"a negative ledger retention", map[string]string{"LEDGER_RETENTION": "-168h"}, []string{"LEDGER_RETENTION"}},
			{"a batch size of 0", map[string]string{"CONSUMER_BATCH_SIZE": "0"}, []string{"CONSUMER_BATCH_SIZE"}},
			{"an offset reset Kafka does not name", map[string]string{"CONSUMER_OFFSET_RESET": "none"}, []string{"CONSUMER_OFFSET_RESET"}},
			{"a topic check interval of 0", map[string]string{"CONSUMER_TOPIC_CHECK_INTERVAL": "0s"}, []string{"CONSUMER_TOPIC_CHECK_INTERVAL"}},
			{"events parked longer than the ledger keeps them", map[string]string{"LEDGER_RETENTION": "1h"}, []string{"CONSUMER_PARKED_MAX_AGE"}},
			{"a batch size above 10000", map[string]string{"CONSUMER_BATCH_SIZE": "10001"}, []string{"CONSUMER_BATCH_SIZE"}},
			{"a backoff max below its min", map[string]string{"CONSUMER_BACKOFF_MIN": "2s", "CONSUMER_BACKOFF_MAX": "1s"}, []string{"CONSUMER_BACKOFF_MAX"}},
			{"a DLQ topic with a space", map[string]string{"DLQ_TOPIC": "order events dlq"}, []string{"DLQ_TOPIC"}},
			{"the DLQ topic equal to the topic", map[string]string{"DLQ_TOPIC": "order-events"}, []string{"DLQ_TOPIC"}},
			{"a consumer group with a space", map[string]string{"CONSUMER_GROUP": "order projector"}, []string{"CONSUMER_GROUP"}},
			{"consumer group ..", map[string]string{"CONSUMER_GROUP": ".."}, []string{"CONSUMER_GROUP"}},
			{"a consumer group of 250 characters", map[string]string{"CONSUMER_GROUP": strings.Repeat("g", 250)}, []string{"CONSUMER_GROUP"}},
			{"every problem at once", map[string]string{"DATABASE_URL": "postgres://localhost:5432", "KAFKA_BROKERS": ",", "CONSUMER_BATCH_LINGER": "-1s", "HTTP_ADDR": "8080", "ORDER_EVENTS_TOPIC": "..", "SHUTDOWN_TIMEOUT": "0s", "SCHEMA_REGISTRY_URL": "registry:8081"}, []string{"DATABASE_URL", "KAFKA_BROKERS", "CONSUMER_BATCH_LINGER", "HTTP_ADDR", "ORDER_EVENTS_TOPIC", "SHUTDOWN_TIMEOUT", "SCHEMA_REGISTRY_URL"}},
		},
	},
}

// sharedValid and sharedInvalid hold for every service.
var sharedValid = []map[string]string{
	{},
	{"DATABASE_URL": "postgresql://u:p@db.internal:5432/orders?sslmode=verify-full"},
	{"DATABASE_URL": "postgres://db1:5432,db2:5433/orders"},
	{"DATABASE_URL": "postgres://localhost/?dbname=orders"},
	{"DATABASE_URL": "host=localhost user=postgres dbname=orders sslmode=disable"},
	{"DATABASE_MAX_CONNS": "0"}, // pgxpool's default
	{"HTTP_ADDR": ":0"},
	{"HTTP_ADDR": "127.0.0.1:0"},
	{"HTTP_ADDR": "[::1]:8080"},
	{"HTTP_ADDR": "localhost:65535"},
	{"KAFKA_BROKERS": "broker-1:9092,10.0.0.2:9093,[::1]:9094,kafka_2.internal:29092"},
	{"SCHEMA_REGISTRY_URL": "https://registry.example.com"},
	{"SCHEMA_REGISTRY_URL": "http://user:pass@schema-registry:8081/"},
	{"SCHEMA_REGISTRY_URL": "http://[::1]:8081/registry"},
	{"ORDER_EVENTS_TOPIC": "order-events.v2_eu"},
	{"ORDER_EVENTS_TOPIC": strings.Repeat("a", 249)},
	{"AUTH_JWKS_URL": "https://issuer/jwks", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a", "AUTH_JWKS_REFRESH_INTERVAL": "1s"},
	{"AUTH_JWKS_REFRESH_INTERVAL": "5m"},
}

var sharedInvalid = []invalid{
	{"a URL without a database", map[string]string{"DATABASE_URL": "postgres://postgres@localhost:5432"}, []string{"DATABASE_URL"}},
	{"a URL with an empty path and a query", map[string]string{"DATABASE_URL": "postgres://postgres@localhost:5432/?sslmode=disable"}, []string{"DATABASE_URL"}},
	{"a postgresql:// URL without a database", map[string]string{"DATABASE_URL": "postgresql://localhost"}, []string{"DATABASE_URL"}},
	{"an empty dbname parameter", map[string]string{"DATABASE_URL": "postgres://localhost/orders?dbname="}, []string{"DATABASE_URL"}},
	{"keyword/value without dbname", map[string]string{"DATABASE_URL": "host=localhost user=postgres sslmode=disable"}, []string{"DATABASE_URL"}},
	{"keyword/value with an empty dbname", map[string]string{"DATABASE_URL": "host=localhost dbname=''"}, []string{"DATABASE_URL"}},
	{"a URL that does not parse, its password hidden", map[string]string{"DATABASE_URL": "postgres://postgres:s3cret@localhost:port/orders"}, []string{"DATABASE_URL"}},
	{"keyword/value that does not parse, its password hidden", map[string]string{"DATABASE_URL": "host=localhost password=s3cret port=x dbname=orders"}, []string{"DATABASE_URL"}},
	{"not a connection string", map[string]string{"DATABASE_URL": "orders"}, []string{"DATABASE_URL"}},
	{"a broker list of one comma", map[string]string{"KAFKA_BROKERS": ","}, []string{"KAFKA_BROKERS"}},
	{"a broker list of spaces", map[string]string{"KAFKA_BROKERS": " , "}, []string{"KAFKA_BROKERS"}},
	{"an empty entry among brokers", map[string]string{"KAFKA_BROKERS": "a:9092,,b:9092"}, []string{"KAFKA_BROKERS"}},
	{"a trailing comma", map[string]string{"KAFKA_BROKERS": "a:9092,"}, []string{"KAFKA_BROKERS"}},
	{"a broker without a port", map[string]string{"KAFKA_BROKERS": "localhost"}, []string{"KAFKA_BROKERS"}},
	{"a broker with an empty port", map[string]string{"KAFKA_BROKERS": "localhost:"}, []string{"KAFKA_BROKERS"}},
	{"a broker with port 0", map[string]string{"KAFKA_BROKERS": "localhost:0"}, []string{"KAFKA_BROKERS"}},
	{"a broker with port 65536", map[string]string{"KAFKA_BROKERS": "localhost:65536"}, []string{"KAFKA_BROKERS"}},
	{"a broker with a named port", map[string]string{"KAFKA_BROKERS": "localhost:kafka"}, []string{"KAFKA_BROKERS"}},
	{"a broker without a host", map[string]string{"KAFKA_BROKERS": ":9092"}, []string{"KAFKA_BROKERS"}},
	{"a broker given as a URL", map[string]string{"KAFKA_BROKERS": "PLAINTEXT://broker:9092"}, []string{"KAFKA_BROKERS"}},
	{"spaces around a broker", map[string]string{"KAFKA_BROKERS": "a:9092, b:9092"}, []string{"KAFKA_BROKERS"}},
	{"negative max conns", map[string]string{"DATABASE_MAX_CONNS": "-1"}, []string{"DATABASE_MAX_CONNS"}},
	{"a registry URL without a scheme", map[string]string{"SCHEMA_REGISTRY_URL": "localhost:8081"}, []string{"SCHEMA_REGISTRY_URL"}},
	{"a registry URL of another scheme", map[string]string{"SCHEMA_REGISTRY_URL": "ftp://registry:8081"}, []string{"SCHEMA_REGISTRY_URL"}},
	{"a relative registry URL", map[string]string{"SCHEMA_REGISTRY_URL": "/registry"}, []string{"SCHEMA_REGISTRY_URL"}},
	{"a registry URL without a host", map[string]string{"SCHEMA_REGISTRY_URL": "http:///subjects"}, []string{"SCHEMA_REGISTRY_URL"}},
	{"a registry URL with port 0", map[string]string{"SCHEMA_REGISTRY_URL": "http://registry:0"}, []string{"SCHEMA_REGISTRY_URL"}},
	{"a registry URL with a query, its password hidden", map[string]string{"SCHEMA_REGISTRY_URL": "http://user:s3cret@registry:8081?x=1"}, []string{"SCHEMA_REGISTRY_URL"}},
	{"a registry URL that does not parse, its password hidden", map[string]string{"SCHEMA_REGISTRY_URL": "http://user:s3cret@registry:port"}, []string{"SCHEMA_REGISTRY_URL"}},
	{"topic .", map[string]string{"ORDER_EVENTS_TOPIC": "."}, []string{"ORDER_EVENTS_TOPIC"}},
	{"topic ..", map[string]string{"ORDER_EVENTS_TOPIC": ".."}, []string{"ORDER_EVENTS_TOPIC"}},
	{"a topic with a space", map[string]string{"ORDER_EVENTS_TOPIC": "order events"}, []string{"ORDER_EVENTS_TOPIC"}},
	{"a topic with a slash", map[string]string{"ORDER_EVENTS_TOPIC": "orders/events"}, []string{"ORDER_EVENTS_TOPIC"}},
	{"a topic of 250 characters", map[string]string{"ORDER_EVENTS_TOPIC": strings.Repeat("a", 250)}, []string{"ORDER_EVENTS_TOPIC"}},
	{"an HTTP address without a port", map[string]string{"HTTP_ADDR": "8080"}, []string{"HTTP_ADDR"}},
	{"an HTTP address with an empty port", map[string]string{"HTTP_ADDR": "localhost:"}, []string{"HTTP_ADDR"}},
	{"an HTTP address with a port too large", map[string]string{"HTTP_ADDR": ":65536"}, []string{"HTTP_ADDR"}},
	{"an HTTP address with a named port", map[string]string{"HTTP_ADDR": ":http"}, []string{"HTTP_ADDR"}},
	{"an HTTP address with a bad host", map[string]string{"HTTP_ADDR": "my host:8080"}, []string{"HTTP_ADDR"}},
	{"log level and format", map[string]string{"LOG_LEVEL": "loud", "LOG_FORMAT": "xml"}, []string{"LOG_LEVEL", "LOG_FORMAT"}},
	{"registry user info without a password separator", map[string]string{"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "s3cret"}, []string{"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"}},
	{"registry basic auth and a bearer token", map[string]string{"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "key:s3cret", "SCHEMA_REGISTRY_BEARER_TOKEN": "s3cret"}, []string{"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"}},
	{"a registry CA file for http://", map[string]string{"SCHEMA_REGISTRY_TLS_CA_FILE": "/etc/ssl/certs/ca-certificates.crt"}, []string{"SCHEMA_REGISTRY_TLS_CA_FILE"}},
	{"a registry CA file that is missing", map[string]string{"SCHEMA_REGISTRY_URL": "https://registry:8081", "SCHEMA_REGISTRY_TLS_CA_FILE": "/nonexistent/ca.pem"}, []string{"SCHEMA_REGISTRY_TLS_CA_FILE"}},
	{"an issuer without a JWKS (an API that looks guarded and is not)", map[string]string{"AUTH_ISSUER": "https://issuer"}, []string{"AUTH_JWKS_URL"}},
	{"a JWKS without its issuer and audience", map[string]string{"AUTH_JWKS_URL": "https://issuer/jwks"}, []string{"AUTH_ISSUER"}},
	{"a JWKS URL that is not a URL", map[string]string{"AUTH_JWKS_URL": "issuer/jwks", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a"}, []string{"AUTH_JWKS_URL"}},
	{"a JWKS refresh interval under a second", map[string]string{"AUTH_JWKS_URL": "https://issuer/jwks", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a", "AUTH_JWKS_REFRESH_INTERVAL": "500ms"}, []string{"AUTH_JWKS_REFRESH_INTERVAL"}},
	{"a JWKS refresh interval under a second, authentication off", map[string]string{"AUTH_JWKS_REFRESH_INTERVAL": "100ms"}, []string{"AUTH_JWKS_REFRESH_INTERVAL"}},
	{"an unknown Kafka security protocol", map[string]string{"KAFKA_SECURITY_PROTOCOL": "TLS"}, []string{"KAFKA_SECURITY_PROTOCOL"}},
	{"SASL without its mechanism, its password hidden", map[string]string{"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "s3cret"}, []string{"KAFKA_SASL_MECHANISM"}},
}

func TestConfigValidSettingsAreAccepted(t *testing.T) {
	for _, s := range services {
		for _, env := range append(append([]map[string]string{}, sharedValid...), s.valid...) {
			if err := s.validate(t, env, nil); err != nil {
				t.Errorf("%s %v: %v", s.name, env, err)
			}
		}
	}
}

func TestConfigInvalidSettingsAreRefusedNamingTheVariable(t *testing.T) {
	for _, s := range services {
		for _, tc := range append(append([]invalid{}, sharedInvalid...), s.invalid...) {
			t.Run(s.name+": "+tc.name+" is refused", func(t *testing.T) {
				refusedNaming(t, s.validate(t, tc.env, nil), tc.vars...)
			})
		}
	}
}

// Every number and duration a service reads is refused when negative, and
// every duration when zero (0 has no meaning for them: the components would
// read it as their default) but those of zeroMeans. Found from the
// variables' defaults, so a variable added later is covered too.
// zeroMeans are the durations whose 0 is a setting of its own, documented.
var zeroMeans = map[string]string{"RELAY_RETENTION": "delete published rows at once"}

func TestConfigEveryNegativeNumberAndDurationIsRefused(t *testing.T) {
	for _, s := range services {
		vars, err := s.vars()
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, v := range vars {
			var bad []string
			if _, err := time.ParseDuration(v.Default); err == nil && v.Default != "0" {
				bad = []string{"-1s", "0s"}
				if zeroMeans[v.Name] != "" {
					bad = []string{"-1s"}
					if err := s.validate(t, map[string]string{v.Name: "0s"}, nil); err != nil {
						t.Errorf("%s: %s=0s, which means %s, refused: %v", s.name, v.Name, zeroMeans[v.Name], err)
					}
				}
			} else if isInteger(v.Default) {
				bad = []string{"-1"}
			}
			for _, value := range bad {
				checked++
				t.Run(s.name+": "+v.Name+"="+value+" is refused", func(t *testing.T) {
					refusedNaming(t, s.validate(t, map[string]string{v.Name: value}, nil), v.Name)
				})
			}
		}
		if checked < 10 {
			t.Fatalf("%s: found only %d numeric and duration values to check", s.name, checked)
		}
	}
}

// Load reads an empty variable as unset, so KAFKA_BROKERS="" is the default;
// "," reaches Validate as two empty entries; an empty list can only come
// from a Config built in code. All but the default are refused.
func TestConfigEmptyBrokerListsAreRefused(t *testing.T) {
	for _, s := range services {
		var loaded []string
		if err := s.validate(t, map[string]string{"KAFKA_BROKERS": ""}, func(b *[]string) { loaded = *b }); err != nil || len(loaded) != 1 || loaded[0] != "localhost:9092" {
			t.Errorf("%s: KAFKA_BROKERS=\"\" loads as %q (%v), want the default", s.name, loaded, err)
		}
		for _, brokers := range [][]string{nil, {}, {""}, {"", ""}, {" "}} {
			refusedNaming(t, s.validate(t, nil, func(b *[]string) { *b = brokers }), "KAFKA_BROKERS")
		}
	}
}

// refusedNaming fails unless err has a line for each of vars, every line
// starting with one of them and none showing a password.
func refusedNaming(t *testing.T, err error, vars ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Validate() = nil, want it to name %v", vars)
	}
	msg := err.Error()
	if strings.Contains(msg, "s3cret") {
		t.Errorf("the error shows a password: %s", msg)
	}
	named := map[string]bool{}
	for _, line := range strings.Split(msg, "\n") {
		found := false
		for _, v := range vars {
			if strings.HasPrefix(line, v+"=") || strings.HasPrefix(line, v+" ") {
				named[v], found = true, true
			}
		}
		if !found {
			t.Errorf("error line %q does not start with any of %v", line, vars)
		}
	}
	for _, v := range vars {
		if !named[v] {
			t.Errorf("Validate() = %q, want a line starting with %s", msg, v)
		}
	}
}

func isInteger(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range strings.TrimPrefix(s, "-") {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
