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
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/platform/service"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/internal/producer/httpapi"
	"github.com/ordersonkafka/orders/internal/producer/orderstore"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
	"github.com/ordersonkafka/orders/migrations"
)

// Service is a wired order-api, ready to Serve.
type Service struct {
	*service.Main
	cfg     Config
	handler http.Handler
	store   *orderstore.Store
	relay   *outbox.Relay // nil when the relay is disabled
	watch   *outbox.Watch
	notify  *outbox.Notifier
}

// New validates cfg, migrates the database if configured to, and wires the
// service with the telemetry tel describes. It connects to PostgreSQL only:
// Kafka and the Schema Registry are the relay's business, so the API starts
// and takes orders while they are down.
func New(ctx context.Context, cfg Config, log *slog.Logger, tel telemetry.Config) (*Service, error) {
	s := &Service{cfg: cfg}
	if _, err := service.Start(ctx, cfg, migrations.Orders(), log, tel, s.wire); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) wire(m *service.Main) error {
	s.Main = m
	enc, err := eventcodec.NewEncoder()
	if err != nil {
		return err
	}
	s.Registry.MustRegister(outbox.NewBacklogCollector(s.Pool))
	if s.cfg.RelayEnabled {
		if err := s.wireRelay(); err != nil {
			return err
		}
	}
	// Every replica watches the outbox they share, relay or not.
	if s.watch, err = outbox.NewWatch(outbox.WatchConfig{Pool: s.Pool, Relay: s.relay, StallAfter: s.cfg.RelayStallAfter,
		Logger: s.Log, Registerer: s.Registry}); err != nil {
		return err
	}
	s.notify = outbox.NewNotifier(s.Pool, s.relay, s.Log, s.cfg.DatabaseTimeout)
	s.store = orderstore.New(s.Pool, enc, s.cfg.Topic, s.notify.Poke, s.cfg.IdempotencyKeyTTL).WithTimeout(s.cfg.DatabaseTimeout)
	checks := []web.Check{{Name: "database", Func: s.store.Ping},
		{Name: "outbox_relay", Optional: true, Func: s.watch.Relay().Check},
		{Name: "outbox_set_aside", Optional: true, Func: s.watch.SetAside().Check}}
	if s.Auth != nil {
		checks = append(checks, s.Auth.Checks()...)
	}
	s.handler = httpapi.New(httpapi.Config{
		Logger:     s.Log,
		Tracer:     s.Tracing.Provider.Tracer("github.com/ordersonkafka/orders/internal/producer/httpapi"),
		Middleware: []func(http.Handler) http.Handler{telemetry.NewHTTPMetrics(s.Registry).Middleware},
		Metrics:    telemetry.MetricsHandler(s.Registry),
		Auth:       s.Auth,
		Heartbeats: s.Heartbeats,
	}, s.store, checks...)
	return nil
}

func (s *Service) wireRelay() error {
	framer, err := eventcodec.NewFramer(eventcodec.FramerConfig{URL: s.cfg.SchemaRegistryURL, Auth: registryAuth(s.cfg),
		Timeout: s.cfg.SchemaRegistryTimeout, LookupOnly: !s.cfg.SchemaAutoRegister})
	if err != nil {
		return err
	}
	sec, err := s.cfg.Kafka.Security()
	if err != nil {
		return err
	}
	s.relay, err = outbox.New(outbox.Config{
		DatabaseURL:       s.cfg.DatabaseURL,
		Pool:              s.Pool,
		Brokers:           s.cfg.KafkaBrokers,
		Security:          sec,
		Topic:             s.cfg.Topic,
		Framer:            framer,
		BatchSize:         s.cfg.RelayBatchSize,
		PollInterval:      s.cfg.RelayPollInterval,
		LockRetryInterval: s.cfg.RelayLockRetryInterval,
		Retention:         s.cfg.RelayRetention,
		BackoffMin:        s.cfg.RelayBackoffMin,
		BackoffMax:        s.cfg.RelayBackoffMax,
		StatementTimeout:  s.cfg.DatabaseTimeout,
		WriteTimeout:      sec.Timeout(),
		Logger:            s.Log,
		Metrics:           outbox.NewMetrics(s.Registry),
		Heart:             s.Heartbeats.Heart("relay"),
	})
	return err
}

// Relay returns the service's relay, or nil when RELAY_ENABLED is false.
func (s *Service) Relay() *outbox.Relay { return s.relay }

// Serve runs the HTTP API on ln, the notifier, the outbox watch, the
// idempotency-key purger and the relay until ctx ends or one of them fails,
// then shuts them down gracefully and releases everything. It returns nil
// after a shutdown caused by ctx.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	parts := []service.Part{
		{Name: "notifier", Run: s.notify.Run},
		{Name: "outbox watch", Run: s.watch.Run},
		{Name: "idempotency key purger", Run: pgdb.Purger{Name: "idempotency_keys", Interval: time.Minute, Batch: 1000,
			Timeout: s.cfg.DatabaseTimeout, Logger: s.Log, Step: s.store.PurgeIdempotencyKeys, Heart: s.Heartbeats.Heart("idempotency key purger")}.Run},
	}
	if s.relay != nil {
		parts = append(parts, service.Part{Name: "relay", Run: s.relay.Run})
	}
	return s.Main.Serve(ctx, ln, s.HTTPServer(s.handler, 30*time.Second), parts...)
}

// Run listens on cfg.HTTPAddr and serves until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger, tel telemetry.Config) error {
	s, err := New(ctx, cfg, log, tel)
	if err != nil {
		return err
	}
	return service.ListenAndServe(ctx, s)
}
