package kafkaconn_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
)

func TestUnusableSecuritySettingsAreRefusedByName(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	sasl := kafkaconn.Config{SecurityProtocol: "SASL_SSL", SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: "hunter2"}
	for _, tc := range []struct {
		name string
		cfg  kafkaconn.Config
		want string
	}{
		{"an unknown protocol", kafkaconn.Config{SecurityProtocol: "TLS"}, "KAFKA_SECURITY_PROTOCOL"},
		{"SASL without a mechanism", kafkaconn.Config{SecurityProtocol: "SASL_PLAINTEXT", SASLUsername: "u", SASLPassword: "hunter2"}, "KAFKA_SASL_MECHANISM"},
		{"an unknown mechanism", kafkaconn.Config{SecurityProtocol: "SASL_PLAINTEXT", SASLMechanism: "GSSAPI", SASLUsername: "u", SASLPassword: "hunter2"}, "KAFKA_SASL_MECHANISM"},
		{"SASL without a password", kafkaconn.Config{SecurityProtocol: "SASL_PLAINTEXT", SASLMechanism: "PLAIN", SASLUsername: "u"}, "KAFKA_SASL_PASSWORD"},
		{"SASL settings the protocol ignores", kafkaconn.Config{SecurityProtocol: "SSL", SASLMechanism: "PLAIN", SASLPassword: "hunter2"}, "KAFKA_SASL_"},
		{"TLS settings the protocol ignores", kafkaconn.Config{SecurityProtocol: "PLAINTEXT", TLSCAFile: notPEM}, "KAFKA_TLS_"},
		{"a CA file that is missing", func() kafkaconn.Config { c := sasl; c.TLSCAFile = filepath.Join(dir, "none.pem"); return c }(), "KAFKA_TLS_CA_FILE"},
		{"a CA file that holds no certificate", func() kafkaconn.Config { c := sasl; c.TLSCAFile = notPEM; return c }(), "KAFKA_TLS_CA_FILE"},
		{"a certificate without its key", func() kafkaconn.Config { c := sasl; c.TLSCertFile = notPEM; return c }(), "KAFKA_TLS_KEY_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := errors.Join(tc.cfg.Check()...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check() = %v, want it to name %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the refusal shows the password: %v", err)
			}
			if _, err := tc.cfg.Security(); err == nil {
				t.Error("Security() accepted what Check refused")
			}
		})
	}
}

func TestUsableSecuritySettingsAreAccepted(t *testing.T) {
	for _, cfg := range []kafkaconn.Config{
		{SecurityProtocol: "PLAINTEXT"},
		{SecurityProtocol: "SSL"}, // the system's roots
		{SecurityProtocol: "SASL_PLAINTEXT", SASLMechanism: "SCRAM-SHA-256", SASLUsername: "u", SASLPassword: "p"},
		{SecurityProtocol: "SASL_SSL", SASLMechanism: "SCRAM-SHA-512", SASLUsername: "u", SASLPassword: "p", TLSServerName: "kafka.example"},
	} {
		if _, err := cfg.Security(); err != nil {
			t.Errorf("%+v: %v", cfg.SecurityProtocol, err)
		}
	}
}

// A call's bound running out is told apart from any other failure, however
// kafka-go reports it: the context's deadline, the connection's, or one
// message of a write.
func TestTimedOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"a context deadline", fmt.Errorf("kafka.(*Client).Fetch: %w", context.DeadlineExceeded), true},
		{"a connection deadline", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
		{"one message of a write", kafka.WriteErrors{nil, context.DeadlineExceeded}, true},
		{"a refused connection", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
		{"a broker's refusal", kafka.WriteErrors{kafka.MessageSizeTooLarge}, false},
		{"nothing", nil, false},
	} {
		if got := kafkaconn.TimedOut(tc.err); got != tc.want {
			t.Errorf("%s: TimedOut(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
