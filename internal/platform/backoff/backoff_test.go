package backoff_test

import (
	"context"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/platform/backoff"
)

func TestDelayGrowsThenCapsWithinJitter(t *testing.T) {
	min, max := 100*time.Millisecond, 2*time.Second
	for attempt, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: 1600 * time.Millisecond, 6: 2 * time.Second, 60: 2 * time.Second} {
		for range 200 {
			d := backoff.Delay(min, max, attempt)
			if d < ceiling/2 || d > ceiling {
				t.Fatalf("attempt %d: %s outside [%s, %s]", attempt, d, ceiling/2, ceiling)
			}
		}
	}
}

func TestSleepStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if backoff.Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported a full hour on a cancelled context")
	}
	if !backoff.Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep did not report a completed wait")
	}
}
