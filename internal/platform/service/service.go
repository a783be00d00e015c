// Package service is the skeleton both services share, so that their
// binaries, the playground and the tests start a service one way: load the
// configuration from the environment and validate it, make the logger, start
// telemetry, open (and migrate) the database pool, listen, serve the HTTP API
// and run the service's long-running parts until the context ends, shut
// down gracefully, and release everything in the reverse order it was taken
// (benbjohnson/wtf's Main.Run / Main.Close).
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/health"
	"github.com/ordersonkafka/orders/internal/platform/logging"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/platform/web"
)

// Settings are the parts of a service's configuration the skeleton uses.
type Settings struct {
	Name             string // "order-api": the tracer's service name and the log lines'
	HTTPAddr         string
	DatabaseURL      string
	DatabaseMaxConns int32
	Migrate          bool
	ShutdownTimeout  time.Duration
	// LivenessTimeout is how long a loop may go without a heartbeat before
	// /livez fails (health.NewHeartbeats).
	LivenessTimeout time.Duration
	LogLevel        string
	LogFormat       string
	// AuthJWKSURL, AuthIssuer and AuthAudience turn on the APIs' bearer
	// token authentication (web.Auth); an empty JWKS URL leaves it off.
	AuthJWKSURL, AuthIssuer, AuthAudience string
	// AuthJWKSRefreshInterval is the least time between two fetches of the
	// JWKS (web.KeySetConfig.RefreshInterval).
	AuthJWKSRefreshInterval time.Duration
	// AdminAddr, when set, is where net/http/pprof is served.
	AdminAddr string
}

// Config is a service's configuration: read from the environment by its
// env tags (config.Load), checked by Validate, and giving the skeleton its
// Settings.
type Config interface {
	Validate() error
	Settings() Settings
}

// Load reads C from getenv, validates it (every unusable setting reported
// at once) and makes the logger its LOG_LEVEL and LOG_FORMAT ask for,
// writing to w, every line naming the service.
func Load[C Config](getenv func(string) string, w io.Writer) (C, *slog.Logger, error) {
	cfg, err := config.Load[C](getenv)
	if err != nil {
		return cfg, nil, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, err
	}
	s := cfg.Settings()
	log, err := logging.New(w, s.LogLevel, s.LogFormat)
	if err != nil {
		return cfg, nil, err
	}
	return cfg, log.With("service", s.Name), nil
}

// Main holds what every service opens. Open it, wire the service's parts
// on Pool, Registry and Tracing, and Serve; Close releases what was opened
// (Serve does when it returns).
type Main struct {
	Settings Settings
	Log      *slog.Logger
	Pool     *pgxpool.Pool
	Registry *prometheus.Registry
	Tracing  telemetry.Tracing
	// Auth guards the service's API; nil when authentication is off. Serve
	// runs its key refresh; add its Checks to the API's.
	Auth *web.Auth
	// Heartbeats are the service's long-running loops' (health.Heart): give
	// each loop its heart, and the API's router these, for /livez.
	Heartbeats *health.Heartbeats

	mu      sync.Mutex
	closers []func(context.Context)
}

// Open validates cfg, starts telemetry as tel describes, and opens the
// database pool, migrating it with migrations first if the settings say so.
// On failure it releases what it opened.
func Open(ctx context.Context, cfg Config, migrations fs.FS, log *slog.Logger, tel telemetry.Config) (*Main, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := cfg.Settings()
	m := &Main{Settings: s, Log: log, Heartbeats: health.NewHeartbeats(s.LivenessTimeout)}
	tracing, reg, err := tel.Start(ctx, s.Name)
	if err != nil {
		return nil, err
	}
	m.Tracing, m.Registry = tracing, reg
	m.Defer(func(ctx context.Context) { tracing.Flush(ctx, log) })
	pool, err := pgdb.OpenMigrated(ctx, s.DatabaseURL, s.DatabaseMaxConns, s.Migrate, migrations)
	if err != nil {
		m.Close(ctx)
		return nil, err
	}
	m.Pool = pool
	m.Defer(func(context.Context) { pool.Close() })
	if s.AuthJWKSURL == "" {
		log.Warn("API authentication is off: AUTH_JWKS_URL is empty, so any caller may use the API (set AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE to require bearer tokens)")
	} else {
		auth, err := web.NewAuth(web.AuthConfig{Issuer: s.AuthIssuer, Audience: s.AuthAudience,
			Keys: web.KeySetConfig{URL: s.AuthJWKSURL, RefreshInterval: s.AuthJWKSRefreshInterval, Logger: log}})
		if err != nil {
			m.Close(ctx)
			return nil, err
		}
		m.Auth = auth
		log.Info("API authentication is on", "issuer", s.AuthIssuer, "audience", s.AuthAudience, "jwks", s.AuthJWKSURL)
	}
	return m, nil
}

// Start opens the skeleton (Open) and wires the service's parts on it with
// wire; if wiring fails, it releases what was opened.
func Start(ctx context.Context, cfg Config, migrations fs.FS, log *slog.Logger, tel telemetry.Config, wire func(*Main) error) (*Main, error) {
	m, err := Open(ctx, cfg, migrations, log, tel)
	if err != nil {
		return nil, err
	}
	if err := wire(m); err != nil {
		m.Close(ctx)
		return nil, err
	}
	return m, nil
}

// Defer adds release to what Close does, before everything added earlier.
func (m *Main) Defer(release func(context.Context)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closers = append(m.closers, release)
}

// Close releases what was opened, in the reverse order; a second call does
// nothing.
func (m *Main) Close(ctx context.Context) {
	m.mu.Lock()
	closers := m.closers
	m.closers = nil
	m.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i](ctx)
	}
}

// Listen listens on the settings' HTTPAddr; on failure it closes m, so a
// service that cannot start leaves nothing open.
func (m *Main) Listen(ctx context.Context) (net.Listener, error) {
	ln, err := net.Listen("tcp", m.Settings.HTTPAddr)
	if err != nil {
		m.Close(ctx)
		return nil, fmt.Errorf("listen on %s: %w", m.Settings.HTTPAddr, err)
	}
	return ln, nil
}

// Server is a wired service: it embeds *Main (Listen) and serves its API
// and parts on a listener.
type Server interface {
	Listen(ctx context.Context) (net.Listener, error)
	Serve(ctx context.Context, ln net.Listener) error
}

// ListenAndServe listens on the service's address and serves until ctx ends.
func ListenAndServe(ctx context.Context, s Server) error {
	ln, err := s.Listen(ctx)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Part is a long-running part of a service (the relay, the consumer, a
// purger): Run returns when ctx ends, nil or context.Canceled then.
type Part struct {
	Name string
	Run  func(ctx context.Context) error
}

// HTTPServer is an http.Server for h with the timeouts both services use;
// writeTimeout 0 means none (a read that waits for a version).
func (m *Main) HTTPServer(h http.Handler, writeTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
	}
}

// Serve serves srv on ln and runs parts until ctx ends or one of them fails;
// then the listener closes, requests in flight and the parts finish (within
// ShutdownTimeout for requests), and m is closed. It returns nil after a
// shutdown caused by ctx, else the first failure.
func (m *Main) Serve(ctx context.Context, ln net.Listener, srv *http.Server, parts ...Part) error {
	defer m.Close(ctx)
	g, gctx := errgroup.WithContext(ctx)
	if m.Auth != nil {
		parts = append(parts, Part{Name: "auth keys", Run: m.Auth.Run})
	}
	names := make([]string, len(parts))
	for i, p := range parts {
		names[i] = p.Name
	}
	if addr := m.Settings.AdminAddr; addr != "" {
		aln, err := net.Listen("tcp", addr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen on ADMIN_ADDR %s: %w", addr, err)
		}
		m.Log.Info("admin listener: pprof at /debug/pprof/", "addr", aln.Addr().String())
		admin := m.HTTPServer(adminHandler(), 0) // a CPU profile takes its seconds
		g.Go(func() error {
			// Closed, not drained, at shutdown: a profile being taken must not
			// hold the service up, nor turn a clean stop into a failure.
			stop := context.AfterFunc(gctx, func() { _ = admin.Close() })
			defer stop()
			if err := admin.Serve(aln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin listener: %w", err)
			}
			return nil
		})
	}
	m.Log.Info(m.Settings.Name+" listening", "addr", ln.Addr().String(), "traces", m.Tracing.Exporter, "parts", names)
	g.Go(func() error { return web.Serve(gctx, srv, ln, m.Settings.ShutdownTimeout) })
	for _, p := range parts {
		g.Go(func() error {
			if err := p.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
			return nil
		})
	}
	err := g.Wait()
	m.Log.Info(m.Settings.Name+" stopped", "error", err)
	return err
}

// adminHandler serves net/http/pprof's profiles: ADMIN_ADDR's listener only.
func adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
