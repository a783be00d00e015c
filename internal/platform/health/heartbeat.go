// Package health is what a service knows of its own health, beyond what
// its dependencies answer: the heartbeats of its long-running loops, which
// /livez reads (a loop whose heart stopped is wedged, and only a restart
// frees it), and the degraded conditions its watchers find, which /readyz
// lists without failing (the service still serves its API) and which log
// one line when they start and one when they end.
package health

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Heartbeats holds the last beat of each loop of a service. A loop beats
// when it makes progress and, while it waits for something that cannot
// wedge it (a timer, a message that may never come, another loop), at
// least every Heart.Every; so only a loop stuck in a call that does not
// return goes longer than Timeout without a beat. The zero value is not
// usable: call NewHeartbeats.
type Heartbeats struct {
	timeout time.Duration
	mu      sync.Mutex
	hearts  map[string]*Heart
}

// NewHeartbeats returns heartbeats whose loops are wedged once they went
// timeout without a beat; with timeout 0 no loop ever is.
func NewHeartbeats(timeout time.Duration) *Heartbeats {
	return &Heartbeats{timeout: timeout, hearts: map[string]*Heart{}}
}

// Timeout is how long a loop may go without a beat before it is wedged.
func (h *Heartbeats) Timeout() time.Duration { return h.timeout }

// Heart returns the heart of the loop called name, made on the first call
// with its age counted from then. A nil *Heartbeats returns a nil *Heart,
// whose methods do nothing: a loop run without heartbeats (a command, a
// test) beats into nothing.
func (h *Heartbeats) Heart(name string) *Heart {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if hb, ok := h.hearts[name]; ok {
		return hb
	}
	hb := &Heart{name: name, every: h.timeout / 4}
	hb.Beat()
	h.hearts[name] = hb
	return hb
}

// Beat records a beat of the loop called name.
func (h *Heartbeats) Beat(name string) { h.Heart(name).Beat() }

// Loop is one loop's state as /livez shows it.
type Loop struct {
	Name   string
	Age    time.Duration // since its last beat
	Wedged bool          // Age is over the timeout
}

// Loops returns every loop's state at now, by name.
func (h *Heartbeats) Loops(now time.Time) []Loop {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	hearts := make([]*Heart, 0, len(h.hearts))
	for _, hb := range h.hearts {
		hearts = append(hearts, hb)
	}
	h.mu.Unlock()
	loops := make([]Loop, len(hearts))
	for i, hb := range hearts {
		age := max(now.Sub(time.Unix(0, hb.last.Load())), 0)
		loops[i] = Loop{Name: hb.name, Age: age, Wedged: h.timeout > 0 && age > h.timeout}
	}
	slices.SortFunc(loops, func(a, b Loop) int { return cmp.Compare(a.Name, b.Name) })
	return loops
}

// Heart is one loop's heartbeat. Its methods are safe for concurrent use,
// and do nothing on a nil *Heart.
type Heart struct {
	name  string
	every time.Duration
	last  atomic.Int64 // unix nanoseconds of the last beat
}

// Beat records that the loop is alive: it made progress, or it is waiting
// for something that cannot wedge it.
func (hb *Heart) Beat() {
	if hb == nil {
		return
	}
	hb.last.Store(time.Now().UnixNano())
}

// Every is how often a waiting loop must beat: a quarter of the timeout.
// 0 for a nil Heart: there is nobody to tell.
func (hb *Heart) Every() time.Duration {
	if hb == nil {
		return 0
	}
	return hb.every
}

// Pulse returns a channel that receives every Every, for a loop to beat
// while it waits in a select, and the function that stops it. For a nil
// Heart the channel never receives.
func (hb *Heart) Pulse() (<-chan time.Time, func()) {
	if hb == nil || hb.every <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(hb.every)
	return t.C, t.Stop
}

// Sleep waits d or until ctx ends, beating meanwhile, and reports whether
// the full d passed (backoff.Sleep for a loop with a heart).
func (hb *Heart) Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	pulse, stop := hb.Pulse()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			hb.Beat()
			return true
		case <-pulse:
			hb.Beat()
		}
	}
}
