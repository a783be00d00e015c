package cli_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/platform/cli"
	"github.com/ordersonkafka/orders/internal/platform/service"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// testConfig is a service's configuration reduced to what the shared
// commands read; REFUSE makes it invalid.
type testConfig struct {
	HTTPAddr    string `env:"HTTP_ADDR" envDefault:":8080"`
	DatabaseURL string `env:"DATABASE_URL"`
	Refuse      string `env:"REFUSE"`
}

func (c testConfig) Validate() error {
	if c.Refuse != "" {
		return errors.New("REFUSE=" + c.Refuse + ": refused")
	}
	return nil
}

func (c testConfig) Settings() service.Settings {
	return service.Settings{Name: "testd", HTTPAddr: c.HTTPAddr, DatabaseURL: c.DatabaseURL, LogLevel: "info", LogFormat: "text"}
}

type call = cli.Call[testConfig]

// ran records the command a program ran, and its arguments.
type ran struct {
	name string
	args []string
}

// program is a binary with a command of one word and one of two words that
// begins like it, a command that takes flags, and a service that records
// that it ran.
func program(got *ran) cli.Program[testConfig] {
	record := func(name string) func(context.Context, call) error {
		return func(_ context.Context, c call) error {
			*got = ran{name, c.Args}
			return nil
		}
	}
	return cli.Program[testConfig]{
		Name: "testd",
		Doc:  "serves the tests",
		Serve: func(_ context.Context, _ testConfig, _ *slog.Logger, tel telemetry.Config) error {
			*got = ran{"serve", nil}
			if v := tel.Getenv("OTEL_SERVICE_NAME"); v != "" {
				got.args = []string{v} // the environment reaches the service's telemetry
			}
			return nil
		},
		Migrations: fstest.MapFS{"00001_widgets.sql": {Data: []byte("-- +goose Up\nCREATE TABLE widgets (id int);\n")}},
		Commands: []cli.Command[testConfig]{
			{Name: "queue", Args: "[args]", Doc: "does the queue thing", Run: record("queue")},
			{Name: "queue drain", Doc: "drains the queue", Run: record("queue drain")},
			{Name: "count", Args: "[-n N]", Doc: "prints n", Run: func(_ context.Context, c call) error {
				fs := flag.NewFlagSet("count", flag.ContinueOnError)
				n := fs.Int("n", 1, "how many")
				if err := c.Parse(fs); err != nil {
					return err
				}
				*got = ran{"count", []string{strings.Repeat("x", *n)}}
				return nil
			}},
		},
		Notes: "Some notes.",
	}
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestHelpIsPrintedToStdoutAndSucceeds(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help", "help"} {
		t.Run(arg, func(t *testing.T) {
			var got ran
			var stdout, stderr bytes.Buffer
			// An invalid configuration: help needs none.
			err := program(&got).Run(context.Background(), []string{arg}, env("REFUSE", "yes"), &stdout, &stderr)
			if err != nil {
				t.Fatalf("%s: %v", arg, err)
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr: %q", stderr.String())
			}
			out := stdout.String()
			for _, want := range []string{"usage: testd", "serves the tests",
				"migrate", "health", "queue [args]", "queue drain", "drains the queue", "count [-n N]", "help, -h, --help", "Some notes."} {
				if !strings.Contains(out, want) {
					t.Errorf("usage lacks %q:\n%s", want, out)
				}
			}
			if got.name != "" {
				t.Errorf("help ran %q", got.name)
			}
		})
	}
}

func TestAnUnknownCommandPrintsTheUsageToStderrAndFails(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"-x"}, {"migrate", "now"}, {"queue", "drain", "fast"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var got ran
			var stdout, stderr bytes.Buffer
			err := program(&got).Run(context.Background(), args, env(), &stdout, &stderr)
			if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), args[len(args)-1]) {
				t.Errorf("error %v, want ErrUsage naming %q", err, args[len(args)-1])
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
			if !strings.Contains(stderr.String(), "usage: testd") {
				t.Errorf("stderr lacks the usage: %q", stderr.String())
			}
			if got.name != "" {
				t.Errorf("ran %q", got.name)
			}
		})
	}
}

func TestDispatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want ran
	}{
		{"no command runs the service", nil, ran{"serve", []string{"from-env"}}},
		{"a command gets what follows its name", []string{"queue", "a", "b"}, ran{"queue", []string{"a", "b"}}},
		{"the longest name that matches wins", []string{"queue", "drain"}, ran{"queue drain", []string{}}},
		{"flags are parsed by the command", []string{"count", "-n", "3"}, ran{"count", []string{"xxx"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got ran
			var stdout, stderr bytes.Buffer
			if err := program(&got).Run(context.Background(), tc.args, env("OTEL_SERVICE_NAME", "from-env"), &stdout, &stderr); err != nil {
				t.Fatal(err)
			}
			if got.name != tc.want.name || !slices.Equal(got.args, tc.want.args) {
				t.Errorf("ran %q %q, want %q %q", got.name, got.args, tc.want.name, tc.want.args)
			}
		})
	}
}

func TestAnInvalidConfigurationRunsNothing(t *testing.T) {
	for _, args := range [][]string{nil, {"queue"}, {"health"}} {
		var got ran
		err := program(&got).Run(context.Background(), args, env("REFUSE", "yes"), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "REFUSE=yes") {
			t.Errorf("%q: error %v, want the configuration's", args, err)
		}
		if got.name != "" {
			t.Errorf("%q: ran %q", args, got.name)
		}
	}
}

// A command's flags: -h prints them to stdout and succeeds; a mistake
// prints them to stderr and fails; arguments after them are refused.
func TestCommandFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		ok      bool
		flagsTo string // where the usage of the flags goes
	}{
		{[]string{"count", "-h"}, true, "stdout"},
		{[]string{"count", "-m", "2"}, false, "stderr"},
		{[]string{"count", "-n", "2", "extra"}, false, "stderr"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var got ran
			var stdout, stderr bytes.Buffer
			err := program(&got).Run(context.Background(), tc.args, env(), &stdout, &stderr)
			if (err == nil) != tc.ok {
				t.Errorf("error %v", err)
			}
			if got.name != "" {
				t.Errorf("the command went on after its flags: %v", got)
			}
			to, other := &stdout, &stderr
			if tc.flagsTo == "stderr" {
				to, other = &stderr, &stdout
			}
			if !strings.Contains(to.String(), "usage: testd count [-n N]") || !strings.Contains(to.String(), "how many") {
				t.Errorf("%s lacks the flags: %q", tc.flagsTo, to.String())
			}
			if other.Len() > 0 {
				t.Errorf("the other stream: %q", other.String())
			}
		})
	}
}

func TestMigratePrintsToStdout(t *testing.T) {
	db := pgtest.MustDB(t, nil)
	var got ran
	var stdout, stderr bytes.Buffer
	if err := program(&got).Run(context.Background(), []string{"migrate"}, env("DATABASE_URL", db.URL), &stdout, &stderr); err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr.String())
	}
	if !slices.Contains(db.Tables(t), "widgets") {
		t.Errorf("tables after migrate: %v", db.Tables(t))
	}
	if out := stdout.String(); !strings.HasPrefix(out, "testd: migrations applied to ") || !strings.Contains(out, db.Name) {
		t.Errorf("stdout %q", out)
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr %q", stderr.String())
	}
	// Refused: the error is returned (the caller prints it to stderr), and
	// nothing claims success on stdout.
	stdout.Reset()
	if err := program(&got).Run(context.Background(), []string{"migrate"}, env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=2"), &stdout, &stderr); err == nil {
		t.Error("migrate with no server succeeded")
	}
	if stdout.Len() > 0 {
		t.Errorf("stdout after a failed migrate: %q", stdout.String())
	}
}

// health asks /readyz on HTTP_ADDR's port and prints its answer to stdout,
// ready or not (internal/platform/healthcheck tests the answers).
func TestHealthPrintsTheAnswerToStdout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "the reason", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	var got ran
	var stdout, stderr bytes.Buffer
	if err := program(&got).Run(context.Background(), []string{"health"}, env("HTTP_ADDR", ":"+u.Port()), &stdout, &stderr); err == nil {
		t.Error("health succeeded against a service that is not ready")
	}
	if out := stdout.String(); !strings.Contains(out, "503 Service Unavailable") || !strings.Contains(out, "the reason") {
		t.Errorf("stdout %q", out)
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr %q", stderr.String())
	}
}
