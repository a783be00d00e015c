// Package kafkaconn is how every Kafka client of the services connects: the
// relay's writer, the consumer's reader, the dead-letter writer and reader,
// the lag and topic checks, and the operator commands. Its settings are
// named after Kafka's own client properties (security.protocol,
// sasl.mechanism, ssl.truststore…) so that a cluster's documentation reads
// across: PLAINTEXT (the default), SSL, SASL_PLAINTEXT or SASL_SSL, with
// SASL PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 through kafka-go's own
// mechanisms, and TLS with the system's roots or a CA file, optionally
// mutual.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Config is the security of the connection to the brokers.
type Config struct {
	// SecurityProtocol is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
	SecurityProtocol string `env:"KAFKA_SECURITY_PROTOCOL" envDefault:"PLAINTEXT"`
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* only).
	SASLMechanism string `env:"KAFKA_SASL_MECHANISM"`
	// SASLUsername and SASLPassword are the SASL credentials.
	SASLUsername string `env:"KAFKA_SASL_USERNAME"`
	SASLPassword string `env:"KAFKA_SASL_PASSWORD"`
	// TLSCAFile is a PEM file of the CAs to trust (SSL and SASL_SSL); empty:
	// the system's roots.
	TLSCAFile string `env:"KAFKA_TLS_CA_FILE"`
	// TLSCertFile and TLSKeyFile are a PEM client certificate and its key,
	// for mutual TLS; both or neither.
	TLSCertFile string `env:"KAFKA_TLS_CERT_FILE"`
	TLSKeyFile  string `env:"KAFKA_TLS_KEY_FILE"`
	// TLSServerName is the name the brokers' certificates must carry;
	// empty: each broker's host name.
	TLSServerName string `env:"KAFKA_TLS_SERVER_NAME"`
	// Timeout bounds each call to a broker: connecting, a produce until
	// acknowledged, a metadata or admin request. A broker that accepts the
	// connection and never answers is down past it. Not positive:
	// DefaultTimeout (the services refuse it, see service.Common).
	Timeout time.Duration `env:"KAFKA_TIMEOUT" envDefault:"10s"`
}

// DefaultTimeout is KAFKA_TIMEOUT's default, and the bound of a nil
// *Security's calls. A broker answers a metadata request in milliseconds
// and acknowledges an acks=all produce once its followers have the
// records, which a follower's fetch wait and a disk flush can stretch to
// seconds; ten seconds ride those out (kafka-go's own WriteTimeout default)
// and let a client find out that a broker hangs well before the 30s of
// Kafka's request.timeout.ms.
const DefaultTimeout = 10 * time.Second

// IdleTimeout is how long a connection to a broker stays open unused: kafka-go's
// default, well under the 10 minutes of the brokers' connections.max.idle.ms,
// so that a connection is closed by the client, never found closed by the
// broker in the middle of a request.
const IdleTimeout = 30 * time.Second

var (
	protocols  = []string{"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}
	mechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
)

func (c Config) usesTLS() bool {
	return c.SecurityProtocol == "SSL" || c.SecurityProtocol == "SASL_SSL"
}
func (c Config) usesSASL() bool {
	return c.SecurityProtocol == "SASL_PLAINTEXT" || c.SecurityProtocol == "SASL_SSL"
}

// Check reports every unusable setting, each naming its variable (never a
// password): an unknown protocol or mechanism, SASL without a mechanism or
// credentials, settings the protocol would ignore, files that cannot be
// read or parsed.
func (c Config) Check() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !slices.Contains(protocols, c.SecurityProtocol) {
		add("KAFKA_SECURITY_PROTOCOL=%q: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", c.SecurityProtocol)
		return errs
	}
	switch {
	case c.usesSASL():
		if !slices.Contains(mechanisms, c.SASLMechanism) {
			add("KAFKA_SASL_MECHANISM=%q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with KAFKA_SECURITY_PROTOCOL=%s", c.SASLMechanism, c.SecurityProtocol)
		}
		if c.SASLUsername == "" || c.SASLPassword == "" {
			add("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with KAFKA_SECURITY_PROTOCOL=%s", c.SecurityProtocol)
		}
	case c.SASLMechanism != "" || c.SASLUsername != "" || c.SASLPassword != "":
		add("KAFKA_SASL_* are set but KAFKA_SECURITY_PROTOCOL=%s does not use SASL (SASL_PLAINTEXT or SASL_SSL does)", c.SecurityProtocol)
	}
	if !c.usesTLS() {
		if c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSServerName != "" {
			add("KAFKA_TLS_* are set but KAFKA_SECURITY_PROTOCOL=%s does not use TLS (SSL or SASL_SSL does)", c.SecurityProtocol)
		}
		return errs
	}
	if _, err := c.tlsConfig(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

func (c Config) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE=%q: %w", c.TLSCAFile, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE=%q: no PEM certificate in it", c.TLSCAFile)
		}
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CERT_FILE=%q, KAFKA_TLS_KEY_FILE=%q: %w", c.TLSCertFile, c.TLSKeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case c.TLSCertFile != "" || c.TLSKeyFile != "":
		return nil, errors.New("KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE go together (mutual TLS): set both or neither")
	}
	return cfg, nil
}

// Security is a checked Config, ready to connect with. A nil *Security
// connects in plain text, without authentication, bounded by
// DefaultTimeout.
type Security struct {
	tls     *tls.Config
	sasl    sasl.Mechanism
	timeout time.Duration
}

// Timeout is the bound of each call to a broker (KAFKA_TIMEOUT): the
// writers' WriteTimeout, the admin clients' Timeout, the dialers'.
func (s *Security) Timeout() time.Duration {
	if s == nil || s.timeout <= 0 {
		return DefaultTimeout
	}
	return s.timeout
}

// Security returns c ready to connect with, or the first unusable setting.
func (c Config) Security() (*Security, error) {
	if errs := c.Check(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Security{timeout: c.Timeout}
	if c.usesTLS() {
		cfg, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		s.tls = cfg
	}
	if c.usesSASL() {
		switch c.SASLMechanism {
		case "PLAIN":
			s.sasl = plain.Mechanism{Username: c.SASLUsername, Password: c.SASLPassword}
		default:
			algo := scram.SHA256
			if c.SASLMechanism == "SCRAM-SHA-512" {
				algo = scram.SHA512
			}
			m, err := scram.Mechanism(algo, c.SASLUsername, c.SASLPassword)
			if err != nil {
				return nil, fmt.Errorf("KAFKA_SASL_MECHANISM=%s: %w", c.SASLMechanism, err)
			}
			s.sasl = m
		}
	}
	return s, nil
}

// Transport is a kafka.Transport (for a Writer or a Client) with s's TLS
// and SASL, connecting within s's Timeout. Each request is bounded by its
// caller (a Writer's WriteTimeout, a Client's Timeout): a connection whose
// request ran out is closed, and the next request dials anew.
func (s *Security) Transport() *kafka.Transport {
	t := &kafka.Transport{DialTimeout: s.Timeout(), IdleTimeout: IdleTimeout}
	if s != nil {
		t.TLS, t.SASL = s.tls, s.sasl
	}
	return t
}

// Dialer is a kafka.Dialer (for a Reader) with s's TLS and SASL, connecting
// (and finding a partition's leader) within s's Timeout.
func (s *Security) Dialer() *kafka.Dialer {
	d := &kafka.Dialer{Timeout: s.Timeout(), DualStack: true}
	if s != nil {
		d.TLS, d.SASLMechanism = s.tls, s.sasl
	}
	return d
}

// Client is a kafka.Client for the admin and metadata calls (offsets,
// partitions, configs), each bounded by timeout.
func (s *Security) Client(brokers []string, timeout time.Duration) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: timeout, Transport: s.Transport()}
}

// TimedOut reports whether err, a call's to a broker (a write's: any of its
// messages'), is its bound running out: a context deadline, or the
// connection's deadline set from it, whichever came first.
func TimedOut(err error) bool {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if TimedOut(e) {
				return true
			}
		}
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// Plaintext connects without TLS or SASL: the embedded development broker,
// and the tests.
var Plaintext *Security
