// Package orderapi assembles order-api from its parts — the PostgreSQL order
// store, the HTTP API, the outbox relay and the notifier that wakes it, with
// their metrics (served at /metrics) and tracing — and runs them until its
// context ends. It is the composition root: the adapters never import each other, and
// cmd/order-api and cmd/playground both start the service through Run.
//
// Shutdown is graceful: when the context ends the listener closes, in-flight
// requests finish (bounded by ShutdownTimeout), the relay returns after its
// current batch, and only then is the database pool closed.
package orderapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/internal/producer/httpapi"
	"github.com/ordersonkafka/orders/internal/producer/orderstore"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
	"github.com/ordersonkafka/orders/migrations"
)

// Service is a wired order-api, ready to Serve.
type Service struct {
	cfg     Config
	log     *slog.Logger
	pool    *pgxpool.Pool
	handler http.Handler
	store   *orderstore.Store
	relay   *outbox.Relay // nil when the relay is disabled
	notify  *outbox.Notifier
	tracing telemetry.Tracing
	reg     *prometheus.Registry
}

// New validates cfg, migrates the database if configured to, and wires the
// service with the telemetry tel describes. It connects to PostgreSQL only:
// Kafka and the Schema Registry are the relay's business, so the API starts
// and takes orders while they are down.
func New(ctx context.Context, cfg Config, log *slog.Logger, tel telemetry.Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tracing, reg, err := tel.Start(ctx, "order-api")
	if err != nil {
		return nil, err
	}
	pool, err := pgdb.OpenMigrated(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns, cfg.Migrate, migrations.Orders())
	if err != nil {
		_ = tracing.Shutdown(ctx)
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, pool: pool, tracing: tracing, reg: reg}
	if err := s.wire(); err != nil {
		pool.Close()
		_ = tracing.Shutdown(ctx)
		return nil, err
	}
	return s, nil
}

func (s *Service) wire() error {
	enc, err := eventcodec.NewEncoder()
	if err != nil {
		return err
	}
	s.reg.MustRegister(outbox.NewBacklogCollector(s.pool))
	var checks []web.Check
	if s.cfg.RelayEnabled {
		if err := s.wireRelay(); err != nil {
			return err
		}
		checks = append(checks, web.Check{Name: "outbox_relay", Optional: true,
			Func: func(context.Context) error { return s.relay.Health() }})
	}
	s.notify = outbox.NewNotifier(s.pool, s.relay, s.log)
	s.store = orderstore.New(s.pool, enc, s.cfg.Topic, s.notify.Poke, s.cfg.IdempotencyKeyTTL)
	checks = append([]web.Check{{Name: "database", Func: s.store.Ping}}, checks...)
	s.handler = httpapi.New(httpapi.Config{
		Logger:     s.log,
		Tracer:     s.tracing.Provider.Tracer("github.com/ordersonkafka/orders/internal/producer/httpapi"),
		Middleware: []func(http.Handler) http.Handler{telemetry.NewHTTPMetrics(s.reg).Middleware},
		Metrics:    telemetry.MetricsHandler(s.reg),
	}, s.store, checks...)
	return nil
}

func (s *Service) wireRelay() error {
	framer, err := eventcodec.NewFramer(eventcodec.FramerConfig{URL: s.cfg.SchemaRegistryURL})
	if err != nil {
		return err
	}
	s.relay, err = outbox.New(outbox.Config{
		DatabaseURL:       s.cfg.DatabaseURL,
		Pool:              s.pool,
		Brokers:           s.cfg.KafkaBrokers,
		Framer:            framer,
		BatchSize:         s.cfg.RelayBatchSize,
		PollInterval:      s.cfg.RelayPollInterval,
		LockRetryInterval: s.cfg.RelayLockRetryInterval,
		Retention:         s.cfg.RelayRetention,
		BackoffMin:        s.cfg.RelayBackoffMin,
		BackoffMax:        s.cfg.RelayBackoffMax,
		Logger:            s.log,
		Metrics:           outbox.NewMetrics(s.reg),
	})
	return err
}

// Relay returns the service's relay, or nil when RELAY_ENABLED is false.
func (s *Service) Relay() *outbox.Relay { return s.relay }

// Serve runs the HTTP API on ln and the relay until ctx ends or one of them
// fails, then shuts both down gracefully and closes the database pool. It
// returns nil after a shutdown caused by ctx.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	defer s.pool.Close()
	defer s.tracing.Flush(ctx, s.log)
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	g, gctx := errgroup.WithContext(ctx)
	s.log.Info("order-api listening", "addr", ln.Addr().String(), "relay", s.relay != nil, "traces", s.tracing.Exporter)
	g.Go(func() error { return web.Serve(gctx, srv, ln, s.cfg.ShutdownTimeout) })
	g.Go(func() error { return s.notify.Run(gctx) })
	g.Go(func() error {
		return pgdb.Purger{Name: "idempotency_keys", Interval: time.Minute, Batch: 1000, Logger: s.log,
			Step: s.store.PurgeIdempotencyKeys}.Run(gctx)
	})
	if s.relay != nil {
		g.Go(func() error {
			if err := s.relay.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("relay: %w", err)
			}
			return nil
		})
	}
	err := g.Wait()
	s.log.Info("order-api stopped", "error", err)
	return err
}

// Run listens on cfg.HTTPAddr and serves until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger, tel telemetry.Config) error {
	s, err := New(ctx, cfg, log, tel)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		s.pool.Close()
		_ = s.tracing.Shutdown(ctx)
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	return s.Serve(ctx, ln)
}
