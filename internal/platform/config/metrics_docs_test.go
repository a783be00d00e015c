package config_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/consumer/projector"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
)

// collecting is a Registerer that keeps what is registered, to list the
// metric names each collector describes.
type collecting struct{ cs []prometheus.Collector }

func (c *collecting) Register(x prometheus.Collector) error { c.cs = append(c.cs, x); return nil }
func (c *collecting) MustRegister(xs ...prometheus.Collector) {
	c.cs = append(c.cs, xs...)
}
func (c *collecting) Unregister(prometheus.Collector) bool { return false }

// TestOperationsDocListsEveryMetricAndTracingVariable keeps the metrics table
// of docs/operations.md and the tracing table of docs/configuration.md true
// to the code: every metric the services register is in the table and every
// table row is a metric they register; every OTEL_* variable honoured is
// named.
func TestOperationsDocListsEveryMetricAndTracingVariable(t *testing.T) {
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start := strings.Index(text, "### Metrics")
	end := strings.Index(text[start+1:], "\n#") + start + 1
	if start < 0 || end <= start {
		t.Fatal(operationsDoc + " has no ### Metrics section followed by another")
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)[{`]").FindAllStringSubmatch(text[start:end], -1) {
		documented[m[1]] = true
	}

	reg := &collecting{}
	outbox.NewMetrics(reg)
	projector.NewMetrics(reg)
	projectionstore.NewMetrics(reg)
	telemetry.NewHTTPMetrics(reg)
	reg.cs = append(reg.cs, outbox.NewBacklogCollector(nil), projector.NewLagCollector([]string{"x"}, kafkaconn.Plaintext, "t", "g", nil),
		projectionstore.NewParkedCollector(nil))
	if _, err := outbox.NewWatch(outbox.WatchConfig{Pool: &pgxpool.Pool{}, StallAfter: time.Minute, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := projector.NewProgress(projector.ProgressConfig{Brokers: []string{"x"}, Topic: "t", GroupID: "g", StallAfter: time.Minute,
		Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range reg.cs {
		ch := make(chan *prometheus.Desc, 16)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			registered[fq.FindStringSubmatch(d.String())[1]] = true
		}
	}
	if len(registered) < 15 {
		t.Fatalf("found only %d metrics: %v", len(registered), registered)
	}
	for name := range registered {
		if !documented[name] {
			t.Errorf("%s's metrics table lacks %s", operationsDoc, name)
		}
	}
	for name := range documented {
		if !registered[name] {
			t.Errorf("%s's metrics table lists %s, which no service registers", operationsDoc, name)
		}
	}
	cfg, err := os.ReadFile(configurationDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range telemetry.Vars {
		if !strings.Contains(string(cfg), "`"+v+"`") {
			t.Errorf("%s does not name %s", configurationDoc, v)
		}
	}
}
