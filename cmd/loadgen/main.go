// Command loadgen drives order-api with a mix of order lifecycles and
// measures what a user of the system sees: how many orders per second are
// accepted, how long each HTTP request takes, and how long each accepted
// change takes to become visible, at the same version, in order-consumer's
// projection (end-to-end: API response → Kafka → consumer → read API).
//
//	loadgen [-url http://localhost:8080] [-consumer-url http://localhost:8082]
//	        [-rate 500] [-concurrency 64] [-duration 60s] [-place-only] [-json]
//	loadgen -limit [-concurrency 32] [-duration 20s] [-pg-url postgres://…] [-json]
//	loadgen -floor [-rate 1000] [-duration 20s] [-pg-url postgres://…] [-json]
//
// The defaults are make bench's (and, with -limit, make bench-limit's), so
// make bench BENCH_ARGS='-rate 250' changes the rate and keeps the rest.
//
// Each lifecycle places an order and then, by chance, pays it (60%) and
// maybe refunds it (30% of those), cancels it (30%), or leaves it placed
// (10%). With -rate, lifecycles start at that many per second (open loop:
// a slow system does not slow the arrivals; lifecycles that find all
// -concurrency workers busy are counted as "late"); without it, each of
// -concurrency workers runs lifecycles back to back (closed loop).
//
// End-to-end latency is sampled (-e2e-sample of the changes, default 0.25):
// for a sampled change, loadgen asks the consumer for the order with
// GET /orders/{id}?min_version=N&wait=…, which answers as soon as the
// projection holds the version N the API returned, and times it from the
// API's response. No polling: the consumer wakes the request when the batch
// holding the event commits, so the figure includes one HTTP round trip to
// the consumer and nothing else.
//
// While running it also scrapes both services' /metrics once a second and
// reports the highest process_resident_memory_bytes each showed.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/cpustat"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if pgURL := os.Getenv(floorServerEnv); pgURL != "" {
		if err := floorServer(pgURL); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen floor server:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	url, consumerURL string
	concurrency      int
	rate             float64
	duration         time.Duration
	e2eSample        float64
	e2eTimeout       time.Duration
	json             bool
	placeOnly        bool
	limit            bool
	floor            bool
	pgURL            string
}

func parse(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.url, "url", "http://localhost:8080", "order-api base URL")
	fs.StringVar(&o.consumerURL, "consumer-url", "http://localhost:8082", "order-consumer base URL (empty: no end-to-end latency)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "workers running order lifecycles (with -limit, default 32)")
	fs.Float64Var(&o.rate, "rate", 500, "lifecycles (orders) started per second; 0: closed loop at -concurrency (-limit is always a closed loop)")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long to generate load (with -limit, default 20s, for each of HTTP and pgbench)")
	fs.Float64Var(&o.e2eSample, "e2e-sample", 0.25, "fraction of accepted changes whose end-to-end latency is measured")
	fs.BoolVar(&o.placeOnly, "place-only", false, "only place orders (no pay, refund or cancel): the load of make bench-limit")
	fs.DurationVar(&o.e2eTimeout, "e2e-timeout", 30*time.Second, "give up on a sampled change not visible after this long (counted as missing; at most 30s)")
	fs.BoolVar(&o.json, "json", false, "print the report as one JSON object")
	fs.BoolVar(&o.limit, "limit", false, "make bench-limit: a closed-loop place-only load through HTTP, then pgbench with the same statement, and their ratio")
	fs.BoolVar(&o.floor, "floor", false, "make bench-floor: the CPU per request of a bare net/http server with one pgx INSERT per request, and without it, at -rate (default 1000) for -duration (default 20s) each")
	fs.StringVar(&o.pgURL, "pg-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "with -limit: the PostgreSQL server pgbench runs on (a scratch database is made there and dropped)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case o.limit && o.floor:
		return o, errors.New("-limit and -floor are two benchmarks: pick one")
	case o.limit: // make bench-limit's defaults, for what the command line leaves out
		if !set["concurrency"] {
			o.concurrency = 32
		}
		if !set["duration"] {
			o.duration = 20 * time.Second
		}
	case o.floor: // make bench-floor's: order-api's request rate under make bench
		if !set["rate"] {
			o.rate = 1000
		}
		if !set["duration"] {
			o.duration = 20 * time.Second
		}
		if o.rate == 0 {
			return o, errors.New("-floor needs a -rate above 0")
		}
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.concurrency < 1:
		return o, errors.New("-concurrency must be at least 1")
	case o.rate < 0:
		return o, errors.New("-rate must not be negative")
	case o.duration <= 0:
		return o, errors.New("-duration must be positive")
	case o.e2eSample < 0 || o.e2eSample > 1:
		return o, errors.New("-e2e-sample must be within [0, 1]")
	case o.e2eTimeout <= 0 || o.e2eTimeout > 30*time.Second:
		return o, errors.New("-e2e-timeout must be within (0, 30s]")
	}
	o.url = strings.TrimRight(o.url, "/")
	o.consumerURL = strings.TrimRight(o.consumerURL, "/")
	return o, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parse(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.limit {
		return runLimit(ctx, o, stdout)
	}
	if o.floor {
		return runFloor(ctx, o, stdout)
	}
	g := newGenerator(o)
	if err := g.preflight(ctx); err != nil {
		return err
	}
	rep := g.run(ctx)
	if o.json {
		return writeJSON(stdout, rep)
	}
	rep.writeText(stdout)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ---- the generator ----

type generator struct {
	o      options
	client *http.Client

	mu        sync.Mutex
	httpLat   map[string][]time.Duration // by operation
	e2eLat    []time.Duration
	statuses  map[string]map[int]int // by operation, then status
	errs      map[string]int         // transport errors, by message
	placed    atomic.Int64
	late      atomic.Int64
	e2eMiss   atomic.Int64 // not visible at the consumer within -e2e-timeout
	e2eRefuse atomic.Int64 // the consumer refused the read (503: too many waiting reads) or failed
	e2eWG     sync.WaitGroup
	rssMax    map[string]float64
	pg        cpustat.PostgresTracker
	rssErrors map[string]string
}

func newGenerator(o options) *generator {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4 * o.concurrency
	tr.MaxIdleConnsPerHost = 4 * o.concurrency
	return &generator{
		o:         o,
		client:    &http.Client{Transport: tr, Timeout: 10 * time.Second},
		httpLat:   map[string][]time.Duration{},
		statuses:  map[string]map[int]int{},
		errs:      map[string]int{},
		rssMax:    map[string]float64{},
		rssErrors: map[string]string{},
	}
}

// preflight fails fast, with a clear message, when a service is not there.
func (g *generator) preflight(ctx context.Context) error {
	urls := []string{g.o.url}
	if g.o.consumerURL != "" {
		urls = append(urls, g.o.consumerURL)
	}
	for _, u := range urls {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/readyz", nil)
		resp, err := g.client.Do(req)
		if err != nil {
			return fmt.Errorf("%s is not reachable (is `make run` running?): %w", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s/readyz answered %s: %s", u, resp.Status, bytes.TrimSpace(body))
		}
	}
	return nil
}

// run generates load until -duration passes. Requests in flight then are
// finished (they use the outer ctx), so every accepted change is counted.
func (g *generator) run(outer context.Context) report {
	ctx, cancel := context.WithTimeout(outer, g.o.duration)
	defer cancel()
	scrapeDone := make(chan struct{})
	go func() { defer close(scrapeDone); g.scrapeRSS(ctx) }()

	cpuBefore, cpuBeforeErrs := g.cpu()
	start := time.Now()
	var wg sync.WaitGroup
	if g.o.rate == 0 {
		for w := range g.o.concurrency {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
				for ctx.Err() == nil {
					g.lifecycle(ctx, outer, rng)
				}
			})
		}
	} else {
		// Open loop: a ticket per lifecycle, handed to a free worker; with
		// none free the lifecycle is late and skipped, so the arrival rate
		// stays what was asked and the report says how much was missed.
		tickets := make(chan struct{})
		for w := range g.o.concurrency {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
				for range tickets {
					g.lifecycle(ctx, outer, rng)
				}
			})
		}
		interval := time.Duration(float64(time.Second) / g.o.rate)
		next := start
	loop:
		for {
			next = next.Add(interval)
			select {
			case <-ctx.Done():
				break loop
			case <-time.After(time.Until(next)):
			}
			select {
			case tickets <- struct{}{}:
			default:
				g.late.Add(1)
			}
		}
		close(tickets)
	}
	wg.Wait()
	elapsed := time.Since(start)
	g.e2eWG.Wait() // sampled changes still on their way are waited for (bounded by -e2e-timeout)
	<-scrapeDone
	cpuAfter, cpuErrs := g.cpu()
	for name, e := range cpuBeforeErrs {
		if _, ok := cpuErrs[name]; !ok {
			cpuErrs[name] = "at the start: " + e
		}
	}
	r := g.report(elapsed)
	r.CPUSeconds, r.CPUPer1000Orders, r.CPUErrors = map[string]float64{}, map[string]float64{}, cpuErrs
	for name, after := range cpuAfter {
		before, ok := cpuBefore[name]
		if !ok {
			continue
		}
		r.CPUSeconds[name] = round(after-before, 2)
		if r.OrdersPlaced > 0 {
			r.CPUPer1000Orders[name] = round((after-before)/float64(r.OrdersPlaced)*1000, 3)
		}
	}
	return r
}

// lifecycle places one order and walks it through a random path; once ctx
// (the run's duration) ends it takes no further step, but the requests use
// reqCtx, so one in flight is answered and counted.
func (g *generator) lifecycle(ctx, reqCtx context.Context, rng *rand.Rand) {
	step := func(op, method, path, body string) (string, int64, bool) {
		if ctx.Err() != nil {
			return "", 0, false
		}
		return g.do(reqCtx, op, method, path, body)
	}
	body := fmt.Sprintf(`{"customer_id":"load-%d","currency":"EUR","items":[{"sku":"SKU-%d","quantity":%d,"unit_price_minor":%d}]}`,
		rng.IntN(1000), rng.IntN(50), 1+rng.IntN(3), 100+rng.IntN(10000))
	id, version, ok := step("place", http.MethodPost, "/orders", body)
	if !ok {
		return
	}
	g.placed.Add(1)
	g.sample(id, version, rng)
	if g.o.placeOnly {
		return
	}
	p := rng.Float64()
	switch {
	case p < 0.6:
		_, v, ok := step("pay", http.MethodPost, "/orders/"+id+"/pay", `{"payment_reference":"pay-load"}`)
		if !ok {
			return
		}
		g.sample(id, v, rng)
		if rng.Float64() < 0.3 {
			if _, v, ok := step("refund", http.MethodPost, "/orders/"+id+"/refund", ""); ok {
				g.sample(id, v, rng)
			}
		}
	case p < 0.9:
		if _, v, ok := step("cancel", http.MethodPost, "/orders/"+id+"/cancel", ""); ok {
			g.sample(id, v, rng)
		}
	}
}

// do sends one request and records its latency and status; ok means the
// change was accepted (2xx), with the order's ID and new version.
func (g *generator) do(ctx context.Context, op, method, path, body string) (id string, version int64, ok bool) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.o.url+path, rd)
	if err != nil {
		return "", 0, false
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := g.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			g.mu.Lock()
			g.errs[err.Error()]++
			g.mu.Unlock()
		}
		return "", 0, false
	}
	var o struct {
		ID      string `json:"id"`
		Version int64  `json:"version"`
	}
	decodeErr := json.NewDecoder(resp.Body).Decode(&o)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	lat := time.Since(start)
	g.mu.Lock()
	g.httpLat[op] = append(g.httpLat[op], lat)
	if g.statuses[op] == nil {
		g.statuses[op] = map[int]int{}
	}
	g.statuses[op][resp.StatusCode]++
	g.mu.Unlock()
	ok = resp.StatusCode/100 == 2 && decodeErr == nil && o.ID != "" && o.Version > 0
	return o.ID, o.Version, ok
}

// sample, for a fraction of accepted changes, waits in the background until
// the consumer's projection of order id reaches version, and records how long
// that took from the API's response.
func (g *generator) sample(id string, version int64, rng *rand.Rand) {
	if g.o.consumerURL == "" || rng.Float64() >= g.o.e2eSample {
		return
	}
	accepted := time.Now()
	g.e2eWG.Go(func() {
		v, err := g.projected(id, version)
		if err != nil {
			g.e2eRefuse.Add(1)
			return
		}
		if v < version {
			g.e2eMiss.Add(1)
			return
		}
		lat := time.Since(accepted)
		g.mu.Lock()
		g.e2eLat = append(g.e2eLat, lat)
		g.mu.Unlock()
	})
}

// projected asks the consumer for order id, waiting for version; it returns
// the version it got (lower than asked if e2eTimeout passed first).
func (g *generator) projected(id string, version int64) (int64, error) {
	u := fmt.Sprintf("%s/orders/%s?min_version=%d&wait=%s", g.o.consumerURL, id, version, g.o.e2eTimeout)
	c := *g.client
	c.Timeout = g.o.e2eTimeout + 5*time.Second
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return 0, fmt.Errorf("%s", resp.Status)
	}
	var o struct {
		Version int64 `json:"version"`
	}
	err = json.NewDecoder(resp.Body).Decode(&o)
	return o.Version, err
}

// targets are the services measured, by name.
func (g *generator) targets() map[string]string {
	t := map[string]string{"order-api": g.o.url}
	if g.o.consumerURL != "" {
		t["order-consumer"] = g.o.consumerURL
	}
	return t
}

// scrapeRSS reads process_resident_memory_bytes from each service's
// /metrics once a second until ctx ends, keeping the highest.
func (g *generator) scrapeRSS(ctx context.Context) {
	targets := g.targets()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		_ = g.pg.Sample() // PostgreSQL's processes each second too (see cpustat.PostgresTracker); cpu reports a failure
		for name, u := range targets {
			v, err := residentMemory(g.client, u+"/metrics")
			g.mu.Lock()
			if err != nil {
				g.rssErrors[name] = err.Error()
			} else if v > g.rssMax[name] {
				g.rssMax[name] = v
			}
			g.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func residentMemory(c *http.Client, url string) (float64, error) {
	return metricValue(c, url, "process_resident_memory_bytes")
}

// metricValue reads the unlabelled sample name from the /metrics at url.
func metricValue(c *http.Client, url, name string) (float64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// ---- the report ----

type latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

type report struct {
	DurationSeconds float64 `json:"duration_seconds"`
	Concurrency     int     `json:"concurrency"`
	TargetRate      float64 `json:"target_rate,omitempty"`
	OrdersPlaced    int64   `json:"orders_placed"`
	OrdersPerSecond float64 `json:"orders_per_second"`
	Requests        int     `json:"requests"`
	RequestsPerSec  float64 `json:"requests_per_second"`
	// LateLifecycles are lifecycles -rate asked for that found every worker busy.
	LateLifecycles int64                     `json:"late_lifecycles"`
	Statuses       map[string]map[string]int `json:"statuses"`
	TransportErrs  map[string]int            `json:"transport_errors,omitempty"`
	HTTP           latency                   `json:"http_latency"`
	HTTPByOp       map[string]latency        `json:"http_latency_by_operation"`
	EndToEnd       latency                   `json:"end_to_end_latency"`
	E2EMissing     int64                     `json:"end_to_end_missing"`
	E2ERefused     int64                     `json:"end_to_end_refused"` // reads the consumer refused or that failed: not measured, not missing
	E2ESample      float64                   `json:"end_to_end_sample"`
	RSSMaxMiB      map[string]float64        `json:"rss_max_mib"`
	RSSErrors      map[string]string         `json:"rss_errors,omitempty"`
	// CPUSeconds is the CPU each process used from the first order to the
	// last sampled change seen at the consumer; CPUPer1000Orders divides it
	// by the orders placed (a lifecycle's further requests included).
	CPUSeconds       map[string]float64 `json:"cpu_seconds"`
	CPUPer1000Orders map[string]float64 `json:"cpu_seconds_per_1000_orders"`
	CPUErrors        map[string]string  `json:"cpu_errors,omitempty"`
}

func (g *generator) report(elapsed time.Duration) report {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := report{
		DurationSeconds: elapsed.Seconds(),
		Concurrency:     g.o.concurrency,
		TargetRate:      g.o.rate,
		OrdersPlaced:    g.placed.Load(),
		LateLifecycles:  g.late.Load(),
		Statuses:        map[string]map[string]int{},
		TransportErrs:   g.errs,
		HTTPByOp:        map[string]latency{},
		EndToEnd:        summarize(g.e2eLat),
		E2EMissing:      g.e2eMiss.Load(),
		E2ERefused:      g.e2eRefuse.Load(),
		E2ESample:       g.o.e2eSample,
		RSSMaxMiB:       map[string]float64{},
		RSSErrors:       g.rssErrors,
	}
	var all []time.Duration
	for op, ls := range g.httpLat {
		all = append(all, ls...)
		r.HTTPByOp[op] = summarize(ls)
	}
	r.HTTP = summarize(all)
	r.Requests = len(all)
	for op, st := range g.statuses {
		r.Statuses[op] = map[string]int{}
		for code, n := range st {
			r.Statuses[op][strconv.Itoa(code)] = n
		}
	}
	r.OrdersPerSecond = float64(r.OrdersPlaced) / elapsed.Seconds()
	r.RequestsPerSec = float64(r.Requests) / elapsed.Seconds()
	for name, v := range g.rssMax {
		r.RSSMaxMiB[name] = round(v/(1<<20), 1)
	}
	return r
}

func summarize(ls []time.Duration) latency {
	if len(ls) == 0 {
		return latency{}
	}
	s := slices.Clone(ls)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(p*float64(len(s))+0.5) - 1 // nearest rank
		i = min(max(i, 0), len(s)-1)
		return round(float64(s[i])/float64(time.Millisecond), 2)
	}
	return latency{Count: len(s), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: q(1)}
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

func (r report) writeText(w io.Writer) {
	mode := fmt.Sprintf("closed loop, %d workers", r.Concurrency)
	if r.TargetRate > 0 {
		mode = fmt.Sprintf("open loop at %.0f orders/s, %d workers", r.TargetRate, r.Concurrency)
	}
	fmt.Fprintf(w, "loadgen: %.1fs, %s\n", r.DurationSeconds, mode)
	fmt.Fprintf(w, "  orders placed      %d (%.1f orders/s), %d requests (%.1f/s), %d late lifecycles\n",
		r.OrdersPlaced, r.OrdersPerSecond, r.Requests, r.RequestsPerSec, r.LateLifecycles)
	ops := make([]string, 0, len(r.Statuses))
	for op := range r.Statuses {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		fmt.Fprintf(w, "  %-18s statuses %v, latency %s\n", op, r.Statuses[op], r.HTTPByOp[op])
	}
	fmt.Fprintf(w, "  HTTP latency       %s\n", r.HTTP)
	fmt.Fprintf(w, "  end-to-end latency %s (API response → same version at the consumer; %g of changes sampled; %d missing)\n",
		r.EndToEnd, r.E2ESample, r.E2EMissing)
	if r.E2ERefused > 0 {
		fmt.Fprintf(w, "  end-to-end reads   %d refused or failed (503: more than HTTP_MAX_WAITING_READS waiting): not measured\n", r.E2ERefused)
	}
	names := make([]string, 0, len(r.RSSMaxMiB))
	for n := range r.RSSMaxMiB {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  max RSS            %s %.1f MiB\n", n, r.RSSMaxMiB[n])
	}
	for n, e := range r.RSSErrors {
		fmt.Fprintf(w, "  RSS of %s not read: %s\n", n, e)
	}
	cpuNames := slices.Sorted(maps.Keys(r.CPUPer1000Orders))
	for _, n := range cpuNames {
		fmt.Fprintf(w, "  CPU per 1,000 orders %s %.3fs (%.2fs in all)\n", n, r.CPUPer1000Orders[n], r.CPUSeconds[n])
	}
	for n, e := range r.CPUErrors {
		fmt.Fprintf(w, "  CPU of %s not read: %s\n", n, e)
	}
	for e, n := range r.TransportErrs {
		fmt.Fprintf(w, "  transport error ×%d: %s\n", n, e)
	}
}

func (l latency) String() string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %.2fms  p95 %.2fms  p99 %.2fms  max %.2fms  (n=%d)", l.P50, l.P95, l.P99, l.Max, l.Count)
}
