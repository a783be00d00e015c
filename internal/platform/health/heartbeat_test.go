package health_test

import (
	"context"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/platform/health"
)

func TestALoopIsWedgedOnlyPastTheTimeoutWithoutABeat(t *testing.T) {
	hb := health.NewHeartbeats(time.Minute)
	relay, purger := hb.Heart("relay"), hb.Heart("purger")
	if hb.Heart("relay") != relay {
		t.Fatal("a second Heart of one name is another heart")
	}
	if relay.Every() != 15*time.Second {
		t.Errorf("Every = %s, want a quarter of the timeout", relay.Every())
	}
	purger.Beat()
	later := time.Now().Add(90 * time.Second)
	got := hb.Loops(later)
	if len(got) != 2 || got[0].Name != "purger" || got[1].Name != "relay" {
		t.Fatalf("loops %+v, want purger and relay, by name", got)
	}
	for _, l := range got {
		if !l.Wedged || l.Age < 90*time.Second {
			t.Errorf("%s 90s without a beat: %+v, want wedged", l.Name, l)
		}
	}
	relay.Beat()
	if l := hb.Loops(time.Now())[1]; l.Wedged {
		t.Errorf("relay just beat: %+v", l)
	}
	if l := health.NewHeartbeats(0); l.Heart("x") == nil || l.Loops(later)[0].Wedged {
		t.Error("with timeout 0 a loop was wedged")
	}
}

// A loop run without heartbeats (a command, a unit test) beats into
// nothing: nil hearts do nothing, and Sleep still sleeps.
func TestNilHeartsDoNothing(t *testing.T) {
	var hb *health.Heartbeats
	h := hb.Heart("relay")
	h.Beat()
	if h.Every() != 0 || hb.Loops(time.Now()) != nil {
		t.Error("a nil heart has a pace or loops")
	}
	if pulse, stop := h.Pulse(); pulse != nil {
		stop()
		t.Error("a nil heart pulses")
	}
	if !h.Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep did not sleep")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if h.Sleep(ctx, time.Hour) {
		t.Error("Sleep outlived its context")
	}
}

// A loop sleeping with Sleep beats while it sleeps.
func TestSleepBeats(t *testing.T) {
	hb := health.NewHeartbeats(40 * time.Millisecond)
	h := hb.Heart("loop")
	start := time.Now()
	h.Sleep(context.Background(), 100*time.Millisecond)
	if l := hb.Loops(time.Now())[0]; l.Wedged || l.Age > time.Since(start)/2 {
		t.Errorf("after sleeping 100ms with a 40ms timeout: %+v", l)
	}
}
