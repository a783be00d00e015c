package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
)

// The README's quickstart works as written: its block, run with bash against
// the playground (only the host:port of the two APIs moved to the test's),
// prints what the README says it prints, and again when run a second time
// in a row (a fresh Idempotency-Key and a new order each run).
func TestTheREADMEQuickstartWorksAsWritten(t *testing.T) {
	t.Parallel()
	script, want := quickstart(t, "../../README.md")
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("the quickstart test runs the README's block with bash, which is not on PATH")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the quickstart test runs the README's block, which needs curl, not on PATH")
	}

	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	opts := options{state: t.TempDir(), registryAddr: "127.0.0.1:0", apiAddr: freeAddr(t), consumerAddr: freeAddr(t),
		issuer: "127.0.0.1:0", ordersDB: "playground_quickstart_" + suffix, projectionDB: "playground_quickstart_projection_" + suffix}
	t.Cleanup(func() {
		pgtest.Admin(t, "DROP DATABASE IF EXISTS "+opts.ordersDB+" WITH (FORCE)")
		pgtest.Admin(t, "DROP DATABASE IF EXISTS "+opts.projectionDB+" WITH (FORCE)")
	})
	script = pointAt(t, script, map[string]string{"localhost:8080": opts.apiAddr, "localhost:8082": opts.consumerAddr})

	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return pgtest.ServerURL()
		}
		return os.Getenv(k)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	banner, logs := stacktest.NewLog(t), stacktest.NewLog(t) // printed if the test fails
	result := make(chan error, 1)
	go func() { result <- run(ctx, opts, getenv, banner, logs) }()
	for _, addr := range []string{opts.apiAddr, opts.consumerAddr} {
		stacktest.WaitFor(t, addr+" to be ready", 60*time.Second, func() bool {
			select {
			case err := <-result:
				t.Fatalf("the playground stopped before it was ready: %v", err)
			default:
			}
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}

	for i := 1; i <= 2; i++ {
		rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
		cmd := exec.CommandContext(rctx, bash, "--noprofile", "--norc", "-c", script)
		// The APIs are on this machine: a proxy in the environment must not
		// stand in between.
		cmd.Env = append(os.Environ(), "NO_PROXY=*", "no_proxy=*")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		rcancel()
		if err != nil {
			t.Fatalf("run %d of the quickstart: %v\nstdout:\n%s\nstderr:\n%s", i, err, out, stderr.String())
		}
		if problems := matchOutput(string(out), want); len(problems) > 0 {
			t.Fatalf("run %d of the quickstart does not print what the README shows:\n%s\nit printed:\n%s\nstderr:\n%s\nthe README shows:\n%s",
				i, strings.Join(problems, "\n"), out, stderr.String(), strings.Join(want, "\n"))
		}
	}

	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("the playground after Ctrl-C: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the playground did not stop")
	}
}

// quickstart returns the README's quickstart: the first ```sh block after the
// "## Quickstart" heading, and the lines of the first ```text block after it,
// which is what the block prints.
func quickstart(t *testing.T, readme string) (script string, output []string) {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## Quickstart\n")
	if start < 0 {
		t.Fatalf("%s has no ## Quickstart section", readme)
	}
	text = text[start:]
	if end := strings.Index(text[1:], "\n## "); end > 0 {
		text = text[:end+1]
	}
	block := func(fence string) string {
		i := strings.Index(text, "\n"+fence+"\n")
		if i < 0 {
			t.Fatalf("%s's ## Quickstart has no %s block", readme, fence)
		}
		body := text[i+len(fence)+2:]
		j := strings.Index(body, "\n```")
		if j < 0 {
			t.Fatalf("%s's ## Quickstart: the %s block is not closed", readme, fence)
		}
		text = body[j+4:]
		return body[:j+1]
	}
	script = block("```sh")
	output = strings.Split(strings.TrimRight(block("```text"), "\n"), "\n")
	return script, output
}

// pointAt replaces each host:port of addrs in script with the test's, and
// fails if one is missing or another localhost address remains: the block
// must never reach a developer's running playground instead of the test's.
func pointAt(t *testing.T, script string, addrs map[string]string) string {
	t.Helper()
	for from, to := range addrs {
		if !strings.Contains(script, from) {
			t.Fatalf("the quickstart no longer uses %s; this test points it at its own playground:\n%s", from, script)
		}
		script = strings.ReplaceAll(script, from, to)
	}
	if strings.Contains(script, "localhost") {
		t.Fatalf("the quickstart uses a localhost address this test does not replace:\n%s", script)
	}
	return script
}

// matchOutput compares what the block printed, line by line, with the lines
// the README shows, in which "…" stands for text that differs each run (at
// least one character). It returns what does not match.
func matchOutput(got string, want []string) []string {
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(got, "\r", ""), "\n"), "\n")
	var problems []string
	if len(lines) != len(want) {
		problems = append(problems, fmt.Sprintf("%d lines, the README shows %d", len(lines), len(want)))
	}
	for i := 0; i < min(len(lines), len(want)); i++ {
		parts := strings.Split(want[i], "…")
		for j, p := range parts {
			parts[j] = regexp.QuoteMeta(p)
		}
		if re := regexp.MustCompile("^" + strings.Join(parts, ".+") + "$"); !re.MatchString(lines[i]) {
			problems = append(problems, fmt.Sprintf("line %d is %q, the README shows %q", i+1, lines[i], want[i]))
		}
	}
	return problems
}
