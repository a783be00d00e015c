// Package orderconsumer assembles order-consumer — the projector (consumer
// group), the projection database, the dead-letter publisher and the read
// API, with their metrics (served at /metrics, consumer lag included) and
// tracing — and runs it until its context ends. cmd/order-consumer and
// cmd/playground start it through Run; the operator commands (dlq list,
// dlq replay, rebuild, parked list, events tail) are here too, so they use
// the same configuration.
package orderconsumer

import (
	"context"
	"errors"
	"github.com/segmentio/kafka-go"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/consumer/customertotals"
	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/orderview"
	"github.com/ordersonkafka/orders/internal/consumer/projectionapi"
	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/consumer/projector"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/health"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/platform/service"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/migrations"
)

// Classify is the one place failures are sorted: each adapter says what is
// permanent in its own terms (eventcodec.Class, *order.EventError,
// projectionstore.IsPermanent), and this combines them. permanent reports
// whether no retry can ever succeed (the message belongs in the DLQ), and
// class is the stable name written to the DLQ's kafka_dlt-exception-fqcn
// header. Everything not recognised here is transient.
func Classify(err error) (permanent bool, class string) {
	if class, ok := eventcodec.Class(err); ok {
		return true, class
	}
	var ee *order.EventError
	if errors.As(err, &ee) {
		return true, ee.Class()
	}
	if projectionstore.IsPermanent(err) {
		return true, "projection.RejectedByDatabase"
	}
	return false, "transient"
}

var _ projector.Classifier = Classify

// Classes lists every class Classify gives a permanent failure: the values
// of consumer_dlq_published_total's class label, exported at 0 from start-up
// so an alert on them sees a series before the first dead letter.
func Classes() []string {
	classes := eventcodec.Classes()
	for _, rule := range order.EventRules {
		classes = append(classes, (&order.EventError{Rule: rule}).Class())
	}
	return append(classes, "projection.RejectedByDatabase", ClassParkedTooLong)
}

// Service is a wired order-consumer, ready to Serve.
type Service struct {
	*service.Main
	cfg      Config
	consumer *projector.Consumer
	store    *projectionstore.Store
	handler  http.Handler
	versions *projectionapi.Versions
	parked   *parkedSweeper
	progress *projector.Progress
}

// readModels are the read models order-consumer keeps, each written in the
// same transaction as the ledger, served by the read API and rebuilt by
// `rebuild`: the order projection and the customers' totals. Adding one is
// a migration for its tables, a projectionstore.ReadModel (whose comment
// says what it must guarantee), and a field here returned by all.
type readModels struct {
	orders    *orderview.View
	customers *customertotals.Totals
}

func newReadModels(pool *pgxpool.Pool, timeout time.Duration) readModels {
	return readModels{orders: orderview.New(pool).WithTimeout(timeout), customers: customertotals.New(pool).WithTimeout(timeout)}
}

func (r readModels) all() []projectionstore.ReadModel {
	return []projectionstore.ReadModel{r.orders, r.customers}
}

// New validates cfg, migrates the projection database if configured to, and
// wires the service with the telemetry tel describes. Kafka and the registry
// are contacted only by Serve, so their absence shows as degraded in
// /readyz, not as a failure to start: the read API serves meanwhile.
func New(ctx context.Context, cfg Config, log *slog.Logger, tel telemetry.Config) (*Service, error) {
	s := &Service{cfg: cfg}
	if _, err := service.Start(ctx, cfg, migrations.Projection(), log, tel, s.wire); err != nil {
		return nil, err
	}
	return s, nil
}

// projectorConfig is the consumer loop's configuration, the live one's and
// the rebuild's alike.
func projectorConfig(cfg Config, log *slog.Logger) (projector.Config, error) {
	dec, err := newDecoder(cfg)
	if err != nil {
		return projector.Config{}, err
	}
	sec, err := cfg.Kafka.Security()
	if err != nil {
		return projector.Config{}, err
	}
	return projector.Config{
		Brokers: cfg.KafkaBrokers, Security: sec, Topic: cfg.Topic, GroupID: cfg.GroupID,
		BatchSize: cfg.BatchSize, BatchLinger: cfg.BatchLinger,
		BackoffMin: cfg.BackoffMin, BackoffMax: cfg.BackoffMax, ShutdownTimeout: cfg.ShutdownTimeout,
		OffsetReset: cfg.OffsetReset, TopicCheckInterval: cfg.TopicCheckInterval,
		Decoder: dec, Classify: Classify, Logger: log,
	}, nil
}

// newDecoder reads the topic's events with the registry and credentials of
// cfg (SCHEMA_REGISTRY_*): the consumer's, the rebuild's and events tail's.
func newDecoder(cfg Config) (*eventcodec.Decoder, error) {
	return eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: cfg.SchemaRegistryURL, Auth: eventcodec.RegistryAuth{
		BasicAuthUserInfo: cfg.SchemaRegistryUserInfo, BearerToken: cfg.SchemaRegistryBearerToken, TLSCAFile: cfg.SchemaRegistryCAFile}, Timeout: cfg.SchemaRegistryTimeout})
}

func (s *Service) wire(m *service.Main) error {
	s.Main = m
	models := newReadModels(s.Pool, s.cfg.DatabaseTimeout)
	s.store = projectionstore.New(s.Pool, order.Standard, projectionstore.NewMetrics(s.Registry, models.all()...), models.all()...).
		WithTimeout(s.cfg.DatabaseTimeout)
	pc, err := projectorConfig(s.cfg, s.Log)
	if err != nil {
		return err
	}
	dlq, err := deadletter.NewPublisher(deadletter.PublisherConfig{Brokers: s.cfg.KafkaBrokers, Security: pc.Security, Topic: s.cfg.DLQTopic, Group: s.cfg.GroupID, Logger: s.Log})
	if err != nil {
		return err
	}
	s.Defer(func(context.Context) { dlq.Close() })
	pc.Metrics = projector.NewMetrics(s.Registry, Classes()...)
	s.parked = newParkedSweeper(s.store, dlq, pc.Metrics, s.Log, s.cfg.ParkedMaxAge, s.cfg.DatabaseTimeout)
	s.parked.heart = s.Heartbeats.Heart("parked events")
	telemetry.Register(s.Registry, projectionstore.NewParkedCollector(s.Pool))
	s.versions = projectionapi.NewVersions()
	pc.Projector, pc.DeadLetters, pc.Committed = projection{s.store}, deadLetters{dlq}, s.versions.Applied
	pc.Tracer = s.Tracing.Provider.Tracer("github.com/ordersonkafka/orders/internal/consumer/projector")
	pc.Heart = s.Heartbeats.Heart("consumer")
	pc.Condition = health.NewCondition("consumer", s.Log)
	if s.consumer, err = projector.New(pc); err != nil {
		return err
	}
	telemetry.Register(s.Registry, projector.NewLagCollector(s.cfg.KafkaBrokers, pc.Security, s.cfg.Topic, s.cfg.GroupID, s.Log))
	if s.progress, err = projector.NewProgress(projector.ProgressConfig{Brokers: s.cfg.KafkaBrokers, Security: pc.Security,
		Topic: s.cfg.Topic, GroupID: s.cfg.GroupID, StallAfter: s.cfg.StallAfter, Logger: s.Log, Registerer: s.Registry}); err != nil {
		return err
	}
	// Only the database and the signing keys make the instance unready: the
	// read API serves what the projection holds while Kafka, the registry
	// or the consumer's progress fail, which the optional checks name.
	checks := []web.Check{
		{Name: "database", Func: s.store.Ping},
		{Name: "consumer", Func: pc.Condition.Check, Optional: true},
		{Name: "consumer_progress", Func: s.progress.Condition().Check, Optional: true},
		{Name: "parked_events", Func: s.parked.condition.Check, Optional: true},
	}
	if s.Auth != nil {
		checks = append(checks, s.Auth.Checks()...)
	}
	s.handler = projectionapi.New(projectionapi.Config{
		Logger:     s.Log,
		Middleware: []func(http.Handler) http.Handler{telemetry.NewHTTPMetrics(s.Registry).Middleware},
		Metrics:    telemetry.MetricsHandler(s.Registry),
		Versions:   s.versions,
		MaxWaiting: s.cfg.MaxWaitingReads,
		Auth:       s.Auth,
		Heartbeats: s.Heartbeats,
	}, projectionapi.Stores{Orders: models.orders, Customers: models.customers}, checks...)
	return nil
}

// projection applies the projector's batches to the consumer's database:
// the store's *Pending is the projector's Pending.
type projection struct{ *projectionstore.Store }

func (p projection) Apply(ctx context.Context, events []order.Event, msgs []kafka.Message) ([]order.Outcome, error) {
	return p.Store.ApplyFrom(ctx, events, origins(msgs))
}

func (p projection) Begin(ctx context.Context, events []order.Event, msgs []kafka.Message) (projector.Pending, error) {
	tx, err := p.Store.Begin(ctx, events, origins(msgs))
	if err != nil {
		return nil, err
	}
	return pending{tx}, nil
}

type pending struct{ *projectionstore.Pending }

func (p pending) CommitAndBegin(ctx context.Context, next []order.Event, nextMsgs []kafka.Message) ([]order.Outcome, projector.Pending, error) {
	outcomes, tx, err := p.Pending.CommitAndBegin(ctx, next, origins(nextMsgs))
	if tx == nil {
		return outcomes, nil, err
	}
	return outcomes, pending{tx}, err
}

// origins gives the store the messages events came in, which it asks for
// those it parks.
func origins(msgs []kafka.Message) projectionstore.Origins {
	if msgs == nil {
		return nil
	}
	return func(i int) projectionstore.Origin {
		m := msgs[i]
		o := projectionstore.Origin{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time}
		for _, h := range m.Headers {
			o.Headers = append(o.Headers, projectionstore.Header{Key: h.Key, Value: h.Value})
		}
		return o
	}
}

// deadLetters publishes the projector's dead letters with the deadletter
// package's publisher: the two adapters meet here, not in each other.
type deadLetters struct{ p *deadletter.Publisher }

func (d deadLetters) Publish(ctx context.Context, dls []projector.DeadLetter) error {
	out := make([]deadletter.DeadLetter, len(dls))
	for i, dl := range dls {
		out[i] = deadletter.DeadLetter(dl)
	}
	return d.p.Publish(ctx, out)
}

// Consumer exposes the projector, for readiness and counters in tests.
func (s *Service) Consumer() *projector.Consumer { return s.consumer }

// Serve runs the read API on ln, the consumer, its progress watch, the
// parked events' sweeper and the ledger purger until ctx ends or one fails;
// the consumer finishes and commits its batch, in-flight requests finish,
// then everything is released. It returns nil after a shutdown caused by
// ctx.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	// No WriteTimeout: a GET waiting for a version may wait projectionapi.MaxWait.
	srv := s.HTTPServer(s.handler, 0)
	// Requests waiting for a version answer with what they have at once,
	// rather than holding the shutdown up to their wait.
	srv.RegisterOnShutdown(s.versions.Close)
	return s.Main.Serve(ctx, ln, srv,
		service.Part{Name: "consumer", Run: s.consumer.Run},
		service.Part{Name: "consumer progress", Run: s.progress.Run},
		service.Part{Name: "parked events", Run: s.parked.Run},
		service.Part{Name: "ledger purger", Run: pgdb.Purger{Name: "processed_events", Interval: time.Minute, Batch: 1000,
			Timeout: s.cfg.DatabaseTimeout, Logger: s.Log, Heart: s.Heartbeats.Heart("ledger purger"),
			Step: func(ctx context.Context, limit int) (int64, error) {
				return s.store.PurgeLedger(ctx, s.cfg.LedgerRetention, limit)
			}}.Run})
}

// Run listens on cfg.HTTPAddr and serves until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger, tel telemetry.Config) error {
	s, err := New(ctx, cfg, log, tel)
	if err != nil {
		return err
	}
	return service.ListenAndServe(ctx, s)
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
	store := projectionstore.New(pool, order.Standard, nil, newReadModels(pool, cfg.DatabaseTimeout).all()...).WithTimeout(cfg.DatabaseTimeout)
	origin, err := store.Origin(ctx, cfg.Topic)
	if err != nil {
		return projector.RebuildResult{}, err
	}
	pc, err := projectorConfig(cfg, log)
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
		Config: pc, Origin: origin, AllowPartial: allowPartial,
		Begin: func(ctx context.Context) (projector.RebuildTarget, error) {
			rb, err = store.BeginRebuild(ctx, cfg.DatabaseURL, migrations.Projection())
			if err != nil {
				return nil, err
			}
			return rebuildTarget{rb}, nil
		},
	})
}

// rebuildTarget applies into a projectionstore.Rebuild's tables.
type rebuildTarget struct{ *projectionstore.Rebuild }

func (t rebuildTarget) Apply(ctx context.Context, events []order.Event, msgs []kafka.Message) ([]order.Outcome, error) {
	return projection{t.Store}.Apply(ctx, events, msgs)
}

func (t rebuildTarget) Begin(ctx context.Context, events []order.Event, msgs []kafka.Message) (projector.Pending, error) {
	return projection{t.Store}.Begin(ctx, events, msgs)
}

func (t rebuildTarget) Loss(ctx context.Context) (missing, behind int64, examples []string, err error) {
	l, err := t.Rebuild.Loss(ctx)
	for _, id := range l.Examples {
		examples = append(examples, id.String())
	}
	return l.Missing, l.Behind, examples, err
}
