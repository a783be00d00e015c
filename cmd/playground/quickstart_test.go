package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
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

	opts := testOptions(t, "quickstart")
	opts.state = t.TempDir()
	script = pointAt(t, script, map[string]string{"localhost:8080": opts.apiAddr, "localhost:8082": opts.consumerAddr})
	p := startPlayground(t, opts)

	for i := 1; i <= 2; i++ {
		rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
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
	p.stop() // and it stops cleanly after
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
