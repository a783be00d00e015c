package telemetry_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// TestOTLPExportReachesTheCollector: with OTEL_TRACES_EXPORTER=otlp and an
// endpoint, a span ends up POSTed as OTLP/HTTP protobuf, under the
// service's name.
func TestOTLPExportReachesTheCollector(t *testing.T) {
	got := make(chan []byte, 4)
	var contentType, path string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		contentType, path = r.Header.Get("Content-Type"), r.URL.Path
		got <- b
	}))
	defer collector.Close()
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "")

	tr, err := telemetry.NewTracing(context.Background(), "order-api", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Exporter != "otlp" {
		t.Fatalf("exporter %q", tr.Exporter)
	}
	_, span := tr.Provider.Tracer("test").Start(context.Background(), "POST /orders")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if path != "/v1/traces" || contentType != "application/x-protobuf" {
			t.Errorf("POST %s with %s", path, contentType)
		}
		for _, want := range []string{"order-api", "POST /orders"} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("exported spans lack %q", want)
			}
		}
	default:
		t.Fatal("nothing reached the collector")
	}
}

func TestTracingIsOffByDefaultAndRefusesWhatItCannotDo(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, m := range []map[string]string{{}, {"OTEL_TRACES_EXPORTER": "none"}, {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}} {
		tr, err := telemetry.NewTracing(context.Background(), "x", env(m))
		if err != nil || tr.Exporter != "none" {
			t.Errorf("%v: exporter %q, error %v; want none", m, tr.Exporter, err)
		}
	}
	for m, want := range map[string]map[string]string{
		"OTEL_TRACES_EXPORTER=\"jaeger\"":             {"OTEL_TRACES_EXPORTER": "jaeger"},
		"OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\"":        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=\"grpc\"": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
	} {
		_, err := telemetry.NewTracing(context.Background(), "x", env(want))
		if err == nil || !strings.Contains(err.Error(), m) {
			t.Errorf("%v: error %v, want one naming %s", want, err, m)
		}
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got := telemetry.Traceparent(telemetry.Extract(context.Background(), tp, "")); got != tp {
		t.Errorf("round trip: %q", got)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		if got := telemetry.Traceparent(telemetry.Extract(context.Background(), bad, "")); got != "" {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}

// With OTEL_TRACES_EXPORTER=console a span is on stderr as soon as it ends,
// not when a batch is flushed seconds later or at shutdown.
func TestConsoleSpansArePrintedAsTheyEnd(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w // the exporter takes the writer when it is made
	tr, err := telemetry.NewTracing(context.Background(), "svc", func(k string) string {
		return map[string]string{"OTEL_TRACES_EXPORTER": "console"}[k]
	})
	os.Stderr = stderr
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background()) //nolint:errcheck
	_, span := tr.Provider.Tracer("t").Start(context.Background(), "the-span")
	span.End()
	_ = r.SetReadDeadline(time.Now().Add(time.Second)) // well under the batcher's 5 s
	buf := make([]byte, 64<<10)
	n, err := r.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), `"Name":"the-span"`) {
		t.Fatalf("stderr within a second of End: %q, %v", buf[:n], err)
	}
}
