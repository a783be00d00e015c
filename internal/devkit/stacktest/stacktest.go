// Package stacktest is what integration tests need around the embedded
// development stack, written once: a Kafka broker and a Schema Registry
// started for one test and closed when it ends, a service served on a free
// port and stopped when it ends (with its environment, and whether it
// still listens), a wait for a condition with a deadline instead of a
// sleep, and a logger that keeps the lines of the code under test and
// prints them only if the test fails.
//
// Every helper fails the test with a message saying what could not be
// started or what was waited for; none skips a test. Like testing.TB's
// FailNow, the helpers that can fail the test (Kafka, Registry, Serve,
// WaitFor) must be called from the goroutine running the test.
package stacktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
)

// Kafka starts an embedded broker (kfake) configured by cfg, with its topics
// created, and closes it when tb ends.
func Kafka(tb testing.TB, cfg devstack.KafkaConfig) *devstack.Kafka {
	tb.Helper()
	k, err := devstack.StartKafka(cfg)
	if err != nil {
		tb.Fatalf("stacktest: the embedded Kafka broker did not start: %v", err)
	}
	tb.Cleanup(k.Close)
	return k
}

// Registry serves an empty Schema Registry on a free port of 127.0.0.1 and
// closes it when tb ends. Its Stop and Start simulate an outage.
func Registry(tb testing.TB) *devstack.RegistryServer {
	tb.Helper()
	r, err := devstack.StartRegistry("127.0.0.1:0")
	if err != nil {
		tb.Fatalf("stacktest: the schema registry did not start: %v", err)
	}
	tb.Cleanup(r.Close)
	return r
}

// Switch forwards a free port of 127.0.0.1 to target and closes when tb
// ends; its Hang makes the server behind it a peer that accepts connections
// and never answers, its Resume a working one again (devstack.Switch).
func Switch(tb testing.TB, target string) *devstack.Switch {
	tb.Helper()
	s, err := devstack.StartSwitch(target)
	if err != nil {
		tb.Fatalf("stacktest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// PollInterval is how often WaitFor evaluates its condition.
const PollInterval = 20 * time.Millisecond

// WaitFor calls cond every PollInterval until it returns true, and fails tb,
// naming what it waited for, if timeout passes first. cond runs on the
// calling goroutine, which must be the test's.
func WaitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(PollInterval)
	}
}

// Log is a logger whose lines are kept in memory: tests read them with
// String, and tb prints them if it fails. It is also an io.Writer, for a
// logger made otherwise (say in JSON, by the services' own logging
// package) whose lines are to be kept and printed the same way.
type Log struct {
	*slog.Logger
	buf *lockedBuffer
}

// String returns every line logged so far.
func (l *Log) String() string { return l.buf.String() }

// Write keeps p as logged lines; it is safe for concurrent use.
func (l *Log) Write(p []byte) (int, error) { return l.buf.Write(p) }

// Logger returns a logger for the code under test: see NewLog.
func Logger(tb testing.TB) *slog.Logger { return NewLog(tb).Logger }

// NewLog returns a text logger, at debug level, that keeps its lines; when
// tb ends (after the cleanups registered later, such as stopping the
// services that log to it) it prints them with tb.Log only if tb failed. A
// passing test prints nothing; a failing one shows what the services said.
func NewLog(tb testing.TB) *Log {
	tb.Helper()
	buf := &lockedBuffer{}
	tb.Cleanup(func() {
		if out := buf.String(); tb.Failed() && out != "" {
			tb.Logf("log of the code under test:\n%s", out)
		}
	})
	return &Log{Logger: slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf: buf}
}

// MaxLog bounds what a Log keeps: past it, the oldest half of its lines is
// dropped (a benchmark or a fuzz target logs without end), and String says
// how much was.
const MaxLog = 8 << 20

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of a
// service's goroutines, keeping at most MaxLog bytes.
type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	dropped int
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.b.Write(p)
	if b.b.Len() > MaxLog {
		cut := b.b.Len() - MaxLog/2
		if i := bytes.IndexByte(b.b.Bytes()[cut:], '\n'); i >= 0 {
			cut += i + 1
		}
		b.b.Next(cut)
		b.dropped += cut
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return fmt.Sprintf("[%d bytes of earlier lines dropped]\n%s", b.dropped, b.b.String())
	}
	return b.b.String()
}

// Server is a service as the services' packages build it: Serve runs it on
// ln until ctx ends, and returns nil after a graceful shutdown.
type Server interface {
	Serve(ctx context.Context, ln net.Listener) error
}

// StopTimeout bounds how long a stop waits for Serve to return.
const StopTimeout = 30 * time.Second

// ErrNotStopped is the error of a stop whose service's Serve did not return
// within StopTimeout.
var ErrNotStopped = fmt.Errorf("did not stop within %s", StopTimeout)

// Serve runs srv on a free port of 127.0.0.1 and returns its base URL
// ("http://127.0.0.1:port") and a stop function. stop ends Serve's context
// and returns Serve's result once it has returned, or an error if it has not
// within StopTimeout; it may be called from any goroutine and more than
// once (later calls return the first result). It runs when tb ends if the
// test has not called it.
func Serve(tb testing.TB, srv Server) (url string, stop func() error) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("stacktest: listen on a free port: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var (
		once   sync.Once
		result error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(StopTimeout):
				result = fmt.Errorf("stacktest: the service on %s: %w", ln.Addr(), ErrNotStopped)
			}
		})
		return result
	}
	tb.Cleanup(func() {
		// What Serve returns is the test's to check, by calling stop; a
		// service that does not stop at all fails every test.
		if err := stop(); errors.Is(err, ErrNotStopped) {
			tb.Error(err)
		}
	})
	return "http://" + ln.Addr().String(), stop
}

// Listening reports whether something accepts TCP connections at the host
// and port of url ("http://127.0.0.1:8080" or "127.0.0.1:8080"). A service
// that began shutting down has closed its listener: it is not listening,
// though its requests in flight may still be answered.
func Listening(url string) bool {
	addr := strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i]
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Env is the getenv of an environment for a service's configuration (what
// config.Load reads): env, with overrides — a variable's name, then its
// value, and so on — set over it. A name without a value is ignored.
func Env(env map[string]string, overrides ...string) func(string) string {
	merged := make(map[string]string, len(env)+len(overrides)/2)
	for k, v := range env {
		merged[k] = v
	}
	for i := 0; i+1 < len(overrides); i += 2 {
		merged[overrides[i]] = overrides[i+1]
	}
	return func(k string) string { return merged[k] }
}
