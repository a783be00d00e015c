package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/platform/health"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// Framer frames an Avro body in the Confluent wire format for topic's value
// subject. An error (registry unreachable) makes the relay retry later.
type Framer interface {
	Frame(ctx context.Context, topic string, schemaVersion int, payload []byte) ([]byte, error)
}

// DefaultLockKey is the advisory lock key of the relay; every replica of one
// database must use the same key.
const DefaultLockKey int64 = 0x6f7574626f78 // "outbox"

// Config configures a Relay. What an operator sets (RELAY_* in order-api's
// configuration, where their defaults live) is required here; the rest
// takes the default named when zero.
type Config struct {
	// DatabaseURL opens the relay's dedicated connection, which holds the
	// advisory lock, LISTENs for new rows and reads, marks (moves) and
	// purges the outbox (with synchronous_commit off: see lead). Required.
	DatabaseURL string
	// Pool writes the last marks when leading ends (the dedicated
	// connection, which runs the batch queries, may be gone). Required.
	Pool *pgxpool.Pool
	// Brokers is the Kafka bootstrap list. Required.
	Brokers []string
	// Security is how to connect to them (TLS, SASL); nil: plain text.
	Security *kafkaconn.Security
	// Topic is the topic order-api writes its outbox rows for. Its
	// max.message.bytes, read at start and every LimitInterval, sizes the
	// relay's writes. Required.
	Topic string
	// LimitInterval is how often the relay reads Topic's max.message.bytes
	// again. Default 1m.
	LimitInterval time.Duration
	// Framer frames payloads with their registry schema ID. Required.
	Framer Framer
	// BatchSize is the most rows per Kafka write. Required.
	BatchSize int
	// MaxBatchBytes caps the keys, values and headers of one write; the
	// topic's max.message.bytes caps it lower when it is lower, so each
	// partition's share fits in one record batch. Default 900 KiB; a single
	// larger row still goes alone.
	MaxBatchBytes int
	// PollInterval is how long the relay waits for a notification before
	// looking anyway. Required.
	PollInterval time.Duration
	// LockKey is the advisory lock key. Default DefaultLockKey.
	LockKey int64
	// LockRetryInterval is how often a standby tries to take the lock.
	// Required.
	LockRetryInterval time.Duration
	// Retention is how long published rows are kept in outbox_published,
	// where the batch read moves them. 0 deletes each row once Kafka
	// acknowledged it, in place of moving it: no trail of what was
	// published, and a backlog drained about 1.5 times as fast
	// (docs/performance.md).
	Retention time.Duration
	// PurgeInterval is how often the leader deletes rows past Retention.
	// Default 1m.
	PurgeInterval time.Duration
	// BackoffMin and BackoffMax bound the delay between attempts of a failed
	// step: it doubles from min to max, with jitter. Required.
	BackoffMin, BackoffMax time.Duration
	// WriteTimeout bounds one Kafka write, and each admin request (the
	// topic's limit). Default Security's Timeout (KAFKA_TIMEOUT).
	WriteTimeout time.Duration
	// StatementTimeout bounds each statement of the lock connection, and
	// connecting it: the server cancels a statement that runs longer
	// (statement_timeout: the connection, and leadership, are kept), and
	// the relay drops a connection that has not answered serverGrace after
	// that, as a server that does not answer at all is down. Default
	// pgdb.CallTimeout (order-api's DATABASE_TIMEOUT).
	StatementTimeout time.Duration
	// Logger receives leadership changes, failures and purges. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the relay's measurements. Default: metrics kept on a
	// registry of their own, which nobody scrapes.
	Metrics *Metrics
	// Heart, if set, beats while the relay's loop is alive: at each step,
	// and while it waits for rows, the lock or a retry. A call that hangs
	// (a lock on the outbox never granted, a connection that never
	// answers) stops it.
	Heart *health.Heart
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 900 << 10
	}
	if c.LockKey == 0 {
		c.LockKey = DefaultLockKey
	}
	def(&c.PurgeInterval, time.Minute)
	def(&c.LimitInterval, time.Minute)
	def(&c.WriteTimeout, c.Security.Timeout())
	def(&c.StatementTimeout, pgdb.CallTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(prometheus.NewRegistry())
	}
}

// Validate reports what is missing or inconsistent, after defaults.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("outbox: DatabaseURL is required"))
	}
	if c.Pool == nil {
		errs = append(errs, errors.New("outbox: Pool is required"))
	}
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("outbox: Brokers is required"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("outbox: Topic is required"))
	}
	if c.Framer == nil {
		errs = append(errs, errors.New("outbox: Framer is required"))
	}
	if c.BatchSize < 1 || c.MaxBatchBytes < 1 {
		errs = append(errs, errors.New("outbox: BatchSize and MaxBatchBytes must be positive"))
	}
	if c.PollInterval <= 0 || c.LockRetryInterval <= 0 {
		errs = append(errs, errors.New("outbox: PollInterval and LockRetryInterval must be positive"))
	}
	if c.StatementTimeout < 0 {
		errs = append(errs, errors.New("outbox: StatementTimeout must not be negative"))
	}
	if c.Retention < 0 || c.LimitInterval < 0 {
		errs = append(errs, errors.New("outbox: Retention and LimitInterval must not be negative"))
	}
	if c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("outbox: backoff %s..%s: want 0 < min <= max", c.BackoffMin, c.BackoffMax))
	}
	return errors.Join(errs...)
}

// Relay publishes the outbox. Create it with New and call Run once.
type Relay struct {
	cfg     Config
	db      *pgx.ConnConfig // the lock connection's, bounded (connect)
	calls   pgdb.Calls      // a statement's bound on the lock connection, and the server for errors
	log     *slog.Logger
	metrics *Metrics
	writer  *kafka.Writer
	admin   *kafka.Client // reads the topic's max.message.bytes
	leader  atomic.Bool
	failing atomic.Pointer[error] // the step failing now, nil when none
	wake    chan struct{}         // in-process wake-ups, see Wake
	// progress is when, leading, the relay last moved the outbox on (rows
	// acknowledged or set aside, the outbox found empty, or leading began),
	// in unix nanoseconds.
	progress atomic.Int64

	// limit is Topic's max.message.bytes as last read, 0 while unknown;
	// limitRead is when it was last asked for. Only the leading goroutine
	// uses them.
	limit     int
	limitRead time.Time
}

// Wake tells the relay that rows were committed, as a NOTIFY does, without
// a round trip to PostgreSQL; it never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Health returns nil while the relay is publishing or standing by, or the
// step it is retrying now ("write to Kafka: …", "frame: …" for the registry).
func (r *Relay) Health() error {
	if p := r.failing.Load(); p != nil {
		return *p
	}
	return nil
}

// LeaderState is what a relay that leads knows of its progress.
type LeaderState struct {
	Leading bool
	// Progress is when it last moved the outbox on: rows acknowledged by
	// Kafka or set aside, the outbox found empty, or leading began.
	Progress time.Time
	// Failing is the step it is retrying now (Health), nil when none.
	Failing error
}

// State returns whether the relay leads and, if it does, its progress.
func (r *Relay) State() LeaderState {
	if !r.leader.Load() {
		return LeaderState{}
	}
	return LeaderState{Leading: true, Progress: time.Unix(0, r.progress.Load()), Failing: r.Health()}
}

// progressed notes that the outbox moved on.
func (r *Relay) progressed() { r.progress.Store(time.Now().UnixNano()) }

// New validates cfg and returns a Relay; it connects to nothing until Run.
func New(cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	db, err := lockConnConfig(cfg.DatabaseURL, cfg.StatementTimeout)
	if err != nil {
		return nil, err
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Transport:    cfg.Security.Transport(),
		RequiredAcks: kafka.RequireAll,
		Balancer:     &kafka.Murmur2Balancer{Consistent: true},
		// Each WriteMessages call fills its partitions' batches under the
		// partition's lock, so the timer cannot split a call: a tiny
		// timeout only stops the writer from waiting for more messages
		// that will not come (the relay writes synchronously, alone).
		BatchTimeout:           time.Microsecond,
		BatchSize:              cfg.BatchSize, // BatchSize and BatchBytes are set for each write by write
		MaxAttempts:            1,             // the relay retries whole batches itself
		WriteTimeout:           cfg.WriteTimeout,
		AllowAutoTopicCreation: false,
	}
	return &Relay{cfg: cfg, db: db, calls: pgdb.Calls{Timeout: cfg.StatementTimeout + serverGrace, Server: pgdb.Server(&db.Config)},
		log: cfg.Logger.With("component", "outbox-relay"), metrics: cfg.Metrics, writer: w,
		admin: cfg.Security.Client(cfg.Brokers, cfg.WriteTimeout), wake: make(chan struct{}, 1)}, nil
}

// serverGrace is how long the relay waits, past StatementTimeout, for the
// server's own cancellation of a statement (statement_timeout) to come back
// over the network before it gives up on the lock connection, and with it
// leadership: a server that is slow answers within it, one that does not
// answer at all is down.
const serverGrace = time.Second

// lockConnConfig is the lock connection's configuration: dsn's, bounded
// (pgdb.ParseConfig), with statement_timeout at statementTimeout and TCP
// keepalives by which the server notices within a minute a relay that
// vanished (a network partition) and frees its lock for another, rather
// than after the hours of the system's defaults.
func lockConnConfig(dsn string, statementTimeout time.Duration) (*pgx.ConnConfig, error) {
	cfg, err := pgdb.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("outbox: parse DatabaseURL: %w", err)
	}
	for k, v := range map[string]string{
		"statement_timeout":       strconv.FormatInt(statementTimeout.Milliseconds(), 10),
		"tcp_keepalives_idle":     "20", // seconds of silence before the first probe
		"tcp_keepalives_interval": "10", // seconds between probes
		"tcp_keepalives_count":    "3",  // probes unanswered before the session ends
	} {
		if _, set := cfg.RuntimeParams[k]; !set {
			cfg.RuntimeParams[k] = v
		}
	}
	return cfg, nil
}

// IsLeader reports whether this relay holds the lock and publishes.
func (r *Relay) IsLeader() bool { return r.leader.Load() }
