package telemetry

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry holding the Go runtime and process
// collectors (process_resident_memory_bytes and friends). Each service has
// its own, so two services in one process (the playground, the tests) keep
// their metrics apart.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves reg in the Prometheus exposition format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError})
}

// LatencyBuckets are the histogram buckets of http_request_duration_seconds,
// in seconds: fine below 100 ms, where the services' targets are, up to 10 s.
// The relay's and the consumer's latencies (outbox_*, consumer_*) reach
// further and keep buckets of their own, up to 60 s.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .02, .03, .05, .075, .1, .25, .5, 1, 2.5, 5, 10}

// HTTPMetrics counts and times the requests of a chi router.
type HTTPMetrics struct {
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// NewHTTPMetrics registers http_request_duration_seconds{method,route,status}
// (its _count is the request count) and http_requests_in_flight on reg.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method, route pattern and status code.",
			Buckets: LatencyBuckets,
		}, []string{"method", "route", "status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight",
			Help: "HTTP requests being answered now.",
		}),
	}
	m.duration, m.inFlight = Register(reg, m.duration), Register(reg, m.inFlight)
	return m
}

// OtherMethod stands for every method Method does not know, as
// OpenTelemetry's semantic conventions name it.
const OtherMethod = "_OTHER"

// Method returns m if it is one of the methods of RFC 9110 or PATCH, and
// OtherMethod otherwise. A client may send any token as a method; as a
// label, span name or log field each one would be a new series or value, so
// metrics, traces and logs use Method(r.Method), never r.Method.
func Method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return OtherMethod
}

// Middleware instruments a chi router (install it with Use, first): the
// route label is the matched pattern (/orders/{id}/pay), never the raw path,
// so order IDs do not become label values; requests that match no route
// are "unmatched"; the method label is Method(r.Method), so made-up methods
// are all "_OTHER".
func (m *HTTPMetrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		sw := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := ""
		if rctx := chi.RouteContext(r.Context()); rctx != nil {
			route = rctx.RoutePattern()
		}
		if route == "" {
			route = "unmatched"
		}
		m.duration.WithLabelValues(Method(r.Method), route, strconv.Itoa(sw.status)).Observe(time.Since(start).Seconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusRecorder) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Register registers c on reg and returns it; if a collector with the same
// descriptors is registered already (a second projection, relay or API of
// the same kind in one process), it returns that one instead of panicking,
// and the two components count into the same series.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
