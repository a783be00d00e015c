package httpapi

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/logging"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/internal/text"
)

type metaKey struct{}

// correlationIDRE is what a client's X-Correlation-ID must be to be used:
// printable ASCII without spaces, so the value echoed, logged, stored in the
// outbox and sent as a Kafka header is the same bytes everywhere.
var correlationIDRE = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)

// requestMeta fixes the request's correlation ID (the client's
// X-Correlation-ID when usable, made up otherwise) and trace context: a
// server span, child of the client's traceparent when it sent a valid one.
// The event written by the request carries that span's traceparent, so the
// consumer's span continues the same trace. It echoes the correlation ID and
// logs one line per request. Spans and logs name the method as
// telemetry.Method does, so made-up methods are not new span names.
func (a *api) requestMeta(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		meta := order.Meta{CorrelationID: r.Header.Get("X-Correlation-ID")}
		if !correlationIDRE.MatchString(meta.CorrelationID) {
			meta.CorrelationID = uuid.NewString()
		}
		method := telemetry.Method(r.Method)
		spanMethod := method
		if method == telemetry.OtherMethod {
			spanMethod = "HTTP" // OpenTelemetry's span name for a method it does not know
		}
		ctx := telemetry.Extract(r.Context(), r.Header.Get("traceparent"), r.Header.Get("tracestate"))
		ctx, span := a.tracer.Start(ctx, spanMethod, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		if !trace.SpanContextFromContext(ctx).IsValid() {
			// No client context and tracing off: make one up, so the event
			// and the log lines still share a trace ID.
			ctx = trace.ContextWithSpanContext(ctx, newSpanContext())
		}
		meta.Traceparent = telemetry.Traceparent(ctx)
		ctx = logging.WithCorrelationID(ctx, meta.CorrelationID)
		w.Header().Set("X-Correlation-ID", meta.CorrelationID)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		ctx, subject := web.TrackSubject(ctx)
		next.ServeHTTP(sw, r.WithContext(context.WithValue(ctx, metaKey{}, meta)))
		route := chi.RouteContext(r.Context()).RoutePattern()
		span.SetAttributes(attribute.String("http.request.method", method), attribute.Int("http.response.status_code", sw.status))
		if route != "" { // unmatched requests keep the bare method as name, and no http.route
			span.SetName(spanMethod + " " + route)
			span.SetAttributes(attribute.String("http.route", route))
		} else {
			route = "unmatched" // as the metrics' route label says
		}
		attrs := []slog.Attr{slog.String("method", method), slog.String("route", route), slog.Int("status", sw.status),
			slog.Duration("duration", time.Since(start))}
		if method == telemetry.OtherMethod {
			// The method itself is a token (net/http refuses anything else),
			// kept on this request's span and log line only, and cut; the
			// log and the span escape it themselves.
			original := text.Cut(r.Method, 32)
			span.SetAttributes(attribute.String("http.request.method_original", original))
			attrs = append(attrs, slog.String("method_original", original))
		}
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
		if sub := subject(); sub != "" { // the token's subject, never the token
			if len(sub) > 128 || !text.Valid(sub) {
				sub = text.Quote(sub, 128)
			}
			attrs = append(attrs, slog.String("sub", sub))
		}
		a.log.LogAttrs(ctx, slog.LevelInfo, "http request", attrs...)
	})
}

func newSpanContext() trace.SpanContext {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID(b[:16]), SpanID: trace.SpanID(b[16:]), TraceFlags: trace.FlagsSampled,
	})
}

func metaFrom(ctx context.Context) order.Meta {
	m, _ := ctx.Value(metaKey{}).(order.Meta)
	return m
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
