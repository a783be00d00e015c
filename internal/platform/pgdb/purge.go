package pgdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ordersonkafka/orders/internal/platform/health"
)

// Purger deletes rows past their retention in small batches, so no purge
// holds locks for long or bloats one transaction: Step deletes at most limit
// rows and says how many; Run calls it again while it deletes a full batch.
type Purger struct {
	Name     string // what is purged, for the log
	Interval time.Duration
	Batch    int
	// Timeout bounds each Step (DATABASE_TIMEOUT; CallTimeout if zero): a
	// step deletes at most Batch rows by an index, in milliseconds, and one
	// stuck on a server that does not answer would stop the purge for good.
	Timeout time.Duration
	Step    func(ctx context.Context, limit int) (int64, error)
	Logger  *slog.Logger
	// Heart, if set, beats after each purge and while waiting for the
	// next: a purge that hangs (a lock never granted) stops it.
	Heart *health.Heart
}

// Run purges every Interval until ctx ends, then returns nil. A failing
// step (the database down) is logged and tried again next interval.
func (p Purger) Run(ctx context.Context) error {
	if p.Interval <= 0 || p.Batch <= 0 || p.Step == nil {
		return fmt.Errorf("purge %s: Interval, Batch and Step are required", p.Name)
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	pulse, stop := p.Heart.Pulse()
	defer stop()
	for {
		n, err := p.Once(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			log.Warn("purge failed; will try again", "purge", p.Name, "error", err)
		case n > 0:
			log.Info("purged", "purge", p.Name, "rows", n)
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-pulse:
				p.Heart.Beat()
			case <-t.C:
				break wait
			}
		}
	}
}

// Once purges until a step deletes less than a full batch, and returns how
// many rows it deleted.
func (p Purger) Once(ctx context.Context) (int64, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = CallTimeout
	}
	var total int64
	for {
		sctx, cancel := context.WithTimeout(ctx, timeout)
		n, err := p.Step(sctx, p.Batch)
		cancel()
		p.Heart.Beat()
		total += n
		if err != nil {
			return total, errors.Join(fmt.Errorf("purge %s", p.Name), err)
		}
		if n < int64(p.Batch) {
			return total, nil
		}
	}
}
