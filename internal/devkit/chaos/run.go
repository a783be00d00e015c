// Package chaos runs the real order-api and order-consumer binaries, two
// replicas each, with the embedded broker and registry as processes of
// their own and a PostgreSQL cluster of its own, drives a lifecycle load
// through them while it injects faults on a schedule (processes killed or
// paused, PostgreSQL restarted or cut, the broker and the registry down,
// the network slowed, reset or black-holed through toxiproxy, partitions
// added, a rolling restart), and then checks three independent records of
// what happened against each other: the client's log of what the API
// acknowledged, the topic, and the consumer's ledger and projection.
// cmd/chaos is its command line (make chaos); docs/reliability.md says
// what each figure means.
package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
)

// Config configures Run.
type Config struct {
	Bins     Binaries
	Dir      string        // where each scenario keeps its logs and data; removed after unless Keep
	Seed     uint64        // the fault schedule and the load's choices
	Duration time.Duration // of the load, per scenario
	Rate     float64       // order lifecycles started per second
	Keep     bool          // leave Dir (and the stopped cluster) for inspection
	// Corrupt, when set, names corruptions applied to each finished run
	// before it is checked again (the checker's self-check, -corrupt).
	Corrupt []Corruption
	Logf    func(format string, args ...any)
}

// Result is one scenario's run.
type Result struct {
	Scenario  string
	Seed      uint64
	Faults    []Fault
	Verdict   Verdict
	Converged bool
	// ConvergedAfter is the time from the last fault healed to the
	// projection caught up: holding every order of the orders table at its
	// version while the load goes on, or, if that never happened before
	// the load stopped, equal to it after.
	ConvergedAfter time.Duration
	Elapsed        time.Duration
	Err            error    // the run itself failed (a fault could not be injected, a process would not start)
	Corrupted      []string // the corruptions applied before the verdict, with what each damaged
}

// Failed lists the figures that broke a guarantee, and "error" if the run
// itself failed.
func (r Result) Failed() []string {
	out := r.Verdict.Failed()
	if !r.Converged && !contains(out, FigConverged) {
		out = append(out, FigConverged)
	}
	if r.Err != nil {
		out = append(out, "error")
	}
	return out
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// Run runs the scenarios one after another, each on a fresh stack, and
// returns their results. The PostgreSQL cluster is the run's own, made in
// Dir and stopped at the end.
func Run(ctx context.Context, cfg Config, scenarios []Scenario) ([]Result, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	pg, err := devstack.StartCluster(ctx, cfg.Logf, devstack.ClusterDir(filepath.Join(cfg.Dir, "cluster")), !cfg.Keep)
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	defer func() {
		if err := pg.Stop(); err != nil {
			cfg.Logf("stop PostgreSQL: %v", err)
		}
		if !cfg.Keep {
			_ = os.RemoveAll(cfg.Dir)
		}
	}()
	var results []Result
	for _, sc := range scenarios {
		if ctx.Err() != nil {
			break
		}
		began := time.Now()
		res, st, _ := runScenario(ctx, cfg, sc, pg, ScenarioSeed(cfg.Seed, sc.Name))
		res.Elapsed = time.Since(began)
		if st != nil {
			st.close()
		}
		results = append(results, res)
	}
	return results, ctx.Err()
}

// ScenarioSeed is the seed a scenario runs with in a run seeded seed: the
// same whichever scenarios run with it, so that -scenario X -seed S
// replays X as a full run with seed S ran it.
func ScenarioSeed(seed uint64, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return seed ^ h.Sum64()
}

// runScenario runs one scenario and leaves its stack running for the
// caller to close (the self-test corrupts it first).
func runScenario(ctx context.Context, cfg Config, sc Scenario, pg *devstack.Cluster, seed uint64) (Result, *stack, *Records) {
	res := Result{Scenario: sc.Name, Seed: seed}
	dir := filepath.Join(cfg.Dir, sc.Name)
	_ = os.RemoveAll(dir)
	cfg.Logf("%s: starting 2 order-api, 2 order-consumer, the broker and the registry (logs in %s)", sc.Name, dir)
	st, err := newStack(ctx, cfg.Bins, pg, dir, sc.Name)
	if err != nil {
		res.Err = err
		return res, nil, nil
	}
	if l := st.waitLeader(ctx, 15*time.Second); l == nil {
		res.Err = errors.New("no order-api replica took the relay's lead within 15s")
		return res, st, nil
	}

	ld := &load{apis: []string{st.apis[0].front, st.apis[1].front}, rate: cfg.Rate, seed: seed,
		prefix: fmt.Sprintf("chaos-%s-%d", sc.Name, seed),
		client: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
			DialContext: (&net.Dialer{Timeout: time.Second}).DialContext, MaxIdleConnsPerHost: 32}}}
	f := &faulter{s: st, rnd: rand.New(rand.NewPCG(seed, 0xfa017)), start: time.Now(), d: cfg.Duration}
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		ld.run(loadCtx)
		close(loadDone)
	}()
	cfg.Logf("%s: load at %.0f orders/s for %s, faults on schedule (seed %d)", sc.Name, cfg.Rate, cfg.Duration, seed)
	faultErr := sc.run(ctx, f)
	res.Faults = f.recorded()
	lastHeal := f.start
	for _, fl := range res.Faults {
		if t := f.start.Add(fl.Healed); t.After(lastHeal) {
			lastHeal = t
		}
	}
	// While the load goes on, the projection has caught up once it holds
	// every order of a snapshot of the orders table at its version or later.
	caught := make(chan time.Time, 1)
	go func() { caught <- waitFor(loadCtx, st, 0, caughtUp) }()
	hold(ctx, time.Until(f.start.Add(cfg.Duration)))
	stopLoad()
	<-loadDone
	caughtAt := <-caught
	if faultErr != nil {
		res.Err = faultErr
	}
	cfg.Logf("%s: load stopped; waiting for the projection to equal the orders table", sc.Name)
	convergedAt := waitFor(ctx, st, 90*time.Second, equal)
	res.Converged = !convergedAt.IsZero()
	if caughtAt.IsZero() {
		caughtAt = convergedAt
	}
	if res.Converged {
		res.ConvergedAfter = caughtAt.Sub(lastHeal)
	}
	if len(ld.errs) > 0 {
		res.Err = errors.Join(res.Err, fmt.Errorf("the API broke its contract: %w", errors.Join(ld.errs...)))
	}
	recs, err := collect(ctx, st.kafkaProxy(), st.registryURL, topic, st.ordersURL, st.projectionURL)
	if err != nil {
		res.Err = errors.Join(res.Err, fmt.Errorf("collect the records: %w", err))
		return res, st, nil
	}
	recs.Requests = ld.requests()
	res.Verdict = Check(recs)
	if err := writeJSONLines(filepath.Join(dir, "requests.jsonl"), recs.Requests); err != nil {
		cfg.Logf("%s: write the client's log: %v", sc.Name, err)
	}
	if len(cfg.Corrupt) > 0 {
		if err := corruptRun(ctx, cfg, st, recs, &res); err != nil {
			res.Err = errors.Join(res.Err, fmt.Errorf("corrupt the run: %w", err))
		}
	}
	return res, st, recs
}

// corruptRun stops the replicas, applies cfg.Corrupt to the finished run
// and checks it again: the verdict is then the corrupted run's.
func corruptRun(ctx context.Context, cfg Config, st *stack, recs *Records, res *Result) error {
	if err := st.stopReplicas(); err != nil {
		return err
	}
	c, err := newCorrupter(st, recs)
	if err != nil {
		return err
	}
	for _, k := range cfg.Corrupt {
		mentions, err := k.apply(ctx, c)
		if err != nil {
			return fmt.Errorf("%s: %w", k.Name, err)
		}
		res.Corrupted = append(res.Corrupted, fmt.Sprintf("%s (%s: %s)", k.Name, k.Doc, mentions))
	}
	v, err := c.recheck(ctx)
	if err != nil {
		return err
	}
	res.Verdict = v
	return nil
}

// waitFor polls cond every 200 ms until it holds, ctx ends, or limit (if
// not 0) passes; it returns when it saw cond hold, or the zero time.
func waitFor(ctx context.Context, st *stack, limit time.Duration, cond func(orders, projection map[uuid.UUID]State, outbox, parked int) bool) time.Time {
	var deadline time.Time
	if limit > 0 {
		deadline = time.Now().Add(limit)
	}
	for {
		if o, p, outbox, parked, err := snapshot(ctx, st); err == nil && cond(o, p, outbox, parked) {
			return time.Now()
		}
		if (limit > 0 && time.Now().After(deadline)) || ctx.Err() != nil {
			return time.Time{}
		}
		hold(ctx, 200*time.Millisecond)
	}
}

// equal: every order of the orders table is in the projection at the same
// version and status, nothing else is there, and nothing is left in the
// outbox or parked.
func equal(orders, projection map[uuid.UUID]State, outbox, parked int) bool {
	if outbox > 0 || parked > 0 || len(orders) != len(projection) {
		return false
	}
	for id, o := range orders {
		if projection[id] != o {
			return false
		}
	}
	return true
}

// caughtUp: the projection, read after the orders table, holds each of its
// orders at that version or later.
func caughtUp(orders, projection map[uuid.UUID]State, _, _ int) bool {
	for id, o := range orders {
		if projection[id].Version < o.Version {
			return false
		}
	}
	return true
}

// snapshot reads the orders table, then the projection.
func snapshot(ctx context.Context, st *stack) (orders, projection map[uuid.UUID]State, outbox, parked int, err error) {
	err = withDB(ctx, st.ordersURL, func(c *pgx.Conn) error {
		var err error
		if orders, err = states(ctx, c, "SELECT id, version, status FROM orders"); err != nil {
			return err
		}
		return c.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&outbox)
	})
	if err != nil {
		return
	}
	err = withDB(ctx, st.projectionURL, func(c *pgx.Conn) error {
		var err error
		if projection, err = states(ctx, c, "SELECT id, version, status FROM order_projection"); err != nil {
			return err
		}
		return c.QueryRow(ctx, "SELECT count(*) FROM parked_events").Scan(&parked)
	})
	return
}

func writeJSONLines[T any](path string, items []T) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// Print writes the results as one table, then each scenario's faults and
// the first examples of anything that failed.
func Print(w io.Writer, results []Result) {
	fmt.Fprintf(w, "\n%-10s %7s %6s %13s %4s %7s %6s %9s %5s %4s %10s  %s\n",
		"scenario", "orders", "faults", "in doubt a/n", "lost", "phantom", "double", "reordered", "dups", "dlq", "converged", "result")
	for _, r := range results {
		v := r.Verdict
		conv := "never"
		if r.Converged {
			conv = fmt.Sprintf("%.1fs", r.ConvergedAfter.Seconds())
		}
		result := "ok"
		if failed := r.Failed(); len(failed) > 0 {
			result = fmt.Sprintf("FAIL %v", failed)
		}
		fmt.Fprintf(w, "%-10s %7d %6d %13s %4d %7d %6d %9d %5d %4d %10s  %s\n", r.Scenario, v.Orders, len(r.Faults),
			fmt.Sprintf("%d (%d/%d)", v.InDoubt, v.InDoubtApplied, v.InDoubtNotApplied),
			v.Lost, v.Phantom, v.DoubleApplied, v.Reordered, v.Duplicates, v.DeadLetters, conv, result)
	}
	for _, r := range results {
		fmt.Fprintf(w, "\n%s (scenario seed %d, %.0fs in all): %d requests, %d events on %d partitions, %d orders on more than one\n",
			r.Scenario, r.Seed, r.Elapsed.Seconds(), r.Verdict.Requests, r.Verdict.Events, r.Verdict.Partitions, r.Verdict.Moved)
		for _, f := range r.Faults {
			fmt.Fprintf(w, "  %6.1fs–%5.1fs  %s: %s\n", f.At.Seconds(), f.Healed.Seconds(), f.Kind, f.Target)
		}
		for _, c := range r.Corrupted {
			fmt.Fprintf(w, "  corrupted on purpose: %s\n", c)
		}
		if r.Err != nil {
			fmt.Fprintf(w, "  error: %v\n", r.Err)
		}
		for _, fig := range []string{FigLost, FigPhantom, FigDoubleApplied, FigReordered, FigDeadLetters, FigConverged} {
			for _, ex := range r.Verdict.Examples[fig] {
				fmt.Fprintf(w, "  %s: %s\n", fig, ex)
			}
		}
	}
}
