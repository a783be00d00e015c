package devstack_test

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
)

// A client that speaks plain Kafka, without TLS or SASL, reaches a broker
// that takes only SASL_SSL through the gateway: the metadata it gets
// names the gateway, and what it produces it reads back. Without the
// gateway the broker refuses it, and with a wrong password the gateway
// passes nothing.
func TestAPlainClientReachesASecuredBrokerThroughTheGateway(t *testing.T) {
	t.Parallel()
	pki, err := devstack.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := pki.ServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	k, err := devstack.StartKafka(devstack.KafkaConfig{Opts: []kfake.Opt{kfake.TLS(serverTLS), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "orders", "right")}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	clientTLS := &tls.Config{RootCAs: pki.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	gw, err := devstack.StartGateway("127.0.0.1:0", k.Brokers()[0], clientTLS, "orders", "right")
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	conn, err := kafka.DialContext(ctx, "tcp", gw.Addr())
	if err != nil {
		t.Fatal(err)
	}
	brokers, err := conn.Brokers()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range brokers {
		if got := net.JoinHostPort(b.Host, strconv.Itoa(b.Port)); got != gw.Addr() {
			t.Errorf("metadata names broker %s, want the gateway %s", got, gw.Addr())
		}
	}
	w := &kafka.Writer{Addr: kafka.TCP(gw.Addr()), Topic: "order-events", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("through the gateway")}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var read string
	for p := 0; p < 6 && read == ""; p++ {
		c, err := kafka.DialLeader(ctx, "tcp", gw.Addr(), "order-events", p)
		if err != nil {
			t.Fatal(err)
		}
		if last, _ := c.ReadLastOffset(); last > 0 {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			m, err := c.ReadMessage(1 << 20)
			if err != nil {
				t.Fatal(err)
			}
			read = string(m.Value)
		}
		c.Close()
	}
	if read != "through the gateway" {
		t.Fatalf("read back %q", read)
	}

	// The broker itself refuses a plain client; a gateway with a wrong
	// password passes nothing.
	if c, err := kafka.DialContext(ctx, "tcp", k.Brokers()[0]); err == nil {
		_, err = c.Brokers()
		c.Close()
		if err == nil {
			t.Error("the secured broker answered a plain client")
		}
	}
	bad, err := devstack.StartGateway("127.0.0.1:0", k.Brokers()[0], clientTLS, "orders", "wrong")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if c, err := kafka.DialContext(ctx, "tcp", bad.Addr()); err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Brokers()
		c.Close()
		if err == nil {
			t.Error("a gateway with the wrong password passed a request")
		}
	}
}
