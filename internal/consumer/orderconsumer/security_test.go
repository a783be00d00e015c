package orderconsumer_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/migrations"
)

// testCA makes a CA, a broker certificate for 127.0.0.1 and a client
// certificate signed by it, and returns the broker's TLS config, the CA's
// PEM file and the client's certificate and key files.
func testCA(t *testing.T) (brokerTLS *tls.Config, pki *devstack.PKI, caFile, clientCert, clientKey string) {
	t.Helper()
	pki, err := devstack.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	if brokerTLS, err = pki.ServerTLS(); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := pki.ClientCert("order-consumer")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return brokerTLS, pki, write("ca.pem", pki.CAPEM), write("client.pem", certPEM), write("client-key.pem", keyPEM)
}

// Both services, every Kafka client of theirs and the DLQ commands reach a
// secured broker with KAFKA_SECURITY_PROTOCOL and its companions: an order
// placed through order-api is relayed and projected; with a wrong password
// the consumer is not ready and says why.
func TestBothServicesReachASecuredCluster(t *testing.T) {
	brokerTLS, pki, caFile, clientCert, clientKey := testCA(t)
	mutual := brokerTLS.Clone()
	mutual.ClientAuth, mutual.ClientCAs = tls.RequireAndVerifyClientCert, pki.Pool()
	for _, tc := range []struct {
		name string
		opts []kfake.Opt
		env  []string
	}{
		{"SASL_SSL with PLAIN", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", "orders", "plain-secret"), kfake.TLS(brokerTLS)},
			[]string{"KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "KAFKA_SASL_MECHANISM", "PLAIN", "KAFKA_SASL_USERNAME", "orders",
				"KAFKA_SASL_PASSWORD", "plain-secret", "KAFKA_TLS_CA_FILE", caFile}},
		{"SASL_PLAINTEXT with SCRAM-SHA-512", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "orders", "scram-secret")},
			[]string{"KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "KAFKA_SASL_USERNAME", "orders",
				"KAFKA_SASL_PASSWORD", "scram-secret"}},
		{"SSL", []kfake.Opt{kfake.TLS(brokerTLS)},
			[]string{"KAFKA_SECURITY_PROTOCOL", "SSL", "KAFKA_TLS_CA_FILE", caFile, "KAFKA_TLS_SERVER_NAME", "localhost"}},
		{"SSL with a client certificate (mutual TLS)", []kfake.Opt{kfake.TLS(mutual)},
			[]string{"KAFKA_SECURITY_PROTOCOL", "SSL", "KAFKA_TLS_CA_FILE", caFile, "KAFKA_TLS_CERT_FILE", clientCert, "KAFKA_TLS_KEY_FILE", clientKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			probe := newStackWith(t, devstack.KafkaConfig{Opts: tc.opts}, kafkaconn.Plaintext)
			sec, err := probe.cfg(tc.env...).Kafka.Security()
			if err != nil {
				t.Fatal(err)
			}
			api := startSecuredOrderAPI(t, probe, tc.env)
			c := probe.start(tc.env...)
			st, o := call(t, "POST", api+"/orders", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":5}]}`)
			if st != 201 {
				t.Fatalf("place: %d", st)
			}
			if st, p := call(t, "GET", c.url+"/orders/"+o.ID+"?min_version=1&wait=20s", ""); st != 200 || p.Version != 1 {
				t.Fatalf("the order placed did not reach the projection through the secured broker: %d %+v", st, p)
			}
			entries, err := orderconsumer.ListDLQ(context.Background(), probe.cfg(tc.env...), deadletter.Filter{})
			if err != nil || len(entries) != 0 {
				t.Fatalf("dlq list through the secured broker: %v %v", entries, err)
			}
			if _, err := deadletter.List(context.Background(), probe.kafka.Brokers(), sec, "order-events.dlq", deadletter.Filter{}); err != nil {
				t.Fatal(err)
			}
			if _, err := deadletter.List(context.Background(), probe.kafka.Brokers(), kafkaconn.Plaintext, "order-events.dlq", deadletter.Filter{}); err == nil {
				t.Error("a plain-text client was let in: the broker is not secured, and the test proves nothing")
			}
		})
	}
	t.Run("a wrong password is degraded, and says why", func(t *testing.T) {
		t.Parallel()
		s := newStackWith(t, devstack.KafkaConfig{Opts: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", "orders", "right")}}, kafkaconn.Plaintext)
		c := s.start("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM", "PLAIN",
			"KAFKA_SASL_USERNAME", "orders", "KAFKA_SASL_PASSWORD", "wrong")
		var body map[string]any
		stacktest.WaitFor(t, "/readyz to name the SASL failure", wait, func() bool {
			var st int
			st, body = get(t, c.url+"/readyz")
			return st == 200 && strings.Contains(strings.ToLower(strings.Join(values(body["degraded"]), " ")), "sasl")
		})
		if strings.Contains(strings.Join(values(body["degraded"]), " "), "wrong") {
			t.Errorf("/readyz shows the password: %v", body)
		}
		api := startSecuredOrderAPI(t, s, []string{"KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM", "PLAIN",
			"KAFKA_SASL_USERNAME", "orders", "KAFKA_SASL_PASSWORD", "wrong", "RELAY_STALL_AFTER", "100ms"})
		if st, _ := call(t, "POST", api+"/orders", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":5}]}`); st != 201 {
			t.Fatalf("order-api refused an order while Kafka refuses it: %d", st)
		}
		// kafka-go's writer sees the refused login as a closed connection:
		// once the row has waited RELAY_STALL_AFTER, the relay reports its
		// write failing, as for a broker it cannot reach; the check is
		// optional, so orders are still taken.
		stacktest.WaitFor(t, "order-api's /readyz to report its relay's write failing", wait, func() bool {
			st, b := get(t, api+"/readyz")
			checks, _ := b["checks"].(map[string]any)
			relay, _ := checks["outbox_relay"].(string)
			return st == 200 && strings.HasPrefix(relay, "write to Kafka")
		})
	})
}

func values(v any) []string {
	m, _ := v.(map[string]any)
	var out []string
	for _, x := range m {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// startSecuredOrderAPI runs order-api against the stack with env set, on a
// database of its own.
func startSecuredOrderAPI(t *testing.T, s *stack, env []string) string {
	t.Helper()
	url, _ := serveOrderAPI(t, s, pgtest.MustDB(t, migrations.Orders()), stacktest.Logger(t), telemetry.Config{}, env...)
	return url
}

// With a wrong SASL password the relay keeps the rows and says which step
// fails, the consumer is degraded; once the services restart with the
// right one, publishing resumes and the order is projected. No secret given
// to either service — the SASL password, the registry's user info — appears
// in anything they wrote or answered: logs, /readyz, /metrics, errors.
func TestAWrongPasswordLosesNothingAndNoSecretLeaks(t *testing.T) {
	const (
		wrong    = "wrong-S3CRET-pw"
		right    = "right-S3CRET-pw"
		userInfo = "registry-user:registry-S3CRET"
	)
	s := newStackWith(t, devstack.KafkaConfig{Opts: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "orders", right)}}, kafkaconn.Plaintext)
	env := func(pw string) []string {
		return []string{"KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512",
			"KAFKA_SASL_USERNAME", "orders", "KAFKA_SASL_PASSWORD", pw, "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", userInfo}
	}
	var written strings.Builder // everything the services wrote or answered
	logs := stacktest.NewLog(t)
	db := pgtest.MustDB(t, migrations.Orders())
	api, stopAPI := serveOrderAPI(t, s, db, logs.Logger, telemetry.Config{}, append(env(wrong), "RELAY_STALL_AFTER", "100ms")...)
	c := s.startWith(telemetry.Config{}, logs.Logger, env(wrong)...)

	st, o := call(t, "POST", api+"/orders", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":5}]}`)
	if st != 201 {
		t.Fatalf("place: %d", st)
	}
	stacktest.WaitFor(t, "both services to report the refused login", wait, func() bool {
		ast, ab := get(t, api+"/readyz")
		cst, cb := get(t, c.url+"/readyz")
		checks, _ := ab["checks"].(map[string]any)
		relay, _ := checks["outbox_relay"].(string)
		written.WriteString(fmt.Sprint(ab, cb))
		return ast == 200 && strings.HasPrefix(relay, "write to Kafka") && cst == 200 && len(values(cb["degraded"])) > 0
	})
	var unpublished int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox").Scan(&unpublished); err != nil || unpublished != 1 {
		t.Fatalf("%d outbox rows unpublished (%v), want the order's 1 kept", unpublished, err)
	}
	for _, u := range []string{api + "/metrics", c.url + "/metrics"} {
		resp, err := client(t, u).Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		written.Write(b)
	}
	if err := stopAPI(); err != nil {
		t.Fatal(err)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}

	// Restarted with the right password: the kept row is published, and projected.
	serveOrderAPI(t, s, db, logs.Logger, telemetry.Config{}, env(right)...)
	c = s.startWith(telemetry.Config{}, logs.Logger, env(right)...)
	if st, p := call(t, "GET", c.url+"/orders/"+o.ID+"?min_version=1&wait=20s", ""); st != 200 || p.Version != 1 {
		t.Fatalf("after the restart the order was not projected: %d %+v", st, p)
	}
	_, err := orderconsumer.ListDLQ(context.Background(), s.cfg(env(wrong)...), deadletter.Filter{})
	if err == nil {
		t.Fatal("dlq list with a wrong password succeeded")
	}
	written.WriteString(err.Error())
	// A refused configuration names the variables, not the values.
	bad, err := config.Load[orderconsumer.Config](stacktest.Env(map[string]string{"KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
		"KAFKA_SASL_PASSWORD": wrong, "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "no-colon-" + wrong}))
	if err != nil {
		t.Fatal(err)
	}
	if verr := bad.Validate(); verr == nil {
		t.Error("a SASL_SSL configuration without a mechanism was accepted")
	} else {
		written.WriteString(verr.Error())
	}
	written.WriteString(logs.String())
	for _, secret := range []string{wrong, right, "registry-S3CRET"} {
		if strings.Contains(written.String(), secret) {
			t.Errorf("%q appears in what the services wrote or answered", secret)
		}
	}
	if !strings.Contains(logs.String(), "relay step failed") {
		t.Error("the log holds no relay failure: the search above proves little")
	}
}
