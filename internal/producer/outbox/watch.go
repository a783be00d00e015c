package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersonkafka/orders/internal/platform/health"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// WatchConfig configures a Watch.
type WatchConfig struct {
	// Pool reads the outbox's state. Required.
	Pool *pgxpool.Pool
	// Relay is this process's relay; nil when it runs none (an API-only
	// replica), which then reports from the shared outbox alone.
	Relay *Relay
	// StallAfter is how long rows may wait with nothing published before
	// the relay is stalled (RELAY_STALL_AFTER). Required.
	StallAfter time.Duration
	// LockKey is the relays' advisory lock key, to tell whether any relay
	// leads. Default DefaultLockKey.
	LockKey int64
	// Logger receives one line when each condition starts and one when it
	// ends. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives outbox_relay_stalled. Default: a registry of its
	// own, which nobody scrapes.
	Registerer prometheus.Registerer
}

// Watch finds what is wrong with publishing the outbox while order-api
// still takes orders, for /readyz to list as degraded: a relay stalled (the
// outbox holds rows and nothing was published for longer than StallAfter),
// and rows set aside. The outbox is shared by every replica, so every
// replica reports it: the leader from what its relay knows (the failing
// step, Kafka's error), the others from the outbox in the database (how long
// its oldest row has waited, when a row was last published, whether any
// relay holds the lock). It looks every StallAfter/4, at most every 10 s.
type Watch struct {
	cfg      WatchConfig
	interval time.Duration
	stalled  prometheus.Gauge
	relay    *health.Condition
	setAside *health.Condition
}

// NewWatch validates cfg and returns a Watch; call Run once.
func NewWatch(cfg WatchConfig) (*Watch, error) {
	if cfg.Pool == nil || cfg.StallAfter <= 0 {
		return nil, errors.New("outbox: a watch needs a Pool and a positive StallAfter")
	}
	if cfg.LockKey == 0 {
		cfg.LockKey = DefaultLockKey
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	log := cfg.Logger.With("component", "outbox-watch")
	return &Watch{cfg: cfg, interval: max(min(10*time.Second, cfg.StallAfter/4), 10*time.Millisecond),
		stalled: telemetry.Register(cfg.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_stalled",
			Help: "1 while the outbox holds rows and nothing was published for longer than RELAY_STALL_AFTER, as this replica sees it."})),
		relay: health.NewCondition("outbox_relay", log), setAside: health.NewCondition("outbox_set_aside", log)}, nil
}

// Relay is the condition of /readyz's outbox_relay check: degraded while
// the relay is stalled, naming why.
func (w *Watch) Relay() *health.Condition { return w.relay }

// SetAside is the condition of /readyz's outbox_set_aside check: degraded
// while rows are set aside, naming the first and why Kafka refused it.
func (w *Watch) SetAside() *health.Condition { return w.setAside }

// Run looks at the outbox every interval until ctx ends, then returns nil.
// A look that fails (the database down, which /readyz's database check
// reports) leaves the conditions as they were.
func (w *Watch) Run(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		if err := w.look(ctx); err != nil && ctx.Err() == nil {
			w.cfg.Logger.Debug("the outbox's state is not available", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// watchSQL reads, in one statement: the unpublished rows and the age of the
// oldest; how long ago a row was last published (NULL when none is kept:
// RELAY_RETENTION=0, or none ever); the rows set aside, since when, and the
// first one's order and reason; and whether a relay holds the lock ($1, $2:
// its high and low halves, as pg_locks shows a bigint key).
const watchSQL = `
SELECT o.n, COALESCE(EXTRACT(EPOCH FROM now() - o.oldest), 0)::float8,
       (SELECT EXTRACT(EPOCH FROM now() - max(published_at)) FROM outbox_published)::float8,
       s.n, s.oldest, f.message_key, f.reason,
       EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND classid = $1::bigint::oid AND objid = $2::bigint::oid)
FROM (SELECT count(*) AS n, min(created_at) AS oldest FROM outbox) o,
     (SELECT count(*) AS n, min(set_aside_at) AS oldest FROM outbox_set_aside) s
     LEFT JOIN LATERAL (SELECT message_key, reason FROM outbox_set_aside ORDER BY id LIMIT 1) f ON true`

// outboxState is what a look finds.
type outboxState struct {
	backlog       int64
	oldest        time.Duration  // how long the oldest unpublished row has waited
	lastPublished *time.Duration // since a row was last published; nil when not known
	setAside      int64
	setAsideSince *time.Time
	firstOrder    []byte
	firstReason   *string
	locked        bool // a relay holds the lock
}

func (w *Watch) look(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var (
		st            outboxState
		oldest        float64
		lastPublished *float64
		hi, lo        = w.cfg.LockKey >> 32 & 0xffffffff, w.cfg.LockKey & 0xffffffff
	)
	if err := w.cfg.Pool.QueryRow(qctx, watchSQL, hi, lo).Scan(&st.backlog, &oldest, &lastPublished,
		&st.setAside, &st.setAsideSince, &st.firstOrder, &st.firstReason, &st.locked); err != nil {
		// The outbox cannot be read: nothing is published meanwhile
		// either. Say why, in the relay's words if it has them (they name
		// the server).
		cause := fmt.Errorf("the outbox cannot be read: %w", err)
		if w.cfg.Relay != nil {
			if f := w.cfg.Relay.State().Failing; f != nil {
				cause = f
			}
		}
		w.relay.Set(cause)
		return err
	}
	st.oldest = seconds(oldest)
	if lastPublished != nil {
		d := seconds(*lastPublished)
		st.lastPublished = &d
	}
	var leader LeaderState
	if w.cfg.Relay != nil {
		leader = w.cfg.Relay.State()
	}
	stall := w.stall(st, leader, time.Now())
	w.relay.Set(stall)
	if stall != nil {
		w.stalled.Set(1)
	} else {
		w.stalled.Set(0)
	}
	w.setAside.Set(setAsideReason(st))
	return nil
}

func seconds(s float64) time.Duration {
	return max(time.Duration(s*float64(time.Second)), 0).Round(time.Millisecond)
}

// stall returns why the relay is stalled as of now, nil if it is not. A
// leading relay is stalled when rows wait and it moved nothing on for
// StallAfter, and names the step failing (Kafka's or the registry's error);
// otherwise the oldest row must have waited StallAfter, and no row have been
// published within it when that is known.
func (w *Watch) stall(st outboxState, leader LeaderState, now time.Time) error {
	limit := w.cfg.StallAfter
	rows := func(n int64) string {
		if n == 1 {
			return "1 row waits"
		}
		return fmt.Sprintf("%d rows wait", n)
	}
	switch {
	case st.backlog == 0:
		return nil
	case leader.Leading:
		idle := now.Sub(leader.Progress).Round(time.Millisecond)
		if idle <= limit {
			return nil
		}
		cause := "no step failing"
		if leader.Failing != nil {
			cause = leader.Failing.Error()
		}
		return fmt.Errorf("%s; this replica's relay leads and published nothing for %s while %s, the oldest for %s (RELAY_STALL_AFTER=%s)",
			cause, idle, rows(st.backlog), st.oldest, limit)
	case st.oldest <= limit, st.lastPublished != nil && *st.lastPublished <= limit:
		return nil
	}
	who := "the leading replica's outbox_relay check names why"
	if !st.locked {
		who = "no relay holds the outbox's lock: is RELAY_ENABLED=false on every replica, or can none reach the database?"
	}
	published := ""
	if st.lastPublished != nil {
		published = fmt.Sprintf(", and the last row was published %s ago", *st.lastPublished)
	}
	return fmt.Errorf("relay stalled: %s, the oldest for %s%s (RELAY_STALL_AFTER=%s); %s",
		rows(st.backlog), st.oldest, published, limit, who)
}

// setAsideReason returns why rows are set aside, nil when none is.
func setAsideReason(st outboxState) error {
	if st.setAside == 0 {
		return nil
	}
	first := ""
	if st.firstReason != nil {
		first = fmt.Sprintf("; the first, of order %q: %s", st.firstOrder, *st.firstReason)
	}
	since := ""
	if st.setAsideSince != nil {
		since = " since " + st.setAsideSince.UTC().Format(time.RFC3339)
	}
	rows := fmt.Sprintf("%d outbox rows", st.setAside)
	if st.setAside == 1 {
		rows = "1 outbox row"
	}
	return fmt.Errorf("%s set aside%s, unpublished until `order-api outbox retry`%s (see `order-api outbox list`)",
		rows, since, first)
}
