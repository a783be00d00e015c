package health

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Condition is one degraded check of a service: set by the loop that
// watches it, read by /readyz (web.Check{Optional: true}), where it shows
// without failing readiness. It logs one line when it starts, at warn with
// its reason, and one when it ends, at info with how long it lasted; its
// reason may change meanwhile (a count, an age) without another line, so a
// probe, however often, never adds one.
type Condition struct {
	name string
	log  *slog.Logger

	mu    sync.Mutex
	err   error
	since time.Time
}

// NewCondition returns the condition of the check called name, not
// degraded, logging to log (slog.Default() if nil).
func NewCondition(name string, log *slog.Logger) *Condition {
	if log == nil {
		log = slog.Default()
	}
	return &Condition{name: name, log: log}
}

// Set records the condition as the watcher found it now: err is why it is
// degraded, nil when it is not.
func (c *Condition) Set(err error) {
	c.mu.Lock()
	was, since := c.err, c.since
	c.err = err
	switch {
	case was == nil && err != nil:
		c.since = time.Now()
	case was != nil && err == nil:
		c.since = time.Time{}
	}
	c.mu.Unlock()
	switch {
	case was == nil && err != nil:
		c.log.Warn("degraded", "check", c.name, "reason", err.Error())
	case was != nil && err == nil:
		c.log.Info("no longer degraded", "check", c.name, "lasted", time.Since(since).Round(time.Millisecond).String())
	}
}

// Check returns why the condition is degraded, nil when it is not: a
// web.Check's Func.
func (c *Condition) Check(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Degraded reports whether the condition holds now.
func (c *Condition) Degraded() bool { return c.Check(context.Background()) != nil }
