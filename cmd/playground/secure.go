package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
)

// The secure playground's names. The secrets are new on every run.
const (
	kafkaUser    = "orders"
	registryUser = "orders-registry"
	audience     = "orders"
	tokenSubject = "playground-user"
	tokenScopes  = "orders:read orders:write"
	readScope    = "orders:read" // the read-only token's: a write with it is 403
	// tokenTTL outlives any playground session; a new run makes a new token.
	tokenTTL = 24 * time.Hour
)

// security is what -secure adds: a throwaway CA, the broker's and the
// registry's credentials, a token issuer and a bearer token, and the files a
// client needs, in Dir.
type security struct {
	Dir              string
	CAFile           string
	ClientProperties string
	Token            string
	ReadToken        string            // orders:read only
	PlainBrokers     string            // the plain gateway to the broker, for kcat
	EnvFiles         map[string]string // service → its .env file
	kafkaPassword    string

	serverTLS        *tls.Config
	kafkaOpts        []kfake.Opt
	registryUserInfo string
	env              map[string]string // for both services and every CLI command
	issuer           *devstack.TokenIssuer
}

// secure makes the CA, the credentials and the token issuer on issuerAddr.
func secure(issuerAddr string) (_ *security, err error) {
	s := &security{}
	if s.Dir, err = os.MkdirTemp("", "orders-playground-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	pki, err := devstack.NewPKI()
	if err != nil {
		return nil, err
	}
	if s.serverTLS, err = pki.ServerTLS(); err != nil {
		return nil, err
	}
	s.CAFile = filepath.Join(s.Dir, "ca.pem")
	if err := os.WriteFile(s.CAFile, pki.CAPEM, 0o600); err != nil {
		return nil, err
	}
	kafkaPassword, registryPassword := secret(), secret()
	s.kafkaPassword = kafkaPassword
	s.kafkaOpts = []kfake.Opt{kfake.TLS(s.serverTLS), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", kafkaUser, kafkaPassword)}
	s.registryUserInfo = registryUser + ":" + registryPassword

	if s.issuer, err = devstack.StartTokenIssuer(issuerAddr); err != nil {
		return nil, fmt.Errorf("start the token issuer on %s: %w", issuerAddr, err)
	}
	key, err := devstack.NewSigningKey("playground-1", jose.ES256)
	if err != nil {
		return nil, err
	}
	s.issuer.Publish(key)
	if s.Token, err = key.Sign(devstack.TokenClaims(s.issuer.Issuer, audience, tokenSubject, tokenScopes, tokenTTL)); err != nil {
		return nil, err
	}
	if s.ReadToken, err = key.Sign(devstack.TokenClaims(s.issuer.Issuer, audience, tokenSubject, readScope, tokenTTL)); err != nil {
		return nil, err
	}
	s.env = map[string]string{
		"KAFKA_SECURITY_PROTOCOL":              "SASL_SSL",
		"KAFKA_SASL_MECHANISM":                 "SCRAM-SHA-512",
		"KAFKA_SASL_USERNAME":                  kafkaUser,
		"KAFKA_SASL_PASSWORD":                  kafkaPassword,
		"KAFKA_TLS_CA_FILE":                    s.CAFile,
		"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": s.registryUserInfo,
		"SCHEMA_REGISTRY_TLS_CA_FILE":          s.CAFile,
		"AUTH_JWKS_URL":                        s.issuer.JWKSURL,
		"AUTH_ISSUER":                          s.issuer.Issuer,
		"AUTH_AUDIENCE":                        audience,
	}
	return s, nil
}

// secret is 130 random bits, in base32.
func secret() string { return rand.Text() }

// writeFiles writes, into Dir, each service's variables as a file a shell
// can source (so `order-consumer dlq list` reaches the secured stack), the
// bearer token, and a Kafka client.properties for Java clients and
// Confluent's tools.
func (s *security) writeFiles(shared map[string]string, services map[string]map[string]string) error {
	var err error
	if s.EnvFiles, err = writeEnvFiles(s.Dir, "the secure playground", shared, services); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "token"), []byte(s.Token+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "token-read"), []byte(s.ReadToken+"\n"), 0o600); err != nil {
		return err
	}
	user, pass, _ := strings.Cut(s.registryUserInfo, ":")
	s.ClientProperties = filepath.Join(s.Dir, "client.properties")
	props := fmt.Sprintf(`# Kafka and Schema Registry client settings for the secure playground
# (Java clients and Confluent's tools, e.g. --consumer.config; ssl.truststore.type=PEM needs Kafka 2.7+).
bootstrap.servers=%s
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";
ssl.truststore.type=PEM
ssl.truststore.location=%s
schema.registry.url=%s
basic.auth.credentials.source=USER_INFO
basic.auth.user.info=%s:%s
schema.registry.ssl.truststore.type=PEM
schema.registry.ssl.truststore.location=%s
`, shared["KAFKA_BROKERS"], kafkaUser, shared["KAFKA_SASL_PASSWORD"], s.CAFile, shared["SCHEMA_REGISTRY_URL"], user, pass, s.CAFile)
	return os.WriteFile(s.ClientProperties, []byte(props), 0o600)
}

// shellQuote quotes v for a POSIX shell.
func shellQuote(v string) string { return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'" }

// close stops the issuer and removes Dir: the secrets do not outlive the
// playground.
func (s *security) close() {
	if s.issuer != nil {
		s.issuer.Close()
	}
	_ = os.RemoveAll(s.Dir)
}

// gateway starts the plain gateway to the secured broker on addr: it logs
// in as the services' user, trusting the playground's CA.
func (s *security) gateway(addr, broker string) (*devstack.Gateway, error) {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	gw, err := devstack.StartGateway(addr, broker, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: "localhost"}, kafkaUser, s.kafkaPassword)
	if err != nil {
		return nil, fmt.Errorf("%w (move it with -kafka-plain-port or PLAYGROUND_KAFKA_PLAIN_PORT)", err)
	}
	return gw, nil
}
