// Package backoff computes retry delays — capped exponential growth with
// jitter, so replicas and restarts do not retry in lockstep — and waits them
// out without outliving a context. The relay and the consumer retry with it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the wait before retry number attempt (1 for the first retry):
// min·2^(attempt-1), capped at max, jittered uniformly into [d/2, d].
func Delay(min, max time.Duration, attempt int) time.Duration {
	d := max
	if attempt >= 1 && attempt < 32 {
		if e := min << (attempt - 1); e > 0 && e < max {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d or until ctx ends, reporting whether the full d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
