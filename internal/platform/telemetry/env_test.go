package telemetry_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// Tracing is configured by the getenv a service is given, never by the
// process environment behind it: here the process says one thing (a dead
// endpoint, another service name, sample nothing) and getenv another; the
// span reaches getenv's collector, with getenv's headers and name.
func TestTracingReadsOnlyTheGivenEnvironment(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies [][]byte
		auth   []string
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies, auth = append(bodies, b), append(auth, r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_SERVICE_NAME", "leaked-from-the-process")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=leaked")
	env := map[string]string{
		"OTEL_TRACES_EXPORTER":        "otlp",
		"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL,
		"OTEL_EXPORTER_OTLP_HEADERS":  "Authorization=Bearer%20given",
		"OTEL_SERVICE_NAME":           "given-name",
	}
	tr, err := telemetry.NewTracing(context.Background(), "order-api", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider.Tracer("test").Start(context.Background(), "work")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatalf("flush to the given collector: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || auth[0] != "/v1/traces Bearer given" {
		t.Fatalf("collector got %d exports %q, want 1 at /v1/traces with the given header", len(bodies), auth)
	}
	if !bytes.Contains(bodies[0], []byte("given-name")) || bytes.Contains(bodies[0], []byte("leaked")) {
		t.Errorf("the exported resource does not carry OTEL_SERVICE_NAME from getenv alone: %q", bodies[0])
	}
}

func TestUnusableTracingVariablesAreRefusedByName(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"OTEL_TRACES_SAMPLER", "sometimes"},
		{"OTEL_TRACES_SAMPLER_ARG", "1.5"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20secret,no-equals-sign"},
		{"OTEL_EXPORTER_OTLP_TIMEOUT", "soon"},
		{"OTEL_RESOURCE_ATTRIBUTES", "=x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "traceidratio", tc.name: tc.value}
			_, err := telemetry.NewTracing(context.Background(), "order-api", func(k string) string { return env[k] })
			if err == nil || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("%s=%q: %v", tc.name, tc.value, err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("the refusal shows a header value: %v", err)
			}
		})
	}
}
