// Package orderconsumer assembles order-consumer — the projector (consumer
// group), the projection database, the dead-letter publisher and the read
// API, with their metrics (served at /metrics, consumer lag included) and
// tracing — and runs it until its context ends. cmd/order-consumer and
// cmd/playground start it through Run; the operator commands (dlq list,
// dlq replay, rebuild) are here too, so they use the same configuration.
package orderconsumer

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

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/projectionapi"
	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/consumer/projector"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/migrations"
)

// Classify is the one place failures are sorted: permanent reports whether
// no retry can ever succeed (the message belongs in the DLQ), and class is
// the stable name written to the DLQ's kafka_dlt-exception-fqcn header.
// Everything not recognised here is transient.
func Classify(err error) (permanent bool, class string) {
	for _, c := range []struct {
		err   error
		class string
	}{
		{eventcodec.ErrNotFramed, "eventcodec.ErrNotFramed"},
		{eventcodec.ErrUnknownSchema, "eventcodec.ErrUnknownSchema"},
		{eventcodec.ErrIncompatibleSchema, "eventcodec.ErrIncompatibleSchema"},
		{eventcodec.ErrUndecodable, "eventcodec.ErrUndecodable"},
		{eventcodec.ErrInvalidEvent, "eventcodec.ErrInvalidEvent"},
	} {
		if errors.Is(err, c.err) {
			return true, c.class
		}
	}
	var ee *order.EventError
	if errors.As(err, &ee) {
		return true, ee.Class()
	}
	if projectionstore.IsPermanent(err) {
		return true, "projectionstore.RejectedByDatabase"
	}
	return false, "transient"
}

func permanent(err error) bool { p, _ := Classify(err); return p }

func class(err error) string { _, c := Classify(err); return c }

// Service is a wired order-consumer, ready to Serve.
type Service struct {
	cfg      Config
	log      *slog.Logger
	pool     *pgxpool.Pool
	dlq      *deadletter.Publisher
	consumer *projector.Consumer
	handler  http.Handler
	versions *projectionapi.Versions
	tracing  telemetry.Tracing
	reg      *prometheus.Registry
}

// New validates cfg, migrates the projection database if configured to, and
// wires the service with the telemetry tel describes. Kafka and the registry
// are contacted only by Serve, so their absence shows as not ready, not as a
// failure to start.
func New(ctx context.Context, cfg Config, log *slog.Logger, tel telemetry.Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tracing, reg, err := tel.Start(ctx, "order-consumer")
	if err != nil {
		return nil, err
	}
	pool, err := pgdb.OpenMigrated(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns, cfg.Migrate, migrations.Projection())
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
	store := projectionstore.New(s.pool)
	dec, err := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: s.cfg.SchemaRegistryURL})
	if err != nil {
		return err
	}
	s.dlq, err = deadletter.NewPublisher(deadletter.PublisherConfig{Brokers: s.cfg.KafkaBrokers, Topic: s.cfg.DLQTopic, Group: s.cfg.GroupID, Logger: s.log})
	if err != nil {
		return err
	}
	s.versions = projectionapi.NewVersions()
	s.consumer, err = projector.New(projector.Config{
		Brokers: s.cfg.KafkaBrokers, Topic: s.cfg.Topic, GroupID: s.cfg.GroupID,
		BatchSize: s.cfg.BatchSize, BatchLinger: s.cfg.BatchLinger,
		BackoffMin: s.cfg.BackoffMin, BackoffMax: s.cfg.BackoffMax, ShutdownTimeout: s.cfg.ShutdownTimeout,
		Decoder: dec, Projector: store, DeadLetters: s.dlq,
		DecodePermanent: permanent, ApplyPermanent: permanent, ErrorClass: class,
		Logger: s.log, Metrics: projector.NewMetrics(s.reg), Committed: s.versions.Applied,
		Tracer: s.tracing.Provider.Tracer("github.com/ordersonkafka/orders/internal/consumer/projector"),
	})
	if err != nil {
		return err
	}
	s.reg.MustRegister(projector.NewLagCollector(s.cfg.KafkaBrokers, s.cfg.Topic, s.cfg.GroupID, s.log))
	s.handler = projectionapi.New(projectionapi.Config{
		Logger:     s.log,
		Middleware: []func(http.Handler) http.Handler{telemetry.NewHTTPMetrics(s.reg).Middleware},
		Metrics:    telemetry.MetricsHandler(s.reg),
		Versions:   s.versions,
		MaxWaiting: s.cfg.MaxWaitingReads,
	}, store,
		web.Check{Name: "database", Func: store.Ping},
		web.Check{Name: "consumer", Func: func(context.Context) error { return s.consumer.Ready() }})
	return nil
}

// Consumer exposes the projector, for readiness and counters in tests.
func (s *Service) Consumer() *projector.Consumer { return s.consumer }

// Serve runs the read API on ln and the consumer until ctx ends or one
// fails; the consumer finishes and commits its batch, in-flight requests
// finish, then the pool closes. It returns nil after a shutdown caused by ctx.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	defer s.pool.Close()
	defer s.dlq.Close()
	defer s.tracing.Flush(ctx, s.log)
	// No WriteTimeout: a GET waiting for a version may wait projectionapi.MaxWait.
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	// Requests waiting for a version answer with what they have at once,
	// rather than holding the shutdown up to their wait.
	srv.RegisterOnShutdown(s.versions.Close)
	g, gctx := errgroup.WithContext(ctx)
	s.log.Info("order-consumer listening", "addr", ln.Addr().String(), "traces", s.tracing.Exporter)
	g.Go(func() error { return web.Serve(gctx, srv, ln, s.cfg.ShutdownTimeout) })
	g.Go(func() error { return s.consumer.Run(gctx) })
	g.Go(func() error {
		store := projectionstore.New(s.pool)
		return pgdb.Purger{Name: "processed_events", Interval: time.Minute, Batch: 1000, Logger: s.log,
			Step: func(ctx context.Context, limit int) (int64, error) {
				return store.PurgeLedger(ctx, s.cfg.LedgerRetention, limit)
			}}.Run(gctx)
	})
	err := g.Wait()
	s.log.Info("order-consumer stopped", "error", err)
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
		s.dlq.Close()
		_ = s.tracing.Shutdown(ctx)
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	return s.Serve(ctx, ln)
}

// Rebuild builds the projection again from the whole topic, beside the live
// one, and moves it in once complete; see projector.Rebuild. It refuses a
// topic that no longer holds every event the projection was built from
// unless allowPartial. Stop the consumers first.
func Rebuild(ctx context.Context, cfg Config, log *slog.Logger, allowPartial bool) (projector.RebuildResult, error) {
	if log == nil {
		log = slog.Default()
	}
	pool, err := pgdb.OpenMigrated(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns, cfg.Migrate, migrations.Projection())
	if err != nil {
		return projector.RebuildResult{}, err
	}
	defer pool.Close()
	origin, err := projectionstore.New(pool).Origin(ctx, cfg.Topic)
	if err != nil {
		return projector.RebuildResult{}, err
	}
	dec, err := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: cfg.SchemaRegistryURL})
	if err != nil {
		return projector.RebuildResult{}, err
	}
	var rb *projectionstore.Rebuild
	defer func() {
		if rb != nil {
			rb.Close(ctx)
		}
	}()
	return projector.Rebuild(ctx, projector.RebuildConfig{
		Brokers: cfg.KafkaBrokers, Topic: cfg.Topic, BatchSize: cfg.BatchSize, Decoder: dec,
		DecodePermanent: permanent, ApplyPermanent: permanent, Logger: log,
		Origin: origin, AllowPartial: allowPartial,
		Begin: func(ctx context.Context) (projector.RebuildTarget, error) {
			rb, err = projectionstore.BeginRebuild(ctx, pool, cfg.DatabaseURL, migrations.Projection())
			if err != nil {
				return nil, err
			}
			return rebuildTarget{rb}, nil
		},
	})
}

// rebuildTarget applies into a projectionstore.Rebuild's tables.
type rebuildTarget struct{ *projectionstore.Rebuild }

func (t rebuildTarget) Apply(ctx context.Context, events []order.Event) ([]order.Outcome, error) {
	return t.Store.Apply(ctx, events)
}

func (t rebuildTarget) Loss(ctx context.Context) (missing, behind int64, examples []string, err error) {
	l, err := t.Rebuild.Loss(ctx)
	for _, id := range l.Examples {
		examples = append(examples, id.String())
	}
	return l.Missing, l.Behind, examples, err
}
