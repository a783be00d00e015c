package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/ordersonkafka/orders/internal/platform/health"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// Check is one readiness check. /readyz lists every check's state and is
// 200 only when every check that is not Optional returns nil within
// CheckTimeout. An Optional check reports what is wrong while the service
// still serves its own API (order-api's relay: orders are taken while Kafka
// is down), so it never takes the instance out of a load balancer: it is
// listed as degraded.
type Check struct {
	Name     string
	Func     func(context.Context) error
	Optional bool
}

// CheckTimeout bounds each readiness check, so a hanging dependency makes
// the probe answer 503 rather than time out.
const CheckTimeout = 2 * time.Second

// Ready is the /readyz handler: it runs the checks concurrently, so one
// hanging dependency costs CheckTimeout rather than adding up, and names
// every one that failed under failed, and every Optional one that failed
// under degraded.
func Ready(checks ...Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var (
			mu       sync.Mutex
			wg       sync.WaitGroup
			failed   = map[string]string{}
			degraded = map[string]string{}
			states   = map[string]string{}
		)
		for _, c := range checks {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(r.Context(), CheckTimeout)
				defer cancel()
				err := c.Func(ctx)
				mu.Lock()
				defer mu.Unlock()
				states[c.Name] = "ok"
				if err != nil {
					states[c.Name] = err.Error()
					if c.Optional {
						degraded[c.Name] = err.Error()
					} else {
						failed[c.Name] = err.Error()
					}
				}
			})
		}
		wg.Wait()
		body := map[string]any{"status": "ready", "checks": states}
		if len(degraded) > 0 {
			body["degraded"] = degraded
		}
		if len(failed) > 0 {
			body["status"], body["failed"] = "not ready", failed
			JSON(w, http.StatusServiceUnavailable, body)
			return
		}
		JSON(w, http.StatusOK, body)
	}
}

// Live is the /livez handler: 200 while every loop of hb beat within its
// timeout, listing each loop's seconds since its last beat; 503 naming,
// under wedged, each that did not. A nil hb has no loops, and is live.
func Live(hb *health.Heartbeats) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		loops := map[string]float64{}
		wedged := map[string]string{}
		var timeout time.Duration
		if hb != nil {
			timeout = hb.Timeout()
		}
		for _, l := range hb.Loops(time.Now()) {
			loops[l.Name] = math.Round(l.Age.Seconds()*1000) / 1000
			if l.Wedged {
				wedged[l.Name] = fmt.Sprintf("no heartbeat for %s (LIVENESS_TIMEOUT=%s)", l.Age.Round(time.Millisecond), timeout)
			}
		}
		body := map[string]any{"status": "live", "timeout_seconds": timeout.Seconds(), "loops": loops}
		if len(wedged) > 0 {
			body["status"], body["wedged"] = "wedged", wedged
			JSON(w, http.StatusServiceUnavailable, body)
			return
		}
		JSON(w, http.StatusOK, body)
	}
}

// JSON writes v as an application/json response, ended by a newline.
func JSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	RawJSON(w, status, b)
}

// RawJSON writes b, already JSON, as an application/json response.
func RawJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte("\n"))
}

// Internal answers 500 with detail and nothing of err, which it logs: at
// warn when the request's context ended (the client went away, or the
// server is shutting down past its deadline: nothing is wrong here), at
// error otherwise.
func Internal(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error, detail string) {
	attrs := []any{"method", telemetry.Method(r.Method), "path", Instance(r), "error", err}
	if r.Context().Err() != nil {
		log.WarnContext(r.Context(), "request abandoned by the client", attrs...)
	} else {
		log.ErrorContext(r.Context(), "request failed", attrs...)
	}
	Problem(w, r, http.StatusInternalServerError, TypeInternal, "Internal Server Error", detail, nil)
}

// RouterConfig is what both services' APIs share.
type RouterConfig struct {
	// Middleware runs around every route, first (metrics, request metadata).
	Middleware []func(http.Handler) http.Handler
	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
	// Checks are /readyz's.
	Checks []Check
	// Heartbeats are /livez's: the service's long-running loops. Nil: no
	// loops, always live.
	Heartbeats *health.Heartbeats
	// OpenAPI, when set, is the API's OpenAPI document, served as it is at
	// GET /openapi.yaml.
	OpenAPI []byte
}

// NewRouter returns a router with what every API of ours answers the same
// way: a path or query that is not text is 400, an unknown route 404 and a
// known one with another method 405 with Allow (problem+json each), HEAD is
// GET without the body, GET /healthz, /livez, /readyz and, if set, /metrics
// and /openapi.yaml. Add the API's own routes through Guarded, and serve the
// router returned here.
func NewRouter(cfg RouterConfig) chi.Router {
	r := chi.NewRouter()
	r.Use(cfg.Middleware...)
	r.Use(ValidText)
	r.Use(middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		Problem(w, r, http.StatusNotFound, TypeNotFound, "Not Found", "no such resource", nil)
	})
	r.MethodNotAllowed(MethodNotAllowed)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/livez", Live(cfg.Heartbeats))
	r.Get("/readyz", Ready(cfg.Checks...))
	if cfg.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", cfg.Metrics)
	}
	if cfg.OpenAPI != nil {
		r.Get("/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/yaml") // RFC 9512
			_, _ = w.Write(cfg.OpenAPI)
		})
	}
	return r
}

// Guarded is r for adding routes that need auth's bearer token; with auth
// nil (authentication off), r itself. The platform's routes (/healthz,
// /livez, /readyz, /metrics, /openapi.yaml) are added by NewRouter and stay open.
func Guarded(r chi.Router, auth *Auth) chi.Router {
	if auth == nil {
		return r
	}
	return r.With(auth.Middleware)
}
