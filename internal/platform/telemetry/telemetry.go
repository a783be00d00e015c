// Package telemetry gives the services their OpenTelemetry tracer and their
// Prometheus registry, and carries W3C trace context in and out of the
// places that are neither HTTP nor Kafka client calls: the outbox row and a
// consumed message's headers.
//
// Tracing is off by default and chosen by the standard variables: with
// OTEL_TRACES_EXPORTER unset or "none" the tracer is a no-op, but trace
// context still flows (the request's traceparent reaches the Kafka headers
// and the consumer's log lines), so logs can be joined by trace_id without
// any collector. "otlp" exports over OTLP/HTTP (OTEL_EXPORTER_OTLP_*),
// "console" writes spans to stderr. Sampling follows OTEL_TRACES_SAMPLER,
// the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
package telemetry

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing is a service's tracer provider and how to flush it.
type Tracing struct {
	Provider trace.TracerProvider
	// Exporter is the exporter in use: "none", "otlp" or "console".
	Exporter string
	shutdown func(context.Context) error
}

// Shutdown flushes spans not yet exported; call it once, at exit.
func (t Tracing) Shutdown(ctx context.Context) error {
	if t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// Flush exports the spans not yet exported, within 5 seconds, at a
// service's exit; a failure is logged, as nothing else can be done then.
func (t Tracing) Flush(ctx context.Context, log *slog.Logger) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(fctx); err != nil {
		log.Warn("flush spans", "error", err)
	}
}

// NewTracing builds the tracer provider of service from the OTEL_* variables
// read through getenv (see the package doc). An unknown exporter or protocol
// is an error naming the variable.
func NewTracing(ctx context.Context, service string, getenv func(string) string) (Tracing, error) {
	off := Tracing{Provider: noop.NewTracerProvider(), Exporter: "none"}
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return off, nil
	}
	var exp sdktrace.SpanExporter
	name := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	switch name {
	case "", "none":
		return off, nil
	case "otlp":
		protoVar := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
		proto := getenv(protoVar)
		if proto == "" {
			protoVar = "OTEL_EXPORTER_OTLP_PROTOCOL"
			proto = getenv(protoVar)
		}
		if proto != "" && proto != "http/protobuf" {
			return Tracing{}, fmt.Errorf("%s=%q: only http/protobuf is built in (an OpenTelemetry Collector accepts it on :4318)", protoVar, proto)
		}
		opts, err := otlpOptions(getenv)
		if err != nil {
			return Tracing{}, err
		}
		if exp, err = otlptracehttp.New(ctx, opts...); err != nil {
			return Tracing{}, fmt.Errorf("OTLP trace exporter: %w", err)
		}
	case "console":
		var err error
		if exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stderr)); err != nil {
			return Tracing{}, err
		}
	default:
		return Tracing{}, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want none, otlp or console", name)
	}
	// The service name is the default; OTEL_RESOURCE_ATTRIBUTES and then
	// OTEL_SERVICE_NAME override it (later attributes win).
	attrs, err := resourceAttributes(getenv)
	if err != nil {
		return Tracing{}, err
	}
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(service)), resource.WithAttributes(attrs...), resource.WithTelemetrySDK())
	if err != nil {
		return Tracing{}, fmt.Errorf("trace resource: %w", err)
	}
	sampler, err := samplerFrom(getenv)
	if err != nil {
		return Tracing{}, err
	}
	// The documented variables (Vars) are given explicitly, so the SDK's own
	// reading of the process environment never overrides what getenv said.
	// The console is for a person watching: each span is printed as it ends,
	// not up to 5 s later with its batch.
	processor := sdktrace.WithBatcher(exp)
	if name == "console" {
		processor = sdktrace.WithSyncer(exp)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSampler(sampler), processor)
	return Tracing{Provider: tp, Exporter: name, shutdown: tp.Shutdown}, nil
}

var w3c = propagation.TraceContext{}

// Extract returns ctx carrying the remote span context of a W3C traceparent
// (and tracestate); an invalid or empty traceparent leaves ctx as it is.
func Extract(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return w3c.Extract(ctx, &traceCarrier{traceparent: traceparent, tracestate: tracestate})
}

// traceCarrier carries the two W3C headers to the propagator without the
// map a propagation.MapCarrier is: the consumer extracts one per message,
// order-api one per request.
type traceCarrier struct{ traceparent, tracestate string }

func (c *traceCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.traceparent
	case "tracestate":
		return c.tracestate
	}
	return ""
}

func (c *traceCarrier) Set(string, string) {}

func (c *traceCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// Traceparent formats the span context in ctx as a W3C traceparent, or
// returns "" when ctx has no valid one.
func Traceparent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	w3c.Inject(ctx, c)
	return c["traceparent"]
}

// Config is what a service is given for its telemetry. The zero value means
// tracing off and a fresh registry.
type Config struct {
	// Getenv reads the OTEL_* variables (see the package doc); nil: tracing off.
	Getenv func(string) string
	// TracerProvider, when set, is used instead of one built from Getenv,
	// and the caller shuts it down (tests use an in-memory exporter).
	TracerProvider trace.TracerProvider
	// Registry receives the service's metrics; nil: NewRegistry().
	Registry *prometheus.Registry
}

// Start returns the service's tracing and metrics registry as c describes.
func (c Config) Start(ctx context.Context, service string) (Tracing, *prometheus.Registry, error) {
	reg := c.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	switch {
	case c.TracerProvider != nil:
		return Tracing{Provider: c.TracerProvider, Exporter: "caller's"}, reg, nil
	case c.Getenv == nil:
		return Tracing{Provider: noop.NewTracerProvider(), Exporter: "none"}, reg, nil
	}
	t, err := NewTracing(ctx, service, c.Getenv)
	return t, reg, err
}
