package stacktest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
)

// recorder is a testing.TB that records what a helper did to it, so a test
// can watch a helper fail a test without failing itself.
type recorder struct {
	testing.TB // nil: only the methods below are used
	mu         sync.Mutex
	failed     bool
	logs       []string
	cleanups   []func()
}

func (r *recorder) Helper() {}

func (r *recorder) Cleanup(f func()) { r.mu.Lock(); r.cleanups = append(r.cleanups, f); r.mu.Unlock() }

func (r *recorder) Failed() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.failed }

func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func (r *recorder) Errorf(format string, args ...any) {
	r.Logf(format, args...)
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

func (r *recorder) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// end runs the cleanups, last registered first, as testing does.
func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// run calls f with r on a goroutine of its own, as testing runs a test, so
// that Fatalf ends only f.
func (r *recorder) run(f func(testing.TB)) {
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
}

func TestWaitFor(t *testing.T) {
	t.Run("returns once the condition holds", func(t *testing.T) {
		calls := 0
		stacktest.WaitFor(t, "the third call", 5*time.Second, func() bool { calls++; return calls == 3 })
		if calls != 3 {
			t.Fatalf("condition called %d times, want 3", calls)
		}
	})
	t.Run("fails naming what it waited for", func(t *testing.T) {
		r := &recorder{}
		r.run(func(tb testing.TB) {
			stacktest.WaitFor(tb, "the moon to turn blue", 50*time.Millisecond, func() bool { return false })
		})
		if !r.Failed() || len(r.logs) != 1 || !strings.Contains(r.logs[0], "the moon to turn blue") {
			t.Fatalf("failed %v, logged %q", r.Failed(), r.logs)
		}
	})
}

func TestLogIsPrintedOnlyWhenTheTestFails(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("failed %v", fail), func(t *testing.T) {
			r := &recorder{}
			log := stacktest.NewLog(r)
			log.Info("relay is the leader", "attempt", 1)
			log.Debug("details")
			if !strings.Contains(log.String(), `msg="relay is the leader" attempt=1`) || !strings.Contains(log.String(), "details") {
				t.Fatalf("kept %q", log.String())
			}
			if fail {
				r.Errorf("boom")
			}
			r.end()
			printed := strings.Join(r.logs, "\n")
			if got := strings.Contains(printed, "relay is the leader"); got != fail {
				t.Fatalf("printed the log: %v, want %v:\n%s", got, fail, printed)
			}
		})
	}
}

type server struct{}

func (server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func TestServe(t *testing.T) {
	url, stop := stacktest.Serve(t, server{})
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 { // from any goroutine, more than once
		wg.Go(func() { errs <- stop() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("stop: %v", err)
		}
	}
	if _, err := http.Get(url); err == nil {
		t.Error("the service still answers after stop")
	}
}

func TestLogKeepsItsNewestLinesWithinMaxLog(t *testing.T) {
	log := stacktest.NewLog(t)
	line := strings.Repeat("x", 1023) + "\n"
	for range 2 * stacktest.MaxLog / len(line) {
		if _, err := log.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := log.Write([]byte("the last line\n")); err != nil {
		t.Fatal(err)
	}
	kept := log.String()
	if len(kept) > stacktest.MaxLog+100 || !strings.HasPrefix(kept, "[") || !strings.Contains(kept, "bytes of earlier lines dropped]\nxxx") ||
		!strings.HasSuffix(kept, "\nthe last line\n") {
		t.Fatalf("kept %d bytes, starting %.60q, ending %q", len(kept), kept, kept[max(0, len(kept)-20):])
	}
}

func TestEnv(t *testing.T) {
	getenv := stacktest.Env(map[string]string{"A": "1", "B": "2"}, "B", "3", "C", "4", "D")
	for k, want := range map[string]string{"A": "1", "B": "3", "C": "4", "D": "", "E": ""} {
		if got := getenv(k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
}

func TestListening(t *testing.T) {
	url, stop := stacktest.Serve(t, server{})
	if !stacktest.Listening(url) || !stacktest.Listening(strings.TrimPrefix(url, "http://")+"/") {
		t.Fatalf("%s: not listening while served", url)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if stacktest.Listening(url) {
		t.Fatalf("%s: still listening after stop", url)
	}
}
