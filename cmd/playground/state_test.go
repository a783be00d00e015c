package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
)

func httpDo(t *testing.T, method, url, body string, failOnError bool) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if failOnError {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric is the value of the series named exactly series on a /metrics page.
func metric(page, series string) string {
	for line := range strings.SplitSeq(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// `make run`, Ctrl-C, `make run` again keeps every order, event and schema:
// an order placed and paid in the first run is read at both APIs in the
// second, its events still decode with the registry of the second, the
// consumer neither projects them again nor dead-letters them, and a new
// order goes all the way through. -fresh then starts with none of it.
func TestThePlaygroundKeepsItsStateAcrossARestart(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, "state")
	opts.state = filepath.Join(t.TempDir(), "state")
	// The broker's port must be the same across the restarts, as :9092 is.
	opts.kafkaPort = freePort(t)
	api, consumer := "http://"+opts.apiAddr, "http://"+opts.consumerAddr
	place := func() string {
		t.Helper()
		st, body := httpDo(t, "POST", api+"/orders", `{"customer_id":"c-1","currency":"EUR","items":[{"sku":"BOOK-1","quantity":1,"unit_price_minor":500}]}`, true)
		if st != 201 {
			t.Fatalf("place: %d %s", st, body)
		}
		return regexp.MustCompile(`"id":"([^"]+)"`).FindStringSubmatch(body)[1]
	}
	payAndProject := func(id string) {
		t.Helper()
		if st, body := httpDo(t, "POST", api+"/orders/"+id+"/pay", "", true); st != 200 {
			t.Fatalf("pay: %d %s", st, body)
		}
		stacktest.WaitFor(t, "the paid order in the projection", 60*time.Second, func() bool {
			st, body := httpDo(t, "GET", consumer+"/orders/"+id, "", false)
			return st == 200 && strings.Contains(body, `"status":"paid"`)
		})
	}

	first := startPlayground(t, opts)
	if !strings.Contains(first.banner.String(), "State            new, kept in "+opts.state) {
		t.Fatalf("the first banner does not say the state is new:\n%s", first.banner)
	}
	env, err := os.ReadFile(filepath.Join(opts.state, "order-consumer.env"))
	if err != nil || !strings.Contains(string(env), "HTTP_ADDR='"+opts.consumerAddr+"'") || !strings.Contains(string(env), "DATABASE_URL='") {
		t.Fatalf("order-consumer.env: %v\n%s", err, env)
	}
	old := place()
	payAndProject(old)
	// The projection shows the change once its transaction commits; the
	// offset is committed after that. Stop once it is, so that what the
	// restart must keep is the committed offset (a stop in between would
	// rightly redeliver the last batch, counted as duplicates).
	stacktest.WaitFor(t, "the consumer's offsets committed (lag 0)", 30*time.Second, func() bool {
		_, page := httpDo(t, "GET", consumer+"/metrics", "", false)
		lag, seen := 0.0, false
		for line := range strings.SplitSeq(page, "\n") {
			if strings.HasPrefix(line, "consumer_lag{") {
				var v float64
				if _, err := fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v); err == nil {
					lag, seen = lag+v, true
				}
			}
		}
		return seen && lag == 0
	})
	first.stop()

	second := startPlayground(t, opts)
	if !strings.Contains(second.banner.String(), "State            resumed from "+opts.state) ||
		!strings.Contains(second.banner.String(), "the databases held 1 orders, kept") {
		t.Fatalf("the second banner does not say it resumed, and the order the databases held:\n%s", second.banner)
	}
	for _, url := range []string{api + "/orders/" + old, consumer + "/orders/" + old} {
		if st, body := httpDo(t, "GET", url, "", true); st != 200 || !strings.Contains(body, `"status":"paid"`) {
			t.Fatalf("GET %s after the restart: %d %s", url, st, body)
		}
	}
	// The first run's events, read again from the kept topic, decode with the
	// kept registry: their schema IDs still name the schema they were written with.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := kafkatest.ReadAll(ctx, fmt.Sprintf("127.0.0.1:%d", opts.kafkaPort), topic)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: "http://" + opts.registryAddr})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("the topic holds %d events after the restart, want the first run's 2", len(msgs))
	}
	for _, m := range msgs {
		if _, err := dec.Decode(ctx, m.Value); err != nil {
			t.Fatalf("an event of the first run does not decode after the restart: %v", err)
		}
	}
	fresh := place()
	payAndProject(fresh)
	_, page := httpDo(t, "GET", consumer+"/metrics", "", true)
	for series, want := range map[string]string{
		`consumer_events_total{outcome="applied"}`:       "2", // the new order's two, not the first run's again
		`consumer_events_total{outcome="duplicate"}`:     "0",
		`consumer_events_total{outcome="dead_lettered"}`: "0",
	} {
		if got := metric(page, series); got != want {
			t.Errorf("%s = %q after the restart, want %s", series, got, want)
		}
	}
	second.stop()

	// -fresh, with DATABASE_URL naming the very database it drops: the
	// drop goes through the server's postgres database.
	opts.fresh = true
	ordersURL, err := withDatabase(pgtest.ServerURL(), opts.ordersDB)
	if err != nil {
		t.Fatal(err)
	}
	third := startPlaygroundOn(t, opts, ordersURL)
	if !strings.Contains(third.banner.String(), "State            started fresh") {
		t.Fatalf("the -fresh banner does not say so:\n%s", third.banner)
	}
	for _, url := range []string{api + "/orders/" + old, consumer + "/orders/" + fresh} {
		if st, body := httpDo(t, "GET", url, "", true); st != 404 {
			t.Fatalf("GET %s after -fresh: %d %s, want 404", url, st, body)
		}
	}
	msgs, err = kafkatest.ReadAll(ctx, fmt.Sprintf("127.0.0.1:%d", opts.kafkaPort), topic)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("after -fresh the topic holds %d events (%v), want none", len(msgs), err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	addr := freeAddr(t)
	var port int
	if _, err := fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}

// The databases are the checkout's: named after the state directory's
// absolute path, the same for the same directory, another for another.
func TestTheDatabasesAreNamedAfterTheCheckout(t *testing.T) {
	t.Chdir(t.TempDir())
	names := func(state string) (string, string) {
		o := options{state: state}
		if err := o.nameDatabases(); err != nil {
			t.Fatal(err)
		}
		return o.ordersDB, o.projectionDB
	}
	a, ap := names(".playground")
	abs, _ := filepath.Abs(".playground")
	b, bp := names(abs)
	if a != b || ap != bp {
		t.Errorf("the same directory, relative and absolute: %s/%s and %s/%s", a, ap, b, bp)
	}
	c, cp := names(filepath.Join(t.TempDir(), ".playground"))
	if c == a || cp == ap {
		t.Errorf("two checkouts share database names: %s, %s", a, c)
	}
	if !strings.HasPrefix(a, "orders_") || !strings.HasPrefix(ap, "orders_projection_") || len(a) > 63 {
		t.Errorf("names %s, %s", a, ap)
	}
}

// -port-offset moves every port; a taken one is refused before anything
// starts, naming the flag and the variable that move it.
func TestPortsMoveTogetherAndATakenOneIsRefusedBeforeStart(t *testing.T) {
	ports := map[string]*int{}
	for _, p := range playgroundPorts {
		n := p.port
		ports[p.flag] = &n
	}
	var o options
	if err := o.listenOn("127.0.0.1", 100, ports); err != nil {
		t.Fatal(err)
	}
	if o.apiAddr != "127.0.0.1:8180" || o.registryAddr != "127.0.0.1:8181" || o.consumerAddr != "127.0.0.1:8182" ||
		o.issuer != "127.0.0.1:8183" || o.inspectAddr != "127.0.0.1:8190" || o.kafkaPort != 9192 {
		t.Errorf("offset 100: %+v", o)
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	opts := testOptions(t, "taken")
	opts.consumerAddr = taken.Addr().String()
	banner := &strings.Builder{}
	err = run(context.Background(), opts, func(k string) string {
		if k == "DATABASE_URL" {
			return pgtest.ServerURL()
		}
		return os.Getenv(k)
	}, banner, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-consumer-port") || !strings.Contains(err.Error(), "PLAYGROUND_CONSUMER_PORT") ||
		!strings.Contains(err.Error(), "PLAYGROUND_PORT_OFFSET") || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("run with order-consumer's port taken: %v", err)
	}
	if banner.Len() > 0 {
		t.Errorf("a banner was printed: %s", banner)
	}
	// The inspector page's port too.
	opts2 := testOptions(t, "taken_inspect")
	opts2.inspectAddr = taken.Addr().String()
	err = run(context.Background(), opts2, func(k string) string {
		if k == "DATABASE_URL" {
			return pgtest.ServerURL()
		}
		return os.Getenv(k)
	}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-inspect-port") || !strings.Contains(err.Error(), "PLAYGROUND_INSPECT_PORT") {
		t.Errorf("run with the inspector page's port taken: %v", err)
	}
	c, err := pgx.Connect(context.Background(), pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var exists bool
	if err := c.QueryRow(context.Background(), "SELECT count(*) > 0 FROM pg_database WHERE datname = $1", opts.ordersDB).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s was made before the port was refused", opts.ordersDB)
	}
}
