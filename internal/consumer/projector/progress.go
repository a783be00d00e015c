package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersonkafka/orders/internal/platform/health"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// ProgressConfig configures a Progress.
type ProgressConfig struct {
	Brokers  []string
	Security *kafkaconn.Security // nil: plain text
	Topic    string
	GroupID  string
	// StallAfter is how long a partition may lag with its committed offset
	// unmoved before it is stalled (CONSUMER_STALL_AFTER). Required.
	StallAfter time.Duration
	// Logger receives one line when a stall starts and one when it ends.
	// Default slog.Default().
	Logger *slog.Logger
	// Registerer receives consumer_stalled_partitions. Default: a registry
	// of its own, which nobody scrapes.
	Registerer prometheus.Registerer
}

// Progress watches the group's progress on each partition of its topic,
// from the brokers, as the lag collector reads it: a partition with lag
// whose committed offset has not moved for StallAfter is stalled, whichever
// member of the group holds it (the offsets are the group's, so every
// instance reports the same). Its condition is /readyz's degraded check
// consumer_progress. It reads the offsets every StallAfter/4, at most every
// 10 s, each read bounded by 3 s; a read that fails keeps what the last one
// found, so a stall goes on being reported while the brokers cannot be
// reached.
type Progress struct {
	cfg       ProgressConfig
	offsets   offsetReader
	interval  time.Duration
	gauge     prometheus.Gauge
	condition *health.Condition

	// Only Run's goroutine uses these.
	parts   map[int]*partitionProgress
	lastErr error     // the last read's failure, nil if it succeeded
	lastAt  time.Time // when offsets were last read
}

// partitionProgress is what Progress remembers of a partition.
type partitionProgress struct {
	partitionOffsets
	since time.Time // when committed was first seen at its value, with lag
}

// NewProgress validates cfg and returns a Progress; call Run once.
func NewProgress(cfg ProgressConfig) (*Progress, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" || cfg.GroupID == "" || cfg.StallAfter <= 0 {
		return nil, errors.New("projector: Progress needs Brokers, Topic, GroupID and a positive StallAfter")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	return &Progress{cfg: cfg, offsets: newOffsetReader(cfg.Brokers, cfg.Security, cfg.Topic, cfg.GroupID),
		interval: max(min(10*time.Second, cfg.StallAfter/4), 10*time.Millisecond),
		gauge: telemetry.Register(cfg.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{Name: "consumer_stalled_partitions",
			Help:        "Partitions with lag whose committed offset has not moved for CONSUMER_STALL_AFTER.",
			ConstLabels: prometheus.Labels{"topic": cfg.Topic, "group": cfg.GroupID}})),
		condition: health.NewCondition("consumer_progress", cfg.Logger.With("component", "progress")),
		parts:     map[int]*partitionProgress{}}, nil
}

// Condition is the condition of /readyz's consumer_progress check:
// degraded while a partition is stalled, naming each, its lag and since
// when.
func (p *Progress) Condition() *health.Condition { return p.condition }

// Run reads the offsets every interval until ctx ends, then returns nil.
func (p *Progress) Run(ctx context.Context) error {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.look(ctx, time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *Progress) look(ctx context.Context, now time.Time) {
	rctx, cancel := context.WithTimeout(ctx, offsetsTimeout)
	offs, err := p.offsets.read(rctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		if p.lastErr == nil {
			p.cfg.Logger.Debug("consumer progress: offsets not available", "topic", p.cfg.Topic, "group", p.cfg.GroupID, "error", err)
		}
		p.lastErr = err
	} else {
		p.lastErr, p.lastAt = nil, now
		for id := range p.parts {
			if _, ok := offs[id]; !ok { // the topic was created again, with fewer
				delete(p.parts, id)
			}
		}
		for id, o := range offs {
			pp := p.parts[id]
			switch {
			case pp == nil:
				p.parts[id] = &partitionProgress{o, now}
			case o.committed != pp.committed || o.lag() == 0:
				pp.partitionOffsets, pp.since = o, now
			default:
				pp.end = o.end
			}
		}
	}
	stalled := p.stalled(now)
	p.gauge.Set(float64(len(stalled)))
	if len(stalled) == 0 {
		p.condition.Set(nil)
		return
	}
	var b strings.Builder
	for i, id := range stalled {
		pp := p.parts[id]
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "partition %d: lag %d, committed offset %d unmoved since %s (%s)", id, pp.lag(), pp.committed,
			pp.since.UTC().Format(time.RFC3339), now.Sub(pp.since).Round(time.Second))
	}
	fmt.Fprintf(&b, " (CONSUMER_STALL_AFTER=%s)", p.cfg.StallAfter)
	if p.lastErr != nil {
		fmt.Fprintf(&b, "; offsets as read at %s: cannot read them now: %v", p.lastAt.UTC().Format(time.RFC3339), p.lastErr)
	}
	p.condition.Set(errors.New(b.String()))
}

// stalled returns the partitions stalled at now, in order.
func (p *Progress) stalled(now time.Time) []int {
	var out []int
	for id, pp := range p.parts {
		if pp.lag() > 0 && now.Sub(pp.since) > p.cfg.StallAfter {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
