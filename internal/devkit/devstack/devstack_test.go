package devstack_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
)

// kafka-go, as the services configure it, works against the embedded broker:
// a RequireAll/murmur2 writer, a consumer group reader, offset commits.
func TestKafkaGoProducesAndConsumesInAGroup(t *testing.T) {
	k, err := devstack.StartKafka(devstack.KafkaConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w := &kafka.Writer{Addr: kafka.TCP(k.Brokers()...), Topic: "order-events", RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Murmur2Balancer{Consistent: true}, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("a"), Value: []byte("1")}, kafka.Message{Key: []byte("b"), Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers(), GroupID: "g", Topic: "order-events", StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	got := map[string]string{}
	for len(got) < 2 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[string(m.Key)] = string(m.Value)
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	if got["a"] != "1" || got["b"] != "2" {
		t.Fatalf("read %v", got)
	}
}

func TestRegistryStopRefusesAndStartRestoresTheData(t *testing.T) {
	r, err := devstack.StartRegistry("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	body := `{"schema":"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"string\"}]}"}`
	resp, err := http.Post(r.URL()+"/subjects/s-value/versions", "application/vnd.schemaregistry.v1+json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("register: %v %v", resp, err)
	}
	resp.Body.Close()
	r.Stop()
	if _, err := http.Get(r.URL() + "/subjects"); err == nil {
		t.Fatal("a stopped registry answered")
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(r.URL() + "/schemas/ids/1")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after restart: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestEnsurePostgresUsesDatabaseURLWhenSet(t *testing.T) {
	dsn, stop, err := devstack.EnsurePostgres(context.Background(), func(k string) string {
		if k == "DATABASE_URL" {
			return "postgres://u@db.example:5432/x"
		}
		return ""
	}, t.Logf, "")
	if err != nil || dsn != "postgres://u@db.example:5432/x" || stop() != nil {
		t.Fatalf("%q %v", dsn, err)
	}
}

func TestEnsurePostgresFindsTheLocalServer(t *testing.T) {
	dsn, stop, err := devstack.EnsurePostgres(context.Background(), func(string) string { return "" }, t.Logf, "")
	if err != nil {
		t.Fatalf("PostgreSQL must answer on 127.0.0.1:5432 for the tests: %v", err)
	}
	defer stop()
	if !strings.Contains(dsn, "127.0.0.1:5432") {
		t.Fatalf("dsn %q", dsn)
	}
}

func TestThrowawayClusterStartsAndIsRemoved(t *testing.T) {
	dsn, dir, stop, err := devstack.StartThrowawayForTest(context.Background(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if err := devstack.ProbeForTest(context.Background(), dsn); err != nil {
		t.Fatalf("throwaway cluster does not answer at %s: %v", dsn, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still exists after stop (%v)", dir, err)
	}
	if err := devstack.ProbeForTest(context.Background(), dsn); err == nil {
		t.Fatal("the cluster still answers after stop")
	}
}
