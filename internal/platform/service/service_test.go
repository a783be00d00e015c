package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/service"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// testConfig is a service's configuration as order-api and order-consumer
// write theirs: Common, and what is its own.
type testConfig struct {
	service.Common
	HTTPAddr    string `env:"HTTP_ADDR" envDefault:"127.0.0.1:0"`
	DatabaseURL string `env:"DATABASE_URL"`
}

func (c testConfig) Validate() error {
	errs := c.Common.Check()
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required"))
	}
	return errors.Join(errs...)
}

func (c testConfig) Settings() service.Settings {
	return c.Common.Settings("testd", c.HTTPAddr, c.DatabaseURL, 2)
}

// migrations make one table, so that a migrated database shows.
var migrations = fstest.MapFS{"00001_widgets.sql": {Data: []byte("-- +goose Up\nCREATE TABLE widgets (id int);\n")}}

// mustLoad loads testConfig from env (name, value, …), failing the test if
// it is refused.
func mustLoad(t *testing.T, env ...string) testConfig {
	t.Helper()
	cfg, _, err := service.Load[testConfig](stacktest.Env(nil, env...), io.Discard)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestLoadReadsTheEnvironmentAndMakesTheLogger(t *testing.T) {
	var logs bytes.Buffer
	cfg, log, err := service.Load[testConfig](stacktest.Env(nil,
		"DATABASE_URL", "postgres://db/x", "SHUTDOWN_TIMEOUT", "3s", "KAFKA_BROKERS", "a:9092,b:9092", "DATABASE_MIGRATE", "false"), &logs)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Settings()
	if s.Name != "testd" || s.DatabaseURL != "postgres://db/x" || s.ShutdownTimeout != 3*time.Second || s.Migrate {
		t.Errorf("settings %+v", s)
	}
	if !slices.Equal(cfg.KafkaBrokers, []string{"a:9092", "b:9092"}) || cfg.Topic != "order-events" || s.LogFormat != "json" {
		t.Errorf("brokers %q, topic %q (the default), log format %q (the default)", cfg.KafkaBrokers, cfg.Topic, s.LogFormat)
	}
	log.Info("hello")
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil || line["msg"] != "hello" || line["service"] != "testd" {
		t.Errorf("log line %q (%v), want JSON naming the service", logs.String(), err)
	}

	logs.Reset()
	_, log, err = service.Load[testConfig](stacktest.Env(nil, "DATABASE_URL", "postgres://db/x", "LOG_LEVEL", "warn", "LOG_FORMAT", "text"), &logs)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("not shown")
	log.Warn("shown")
	if out := logs.String(); strings.Contains(out, "not shown") || !strings.Contains(out, "msg=shown") || !strings.Contains(out, "service=testd") {
		t.Errorf("LOG_LEVEL=warn LOG_FORMAT=text logged %q", out)
	}
}

// Every unusable setting is reported at once, each error line starting with
// its variable, and no logger is made.
func TestLoadReportsEveryUnusableSetting(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"a value that does not parse", []string{"DATABASE_URL", "postgres://db/x", "SHUTDOWN_TIMEOUT", "soon"}, []string{"SHUTDOWN_TIMEOUT"}},
		{"several refused by validation", []string{"SHUTDOWN_TIMEOUT", "-1s", "LOG_LEVEL", "loud", "ORDER_EVENTS_TOPIC", "two words", "ADMIN_ADDR", "nowhere"},
			[]string{"SHUTDOWN_TIMEOUT", "LOG_LEVEL", "ORDER_EVENTS_TOPIC", "ADMIN_ADDR", "DATABASE_URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			_, log, err := service.Load[testConfig](stacktest.Env(nil, tc.env...), &logs)
			if err == nil || log != nil {
				t.Fatalf("Load = %v, logger %v; want an error and no logger", err, log)
			}
			for _, v := range tc.want {
				if !regexp.MustCompile(`(?m)^(configuration: )?` + v + `\b`).MatchString(err.Error()) {
					t.Errorf("no line of the error starts with %s:\n%v", v, err)
				}
			}
			if logs.Len() > 0 {
				t.Errorf("logged %q", logs.String())
			}
		})
	}
}

// events records what the parts of a service did, in order.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

func TestOpenMigratesAndCloseReleasesThePool(t *testing.T) {
	ctx := context.Background()
	db := pgtest.MustDB(t, nil)
	log := stacktest.NewLog(t)
	m, err := service.Open(ctx, mustLoad(t, "DATABASE_URL", db.URL), migrations, log.Logger, telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Pool.Exec(ctx, "INSERT INTO widgets VALUES (1)"); err != nil {
		t.Errorf("the pool on the migrated database: %v", err)
	}
	if m.Registry == nil || m.Auth != nil || !strings.Contains(log.String(), "API authentication is off") {
		t.Errorf("registry %v, auth %v without AUTH_JWKS_URL; log:\n%s", m.Registry, m.Auth, log.String())
	}
	m.Close(ctx)
	if err := m.Pool.Ping(ctx); err == nil {
		t.Error("the pool still answers after Close")
	}

	t.Run("DATABASE_MIGRATE=false leaves the database as it is", func(t *testing.T) {
		db := pgtest.MustDB(t, nil)
		m, err := service.Open(ctx, mustLoad(t, "DATABASE_URL", db.URL, "DATABASE_MIGRATE", "false"), migrations, stacktest.Logger(t), telemetry.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close(ctx)
		if tables := db.Tables(t); slices.Contains(tables, "widgets") {
			t.Errorf("migrated anyway: %v", tables)
		}
	})
}

func TestOpenTurnsAuthenticationOnWithAJWKS(t *testing.T) {
	ctx := context.Background()
	db := pgtest.MustDB(t, nil)
	log := stacktest.NewLog(t)
	cfg := mustLoad(t, "DATABASE_URL", db.URL, "AUTH_JWKS_URL", "http://127.0.0.1:1/jwks", "AUTH_ISSUER", "https://issuer", "AUTH_AUDIENCE", "orders")
	m, err := service.Open(ctx, cfg, migrations, log.Logger, telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	if m.Auth == nil || !strings.Contains(log.String(), "API authentication is on") {
		t.Errorf("auth %v; log:\n%s", m.Auth, log.String())
	}
}

func TestOpenRefusesWhatCannotWork(t *testing.T) {
	ctx := context.Background()
	if m, err := service.Open(ctx, testConfig{}, migrations, stacktest.Logger(t), telemetry.Config{}); err == nil || m != nil {
		t.Errorf("an invalid configuration: %v, %v", m, err)
	}
	cfg := mustLoad(t, "DATABASE_URL", "postgres://postgres@127.0.0.1:1/x?connect_timeout=2")
	if m, err := service.Open(ctx, cfg, migrations, stacktest.Logger(t), telemetry.Config{}); err == nil || m != nil {
		t.Errorf("no database server: %v, %v", m, err)
	}
}

// If wiring fails, Start releases what it opened and what wiring took.
func TestStartReleasesEverythingWhenWiringFails(t *testing.T) {
	ctx := context.Background()
	db := pgtest.MustDB(t, nil)
	var (
		opened *service.Main
		ev     events
	)
	boom := errors.New("boom")
	m, err := service.Start(ctx, mustLoad(t, "DATABASE_URL", db.URL), migrations, stacktest.Logger(t), telemetry.Config{}, func(m *service.Main) error {
		opened = m
		m.Defer(func(context.Context) { ev.add("wired part released") })
		return boom
	})
	if !errors.Is(err, boom) || m != nil {
		t.Fatalf("Start = %v, %v; want the wiring's error", m, err)
	}
	if opened == nil || opened.Pool == nil {
		t.Fatal("wire ran without an opened skeleton")
	}
	if err := opened.Pool.Ping(ctx); err == nil {
		t.Error("the pool is still open")
	}
	if got := ev.get(); !slices.Equal(got, []string{"wired part released"}) {
		t.Errorf("released %v", got)
	}
}

func TestCloseReleasesInReverseOrderOnce(t *testing.T) {
	var (
		m  service.Main
		ev events
	)
	for _, name := range []string{"first", "second", "third"} {
		m.Defer(func(context.Context) { ev.add(name) })
	}
	m.Close(context.Background())
	m.Close(context.Background())
	if got := ev.get(); !slices.Equal(got, []string{"third", "second", "first"}) {
		t.Errorf("released %v", got)
	}
}

// A service that cannot listen leaves nothing open.
func TestListenFailureReleasesEverything(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var ev events
	m := &service.Main{Settings: service.Settings{Name: "testd", HTTPAddr: taken.Addr().String()}, Log: stacktest.Logger(t)}
	m.Defer(func(context.Context) { ev.add("released") })
	err = service.ListenAndServe(context.Background(), testService{Main: m})
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Errorf("ListenAndServe on a taken address: %v", err)
	}
	if got := ev.get(); !slices.Equal(got, []string{"released"}) {
		t.Errorf("released %v", got)
	}
}

// testService is a wired service: the skeleton, an HTTP handler and parts.
type testService struct {
	*service.Main
	handler http.Handler
	parts   []service.Part
}

func (s testService) Serve(ctx context.Context, ln net.Listener) error {
	return s.Main.Serve(ctx, ln, s.HTTPServer(s.handler, 0), s.parts...)
}

// start opens the skeleton on a database of its own, with a release that
// records itself, and wires parts and an API answering GET /hello.
func start(t *testing.T, ev *events, parts []service.Part, env ...string) (testService, *stacktest.Log) {
	t.Helper()
	db := pgtest.MustDB(t, nil)
	log := stacktest.NewLog(t)
	cfg := mustLoad(t, append([]string{"DATABASE_URL", db.URL}, env...)...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello") })
	s := testService{handler: mux, parts: parts}
	m, err := service.Start(context.Background(), cfg, migrations, log.Logger, telemetry.Config{}, func(m *service.Main) error {
		m.Defer(func(context.Context) { ev.add("released") })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Main = m
	return s, log
}

// waitingPart runs until ctx ends, then returns ctx's error, as parts do.
func waitingPart(name string, ev *events) service.Part {
	return service.Part{Name: name, Run: func(ctx context.Context) error {
		ev.add(name + " running")
		<-ctx.Done()
		ev.add(name + " stopped")
		return ctx.Err()
	}}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The parts run and the API answers until ctx ends; then the listener
// closes, the parts stop, and only then is everything released. A shutdown
// caused by ctx is no failure, though the parts return context.Canceled.
func TestServeRunsThePartsUntilTheContextEnds(t *testing.T) {
	var ev events
	s, _ := start(t, &ev, []service.Part{waitingPart("a", &ev), waitingPart("b", &ev)})
	url, stop := stacktest.Serve(t, s)
	if st, body := get(t, url+"/hello"); st != 200 || body != "hello" {
		t.Errorf("GET /hello: %d %q", st, body)
	}
	stacktest.WaitFor(t, "both parts running", 10*time.Second, func() bool {
		got := ev.get()
		return slices.Contains(got, "a running") && slices.Contains(got, "b running")
	})
	if got := ev.get(); slices.Contains(got, "released") {
		t.Fatalf("released while serving: %v", got)
	}
	if err := stop(); err != nil {
		t.Errorf("Serve after ctx ended = %v, want nil", err)
	}
	if stacktest.Listening(url) {
		t.Error("still listening after Serve returned")
	}
	got := ev.get()
	if len(got) != 5 || got[4] != "released" || !slices.Contains(got, "a stopped") || !slices.Contains(got, "b stopped") {
		t.Errorf("events %v, want both parts stopped, then released", got)
	}
	if err := s.Pool.Ping(context.Background()); err == nil {
		t.Error("the pool is still open after Serve returned")
	}
}

// One part failing stops the others and the API, and Serve returns its
// error, named after the part, without ctx ending.
func TestServeStopsEverythingWhenAPartFails(t *testing.T) {
	var ev events
	boom := errors.New("boom")
	failing := service.Part{Name: "failing", Run: func(ctx context.Context) error {
		for !slices.Contains(ev.get(), "steady running") { // fail once the other part runs
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(stacktest.PollInterval):
			}
		}
		return boom
	}}
	s, _ := start(t, &ev, []service.Part{waitingPart("steady", &ev), failing})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after a part failed")
	}
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "failing: ") {
		t.Errorf("Serve = %v, want the part's error named after it", err)
	}
	if stacktest.Listening(ln.Addr().String()) {
		t.Error("still listening")
	}
	if got := ev.get(); !slices.Equal(got, []string{"steady running", "steady stopped", "released"}) {
		t.Errorf("events %v", got)
	}
}

// A request in flight when ctx ends is answered; the listener closes at once.
func TestServeLetsARequestInFlightFinish(t *testing.T) {
	var ev events
	s, _ := start(t, &ev, nil, "SHUTDOWN_TIMEOUT", "20s")
	entered, release := make(chan struct{}), make(chan struct{})
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	url, stop := stacktest.Serve(t, s)
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, string(b), err}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	stacktest.WaitFor(t, "the listener closed", 10*time.Second, func() bool { return !stacktest.Listening(url) })
	close(release)
	if a := <-answered; a.err != nil || a.status != 200 || a.body != "finished" {
		t.Errorf("the request in flight got %d %q (%v)", a.status, a.body, a.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// ADMIN_ADDR serves pprof on a listener of its own, never on the API's.
func TestServeServesProfilesOnlyOnTheAdminAddress(t *testing.T) {
	var ev events
	s, log := start(t, &ev, nil, "ADMIN_ADDR", "127.0.0.1:0")
	url, stop := stacktest.Serve(t, s)
	var admin string
	stacktest.WaitFor(t, "the admin listener's log line", 10*time.Second, func() bool {
		m := regexp.MustCompile(`admin listener.* addr=(\S+)`).FindStringSubmatch(log.String())
		if m != nil {
			admin = "http://" + m[1]
		}
		return m != nil
	})
	if st, body := get(t, admin+"/debug/pprof/cmdline"); st != 200 || body == "" {
		t.Errorf("admin /debug/pprof/cmdline: %d %q", st, body)
	}
	if st, _ := get(t, url+"/debug/pprof/cmdline"); st != 404 {
		t.Errorf("the API's listener answers /debug/pprof/cmdline with %d", st)
	}
	if err := stop(); err != nil {
		t.Errorf("Serve = %v", err)
	}
	if stacktest.Listening(admin) {
		t.Error("the admin listener is still open")
	}

	t.Run("a taken ADMIN_ADDR fails the start and closes everything", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		var ev events
		s, _ := start(t, &ev, nil, "ADMIN_ADDR", taken.Addr().String())
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Serve(context.Background(), ln); err == nil || !strings.Contains(err.Error(), "ADMIN_ADDR") {
			t.Errorf("Serve = %v, want ADMIN_ADDR named", err)
		}
		if stacktest.Listening(ln.Addr().String()) {
			t.Error("the API's listener is still open")
		}
		if got := ev.get(); !slices.Equal(got, []string{"released"}) {
			t.Errorf("events %v", got)
		}
	})
}

// The server both services use bounds how long a client may take to send
// its headers and its request, and takes the write timeout it is given (0:
// none, for reads that wait).
func TestHTTPServerTimeouts(t *testing.T) {
	m := &service.Main{Log: stacktest.Logger(t)}
	srv := m.HTTPServer(http.NotFoundHandler(), 0)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.IdleTimeout <= 0 || srv.WriteTimeout != 0 {
		t.Errorf("timeouts: header %s, read %s, idle %s, write %s", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout, srv.WriteTimeout)
	}
	if w := m.HTTPServer(http.NotFoundHandler(), 5*time.Second).WriteTimeout; w != 5*time.Second {
		t.Errorf("write timeout %s", w)
	}
}
