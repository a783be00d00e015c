package chaos

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
)

func TestMain(m *testing.M) {
	RunChildIfAsked() // this test binary is also the broker and the registry
	os.Exit(m.Run())
}

// buildServices builds order-api and order-consumer once, as make chaos
// does (with -race when this test has it, reusing its compiled packages).
func buildServices(t *testing.T) Binaries {
	t.Helper()
	goBin := "go"
	for _, root := range []string{os.Getenv("GOROOT"), runtime.GOROOT()} {
		if p := filepath.Join(root, "bin", "go"); root != "" && isFile(p) {
			goBin = p
			break
		}
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	if raceEnabled {
		args = append(args, "-race")
	}
	began := time.Now()
	cmd := exec.Command(goBin, append(args, "github.com/ordersonkafka/orders/cmd/order-api", "github.com/ordersonkafka/orders/cmd/order-consumer")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built order-api and order-consumer in %s", time.Since(began).Round(time.Millisecond))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Binaries{API: filepath.Join(dir, "order-api"), Consumer: filepath.Join(dir, "order-consumer"), Self: []string{self}}
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// TestTheKillScenarioPassesAndTheCheckerCatchesEachCorruption runs the
// kill scenario for a few seconds against the real binaries (the suite
// cannot rot unseen), then corrupts the finished run, one record at a
// time, and checks that each corruption fails its figure, by name.
func TestTheKillScenarioPassesAndTheCheckerCatchesEachCorruption(t *testing.T) {
	ctx := context.Background()
	cfg := Config{Bins: buildServices(t), Dir: t.TempDir(), Seed: 7, Duration: 5 * time.Second, Rate: 10, Logf: t.Logf}
	pg, err := devstack.StartCluster(ctx, t.Logf, devstack.ClusterDir(filepath.Join(cfg.Dir, "cluster")), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	sc, _ := ScenarioNamed("kill")
	res, st, recs := runScenario(ctx, cfg, sc, pg, cfg.Seed)
	if st != nil {
		t.Cleanup(st.close)
	}
	if res.Err != nil {
		t.Fatalf("the run failed: %v", res.Err)
	}
	var kinds []string
	for _, f := range res.Faults {
		kinds = append(kinds, f.Kind)
	}
	if !slices.Equal(kinds, []string{"kill relay leader", "kill consumer"}) {
		t.Errorf("faults injected: %q, want the relay leader and a consumer killed", kinds)
	}
	v := res.Verdict
	if failed := res.Failed(); len(failed) > 0 {
		var b strings.Builder
		Print(&b, []Result{res})
		t.Fatalf("the kill scenario failed %v:\n%s", failed, b.String())
	}
	if v.Orders < 20 || v.Events < v.Orders {
		t.Fatalf("%d orders acknowledged, %d events on the topic: too few to tell anything", v.Orders, v.Events)
	}
	t.Logf("kill: %d orders, %d requests (%d in doubt), %d events, %d duplicates, converged %.1fs after the last fault",
		v.Orders, v.Requests, v.InDoubt, v.Events, v.Duplicates, res.ConvergedAfter.Seconds())

	// The checker's self-test: the finished run corrupted one record at a
	// time, each corruption failing its figure by name and moving no
	// other figure's count. Nothing may relay or consume what follows.
	if err := st.stopReplicas(); err != nil {
		t.Fatal(err)
	}
	c, err := newCorrupter(st, recs)
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.recheck(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if failed := before.Failed(); len(failed) > 0 {
		t.Fatalf("the records read again fail %v before any corruption", failed)
	}
	counts := func(v Verdict) map[string]int {
		return map[string]int{FigLost: v.Lost, FigPhantom: v.Phantom, FigDoubleApplied: v.DoubleApplied,
			FigReordered: v.Reordered, FigDeadLetters: v.DeadLetters, FigConverged: v.Differ}
	}
	// Deleting a projection row also leaves it unequal to the orders table.
	also := map[string][]string{"projection-row": {FigConverged}}
	var want []string
	for _, k := range Corruptions {
		mentions, err := k.apply(ctx, c)
		if err != nil {
			t.Fatalf("%s: %v", k.Name, err)
		}
		got, err := c.recheck(ctx)
		if err != nil {
			t.Fatal(err)
		}
		moves := append([]string{k.Figure}, also[k.Name]...)
		want = uniq(append(want, moves...))
		was, is := counts(before), counts(got)
		for f := range is {
			if moved := is[f] != was[f]; moved != slices.Contains(moves, f) {
				t.Errorf("%s: %s went from %d to %d", k.Name, f, was[f], is[f])
			}
		}
		if failed := got.Failed(); !slices.Equal(uniq(failed), want) {
			t.Errorf("%s: figures failed %v, want %v", k.Name, failed, want)
		}
		if !strings.Contains(strings.Join(got.Examples[k.Figure], "\n"), mentions) {
			t.Errorf("%s: %q examples %q do not name %s", k.Name, k.Figure, got.Examples[k.Figure], mentions)
		}
		before = got
	}
}

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
