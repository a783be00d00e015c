package pgdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Purger deletes rows past their retention in small batches, so no purge
// holds locks for long or bloats one transaction: Step deletes at most limit
// rows and says how many; Run calls it again while it deletes a full batch.
type Purger struct {
	Name     string // what is purged, for the log
	Interval time.Duration
	Batch    int
	Step     func(ctx context.Context, limit int) (int64, error)
	Logger   *slog.Logger
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
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once purges until a step deletes less than a full batch, and returns how
// many rows it deleted.
func (p Purger) Once(ctx context.Context) (int64, error) {
	var total int64
	for {
		n, err := p.Step(ctx, p.Batch)
		total += n
		if err != nil {
			return total, errors.Join(fmt.Errorf("purge %s", p.Name), err)
		}
		if n < int64(p.Batch) {
			return total, nil
		}
	}
}
