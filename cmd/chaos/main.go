// Command chaos runs the fault-injection suite (make chaos): for each
// scenario, the real order-api and order-consumer binaries, two replicas
// each, with the embedded broker and registry as processes of their own
// and a PostgreSQL cluster of its own, under a lifecycle load while faults
// are injected on a schedule; then a checker reads what the API
// acknowledged, the topic, and the consumer's ledger and projection, and
// prints one table. It exits 1 if any figure breaks a guarantee.
// docs/reliability.md says what each scenario does and each figure means.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/chaos"
)

func main() {
	chaos.RunChildIfAsked() // the broker and the registry are this binary too

	fs := flag.NewFlagSet("chaos", flag.ExitOnError)
	var names []string
	for _, s := range chaos.Scenarios {
		names = append(names, s.Name)
	}
	scenario := fs.String("scenario", "", "run only these scenarios, comma-separated: "+strings.Join(names, ", "))
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()%1e6), "seed of the fault schedule and the load: the same seed, the same schedule")
	duration := fs.Duration("duration", 20*time.Second, "how long the load runs in each scenario (faults are placed within it)")
	rate := fs.Float64("rate", 25, "order lifecycles started per second")
	keep := fs.Bool("keep", false, "keep the logs, the client's log, the broker's data and the PostgreSQL cluster in -dir for inspection")
	dir := fs.String("dir", ".chaos", "working directory (each scenario's logs and data; removed after the run unless -keep)")
	bin := fs.String("bin", "bin", "directory holding order-api and order-consumer (make chaos builds them)")
	list := fs.Bool("list", false, "list the scenarios and the corruptions, and exit")
	var corruptions []string
	for _, c := range chaos.Corruptions {
		corruptions = append(corruptions, c.Name)
	}
	corrupt := fs.String("corrupt", "", "the checker's self-check: after each run, stop the replicas, damage the records on purpose and check again (the run must then fail): comma-separated, or all: "+strings.Join(corruptions, ", "))
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "chaos: unexpected arguments %q (see -h)\n", fs.Args())
		os.Exit(2)
	}
	if *list {
		for _, s := range chaos.Scenarios {
			fmt.Printf("%-10s %s\n", s.Name, s.Doc)
		}
		fmt.Println("\ncorruptions (-corrupt):")
		for _, c := range chaos.Corruptions {
			fmt.Printf("%-17s %s: must fail %q\n", c.Name, c.Doc, c.Figure)
		}
		return
	}
	scs := chaos.Scenarios
	if *scenario != "" {
		scs = pick(*scenario, "scenario", names, chaos.ScenarioNamed)
	}
	var damage []chaos.Corruption
	switch *corrupt {
	case "":
	case "all":
		damage = chaos.Corruptions
	default:
		damage = pick(*corrupt, "corruption", append(corruptions, "all"), chaos.CorruptionNamed)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	bins := chaos.Binaries{API: filepath.Join(*bin, "order-api"), Consumer: filepath.Join(*bin, "order-consumer"), Self: []string{self}}
	for _, b := range []string{bins.API, bins.Consumer} {
		if _, err := os.Stat(b); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: %v (make chaos builds the binaries into bin/; or give -bin)\n", err)
			os.Exit(2)
		}
		if abs, err := filepath.Abs(b); err == nil {
			if b == bins.API {
				bins.API = abs
			} else {
				bins.Consumer = abs
			}
		}
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s chaos: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	results, err := chaos.Run(ctx, chaos.Config{Bins: bins, Dir: absDir, Seed: *seed, Duration: *duration, Rate: *rate, Keep: *keep, Corrupt: damage, Logf: logf}, scs)
	chaos.Print(os.Stdout, results)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	failed := 0
	for _, r := range results {
		if len(r.Failed()) > 0 {
			failed++
		}
	}
	if *keep {
		fmt.Printf("\nkept in %s: each scenario's logs, requests.jsonl (the client's log) and broker data; the PostgreSQL cluster in %s/cluster (pg_ctl -D %s/cluster/data start)\n", absDir, absDir, absDir)
	}
	if failed > 0 {
		fmt.Printf("\n%d of %d scenarios failed (seed %d)\n", failed, len(results), *seed)
		os.Exit(1)
	}
	fmt.Printf("\nall %d scenarios passed (seed %d)\n", len(results), *seed)
}

// pick is the items a comma-separated list names; a name that is none of
// them ends the command, listing the choices.
func pick[T any](list, what string, choices []string, named func(string) (T, bool)) []T {
	var out []T
	for _, n := range strings.Split(list, ",") {
		v, ok := named(strings.TrimSpace(n))
		if !ok {
			fmt.Fprintf(os.Stderr, "chaos: no %s %q; there are %s\n", what, n, strings.Join(choices, ", "))
			os.Exit(2)
		}
		out = append(out, v)
	}
	return out
}
