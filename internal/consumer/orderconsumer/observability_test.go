package orderconsumer_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/consumer/projector"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/logging"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/migrations"
)

// scrape reads a service's /metrics into "name{label="value",...}" → value,
// labels sorted; histograms appear as their _count and _sum.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := client(t, base).Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(ls)
			key := name + "{" + strings.Join(ls, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[name+"_count{"+strings.Join(ls, ",")+"}"] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum{"+strings.Join(ls, ",")+"}"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// TestMetricsMoveWithAFlow scrapes both services before and after a place,
// a pay and a poison message, and checks every metric docs/operations.md lists
// moved by what happened.
func TestMetricsMoveWithAFlow(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api := startOrderAPI(t, s)
	consumer := s.start()

	// The first scrape may come before the relay took the lock.
	stacktest.WaitFor(t, "relay leadership", wait, func() bool {
		return scrape(t, api)[`outbox_relay_leader{}`] == 1
	})
	beforeAPI, beforeConsumer := scrape(t, api), scrape(t, consumer.url)
	// Before any failure, every counter with known label values has its
	// series at 0 (an alert on them must see a series from start-up).
	zeros := map[string]map[string]float64{}
	for _, step := range []string{"read outbox", "frame", "write to Kafka"} {
		zeros[`outbox_step_failures_total{step="`+step+`"}`] = beforeAPI
	}
	for _, d := range projector.Dependencies {
		zeros[`consumer_retries_total{dependency="`+d+`"}`] = beforeConsumer
	}
	for _, c := range orderconsumer.Classes() {
		zeros[`consumer_dlq_published_total{class="`+c+`"}`] = beforeConsumer
	}
	for key, page := range zeros {
		if v, ok := page[key]; !ok || v != 0 {
			t.Errorf("%s before any failure: %v (present: %v), want a series at 0", key, v, ok)
		}
	}

	st, o := call(t, "POST", api+"/orders", `{"customer_id":"m","currency":"EUR","items":[{"sku":"s","quantity":1,"unit_price_minor":100}]}`)
	if st != 201 {
		t.Fatalf("place: %d", st)
	}
	if st, _ := call(t, "POST", api+"/orders/"+o.ID+"/pay", ""); st != 200 {
		t.Fatalf("pay: %d", st)
	}
	if st, _ := call(t, "POST", api+"/orders/"+o.ID+"/refund", `{`); st != 400 {
		t.Fatalf("refund with a broken body: %d, want 400", st)
	}
	s.produce(kafka.Message{Key: []byte(o.ID), Value: []byte("poison")})
	s.waitVersion(uuid.MustParse(o.ID), 2)
	if st, got := call(t, "GET", consumer.url+"/orders/"+o.ID, ""); st != 200 || got.Version != 2 {
		t.Fatalf("projection: %d %+v", st, got)
	}
	kafkatest.WaitForCount(t, s.kafka.Brokers()[0], dlqTopic, 1, 20*time.Second)

	var afterAPI, afterConsumer map[string]float64
	stacktest.WaitFor(t, "the consumer's counters and lag to settle", wait, func() bool {
		afterConsumer = scrape(t, consumer.url)
		lagged := 0.0
		for k, v := range afterConsumer {
			if strings.HasPrefix(k, "consumer_lag{") {
				lagged += v
			}
		}
		return afterConsumer[`consumer_events_total{outcome="dead_lettered"}`]-beforeConsumer[`consumer_events_total{outcome="dead_lettered"}`] == 1 && lagged == 0
	})
	afterAPI = scrape(t, api)

	delta := func(after, before map[string]float64, key string) float64 { return after[key] - before[key] }
	for _, c := range []struct {
		service    string
		key        string
		after      map[string]float64
		before     map[string]float64
		want, plus float64 // want exactly, or at least plus when want < 0
	}{
		{"order-api", `http_request_duration_seconds_count{method="POST",route="/orders",status="201"}`, afterAPI, beforeAPI, 1, 0},
		{"order-api", `http_request_duration_seconds_count{method="POST",route="/orders/{id}/pay",status="200"}`, afterAPI, beforeAPI, 1, 0},
		{"order-api", `http_request_duration_seconds_count{method="POST",route="/orders/{id}/refund",status="400"}`, afterAPI, beforeAPI, 1, 0},
		{"order-api", `outbox_published_events_total{}`, afterAPI, beforeAPI, 2, 0},
		{"order-api", `outbox_publish_latency_seconds_count{}`, afterAPI, beforeAPI, 2, 0},
		{"order-api", `outbox_write_duration_seconds_count{}`, afterAPI, beforeAPI, -1, 1},
		{"order-api", `outbox_batch_size_count{}`, afterAPI, beforeAPI, -1, 1},
		{"order-consumer", `consumer_events_total{outcome="applied"}`, afterConsumer, beforeConsumer, 2, 0},
		{"order-consumer", `consumer_events_total{outcome="dead_lettered"}`, afterConsumer, beforeConsumer, 1, 0},
		{"order-consumer", `consumer_dlq_published_total{class="eventcodec.ErrNotFramed"}`, afterConsumer, beforeConsumer, 1, 0},
		{"order-consumer", `consumer_end_to_end_latency_seconds_count{}`, afterConsumer, beforeConsumer, 2, 0},
		{"order-consumer", `consumer_batch_duration_seconds_count{}`, afterConsumer, beforeConsumer, -1, 1},
		{"order-consumer", `http_request_duration_seconds_count{method="GET",route="/orders/{id}",status="200"}`, afterConsumer, beforeConsumer, -1, 1},
	} {
		got := delta(c.after, c.before, c.key)
		if c.want >= 0 && got != c.want || c.want < 0 && got < c.plus {
			t.Errorf("%s %s moved by %v, want %v", c.service, c.key, got, max(c.want, c.plus))
		}
	}
	// Absolute values: the relay leads, the backlog is empty, the lag is
	// reported for every partition, the processes report their memory.
	for key, want := range map[string]float64{`outbox_relay_leader{}`: 1, `outbox_backlog{}`: 0, `outbox_oldest_unpublished_age_seconds{}`: 0} {
		if got, ok := afterAPI[key]; !ok || got != want {
			t.Errorf("order-api %s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	partitions := 0
	for k := range afterConsumer {
		if strings.HasPrefix(k, `consumer_lag{`) && strings.Contains(k, `group="order-projector"`) {
			partitions++
		}
	}
	if partitions == 0 {
		t.Error("no consumer_lag series")
	}
	for name, m := range map[string]map[string]float64{"order-api": afterAPI, "order-consumer": afterConsumer} {
		if m[`process_resident_memory_bytes{}`] <= 0 {
			t.Errorf("%s reports no process_resident_memory_bytes", name)
		}
	}
	// Route labels are patterns: no order ID may become a label value.
	for k := range afterAPI {
		if strings.Contains(k, o.ID) {
			t.Errorf("order ID in a metric: %s", k)
		}
	}
}

// TestMetricsShowTheBacklogWhileKafkaIsDown: with the broker refusing
// produce requests, the outbox backlog and its age are visible on
// order-api's /metrics, and drain to zero when the broker is back.
func TestMetricsShowTheBacklogWhileKafkaIsDown(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api, _ := serveOrderAPI(t, s, pgtest.MustDB(t, migrations.Orders()), stacktest.Logger(t), telemetry.Config{}, "RELAY_STALL_AFTER", "200ms")
	stacktest.WaitFor(t, "relay leadership", wait, func() bool { return scrape(t, api)[`outbox_relay_leader{}`] == 1 })

	fault := s.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	for range 3 {
		if st, _ := call(t, "POST", api+"/orders", `{"customer_id":"b","currency":"EUR","items":[{"sku":"s","quantity":1,"unit_price_minor":100}]}`); st != 201 {
			t.Fatalf("place while Kafka refuses: %d", st)
		}
	}
	stacktest.WaitFor(t, "a backlog of 3 with an age", wait, func() bool {
		m := scrape(t, api)
		return m[`outbox_backlog{}`] == 3 && m[`outbox_oldest_unpublished_age_seconds{}`] > 0 &&
			m[`outbox_step_failures_total{step="write to Kafka"}`] > 0
	})
	// Once the rows have waited RELAY_STALL_AFTER, /readyz names the
	// failing step but stays 200: orders are still taken.
	stacktest.WaitFor(t, "/readyz to name the failing step", wait, func() bool {
		st, body := get(t, api+"/readyz")
		checks, _ := body["checks"].(map[string]any)
		relay, _ := checks["outbox_relay"].(string)
		if st != 200 || checks["database"] != "ok" {
			t.Fatalf("/readyz while Kafka refuses: %d %v", st, body)
		}
		return strings.HasPrefix(relay, "write to Kafka: ")
	})
	fault.Remove()
	stacktest.WaitFor(t, "the backlog to drain", wait, func() bool {
		m := scrape(t, api)
		return m[`outbox_backlog{}`] == 0 && m[`outbox_published_events_total{}`] == 3
	})
	stacktest.WaitFor(t, "/readyz to show the relay ok", wait, func() bool {
		_, body := get(t, api+"/readyz")
		return body["checks"].(map[string]any)["outbox_relay"] == "ok"
	})
}

// jsonLog is the logger order-consumer makes with LOG_FORMAT=json at level,
// writing to a stacktest.Log (read back with jsonLines).
func jsonLog(t *testing.T, level string) (*slog.Logger, *stacktest.Log) {
	t.Helper()
	logs := stacktest.NewLog(t)
	log, err := logging.New(logs, level, "json")
	if err != nil {
		t.Fatal(err)
	}
	return log, logs
}

// jsonLines decodes the lines of log that are JSON objects.
func jsonLines(log *stacktest.Log) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(log.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// TestTraceContextReachesKafkaAndTheConsumerLog: a client sends a
// traceparent with its request; the event's Kafka headers carry the same
// trace ID, and so does the consumer's log line for that event — with
// tracing off (the default), and with tracing on, where the spans also chain
// client → order-api's server span → order-consumer's process span.
func TestTraceContextReachesKafkaAndTheConsumerLog(t *testing.T) {
	t.Parallel()
	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		clientSp = "00f067aa0ba902b7"
	)
	for _, tracingOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tracing on: %v", tracingOn), func(t *testing.T) {
			s := newStack(t)
			var (
				apiTel, consumerTel telemetry.Config
				apiSpans            = tracetest.NewInMemoryExporter()
				consumerSpans       = tracetest.NewInMemoryExporter()
			)
			if tracingOn {
				apiTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(apiSpans))
				consumerTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(consumerSpans))
				apiTel, consumerTel = telemetry.Config{TracerProvider: apiTP}, telemetry.Config{TracerProvider: consumerTP}
			}
			log, logs := jsonLog(t, "debug")
			api := startOrderAPIWith(t, s, apiTel)
			s.startWith(consumerTel, log)

			req, _ := http.NewRequest("POST", api+"/orders", strings.NewReader(`{"customer_id":"t","currency":"EUR","items":[{"sku":"s","quantity":1,"unit_price_minor":100}]}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("traceparent", "00-"+traceID+"-"+clientSp+"-01")
			req.Header.Set("X-Correlation-ID", "trace-test")
			resp, err := client(t, api).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var o apiOrder
			_ = json.NewDecoder(resp.Body).Decode(&o)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				t.Fatalf("place: %s", resp.Status)
			}

			msgs := kafkatest.WaitForCount(t, s.kafka.Brokers()[0], topic, 1, 20*time.Second)
			tp, _ := kafkatest.Header(msgs[0], "traceparent")
			parts := strings.Split(tp, "-")
			if len(parts) != 4 || parts[1] != traceID {
				t.Fatalf("traceparent header %q: want trace ID %s", tp, traceID)
			}

			var line map[string]any
			stacktest.WaitFor(t, "the consumer's log line for the event", wait, func() bool {
				for _, l := range jsonLines(logs) {
					if l["msg"] == "event processed" && l["order_id"] == o.ID {
						line = l
						return true
					}
				}
				return false
			})
			if line["trace_id"] != traceID || line["correlation_id"] != "trace-test" || line["outcome"] != "applied" {
				t.Fatalf("consumer log line %v: want trace_id %s, correlation_id trace-test, outcome applied", line, traceID)
			}

			if !tracingOn {
				// No spans made: the header passes the client's context on as it came.
				if parts[2] != clientSp {
					t.Errorf("traceparent %q: with tracing off the client's span ID should pass through", tp)
				}
				return
			}
			server := findSpan(t, apiSpans, trace.SpanKindServer)
			if server.Parent.SpanID().String() != clientSp || server.SpanContext.TraceID().String() != traceID {
				t.Errorf("server span %s: parent %s, trace %s", server.Name, server.Parent.SpanID(), server.SpanContext.TraceID())
			}
			if server.Name != "POST /orders" {
				t.Errorf("server span named %q", server.Name)
			}
			if parts[2] != server.SpanContext.SpanID().String() {
				t.Errorf("traceparent %q: parent should be order-api's server span %s", tp, server.SpanContext.SpanID())
			}
			var process tracetest.SpanStub
			stacktest.WaitFor(t, "the consumer's span", wait, func() bool {
				for _, sp := range consumerSpans.GetSpans() {
					if sp.SpanKind == trace.SpanKindConsumer {
						process = sp
						return true
					}
				}
				return false
			})
			if process.Parent.SpanID() != server.SpanContext.SpanID() || process.SpanContext.TraceID().String() != traceID {
				t.Errorf("consumer span: parent %s trace %s, want parent %s trace %s", process.Parent.SpanID(),
					process.SpanContext.TraceID(), server.SpanContext.SpanID(), traceID)
			}
			if line["span_id"] != process.SpanContext.SpanID().String() {
				t.Errorf("consumer log span_id %v, want the process span %s", line["span_id"], process.SpanContext.SpanID())
			}
		})
	}
}

func findSpan(t *testing.T, exp *tracetest.InMemoryExporter, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	for _, sp := range exp.GetSpans() {
		if sp.SpanKind == kind {
			return sp
		}
	}
	t.Fatalf("no %s span among %d", kind, len(exp.GetSpans()))
	return tracetest.SpanStub{}
}

// TestShutdownAnswersWaitingReads: a GET waiting for a version when the
// service stops is answered with what the projection holds (404 here), and
// the shutdown completes cleanly instead of waiting the read out.
func TestShutdownAnswersWaitingReads(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.start() // SHUTDOWN_TIMEOUT 2s, far shorter than the wait
	type answer struct {
		status int
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := client(t, c.url).Get(c.url + "/orders/" + uuid.NewString() + "?min_version=1&wait=25s")
		if err != nil {
			answered <- answer{0, err}
			return
		}
		resp.Body.Close()
		answered <- answer{resp.StatusCode, nil}
	}()
	// The read is in flight, and so is the scrape that sees it.
	stacktest.WaitFor(t, "the read to be in flight", wait, func() bool {
		return scrape(t, c.url)["http_requests_in_flight{}"] >= 2
	})
	if err := c.stop(); err != nil {
		t.Fatalf("Serve after a shutdown with a waiting read: %v", err)
	}
	select {
	case a := <-answered:
		if a.err != nil || a.status != http.StatusNotFound {
			t.Errorf("waiting read answered %d (%v), want 404", a.status, a.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting read was not answered")
	}
}
