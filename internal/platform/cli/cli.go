// Package cli is the command line both services' binaries share: a table of
// subcommands dispatched one way, and the subcommands every service has
// (migrate, health) written once.
//
// Without a command a binary runs its service. `-h`, `--help` or `help`
// prints the usage to stdout and succeeds; a command line that names no
// command prints the usage to stderr and fails with ErrUsage. Every command
// writes its result to stdout and its diagnostics (logs, flag errors, usage
// after a mistake) to stderr, so a script reads the one and an operator the
// other.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/ordersonkafka/orders/internal/platform/healthcheck"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/platform/service"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// ErrUsage is wrapped by the error of a command line the program does not
// take; the usage has been printed to stderr by then.
var ErrUsage = errors.New("see the usage above")

// Call is what a command runs with.
type Call[C any] struct {
	// Config is the service's configuration, loaded from the environment
	// and validated before the command runs.
	Config C
	// Log writes to Stderr, as the configuration asks.
	Log *slog.Logger
	// Getenv is the environment the configuration was read from.
	Getenv func(string) string
	// Usage is the command line's form, for messages: "order-consumer
	// rebuild [-allow-partial]".
	Usage string
	// Args are the arguments after the command's name.
	Args []string
	// Stdout takes the command's result, Stderr its diagnostics.
	Stdout, Stderr io.Writer
}

// Parse parses c.Args into fs as the command's flags and refuses any
// argument left after them. Asked for help (-h), it prints the usage and
// flags to stdout and returns flag.ErrHelp, which Program.Run counts as
// success; on a mistake it prints them to stderr and returns the mistake.
func (c Call[C]) Parse(fs *flag.FlagSet) error {
	fs.SetOutput(io.Discard) // the flag package would print to one stream for both cases
	err := fs.Parse(c.Args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		c.printFlags(fs, c.Stdout)
	default:
		c.printFlags(fs, c.Stderr)
	}
	return err
}

func (c Call[C]) printFlags(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n", c.Usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// Command is one subcommand of a program.
type Command[C any] struct {
	// Name is the words that call it: "migrate", "dlq list".
	Name string
	// Args is what it takes after its name, for the usage
	// ("[-allow-partial]"). Empty: nothing, and an argument is refused
	// before the command runs.
	Args string
	// Doc says in one line what it does.
	Doc string
	Run func(ctx context.Context, c Call[C]) error
}

// Program is a service's binary: the service it runs without a command, and
// its subcommands.
type Program[C service.Config] struct {
	// Name is the binary's: "order-api".
	Name string
	// Doc says in one line what the binary does without a command.
	Doc string
	// Serve runs the service until ctx ends, its telemetry configured by
	// the environment.
	Serve func(ctx context.Context, cfg C, log *slog.Logger, tel telemetry.Config) error
	// Migrations are the service's database migrations, which the migrate
	// command applies to Settings().DatabaseURL.
	Migrations fs.FS
	// Commands are the service's own, listed after migrate and health.
	Commands []Command[C]
	// Notes, if any, are printed after the list of commands.
	Notes string
}

// Run runs the command that args names (the service if args is empty) with the
// configuration read from getenv.
func (p Program[C]) Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		p.usage(stdout)
		return nil
	}
	cmd, rest := Command[C]{Run: p.serve}, args
	if len(args) > 0 {
		var ok bool
		if cmd, rest, ok = p.lookup(args); !ok {
			p.usage(stderr)
			return fmt.Errorf("unknown command %q: %w", strings.Join(args, " "), ErrUsage)
		}
	}
	if cmd.Args == "" && len(rest) > 0 {
		p.usage(stderr)
		return fmt.Errorf("%s takes no arguments, got %q: %w", cmd.Name, rest, ErrUsage)
	}
	cfg, log, err := service.Load[C](getenv, stderr)
	if err != nil {
		return err
	}
	err = cmd.Run(ctx, Call[C]{Config: cfg, Log: log, Getenv: getenv, Usage: p.form(cmd),
		Args: rest, Stdout: stdout, Stderr: stderr})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// commands is the whole table: the commands every service has, then p's.
func (p Program[C]) commands() []Command[C] {
	return append([]Command[C]{p.migrate(), p.health()}, p.Commands...)
}

// lookup finds the command whose name begins args, the longest if several
// do, and returns it with the arguments after its name.
func (p Program[C]) lookup(args []string) (Command[C], []string, bool) {
	var (
		found Command[C]
		words int
	)
	for _, c := range p.commands() {
		name := strings.Fields(c.Name)
		if len(name) > words && len(name) <= len(args) && slices.Equal(name, args[:len(name)]) {
			found, words = c, len(name)
		}
	}
	return found, args[words:], words > 0
}

// form is how cmd is written on a command line: "order-api schemas check".
func (p Program[C]) form(cmd Command[C]) string {
	return strings.Join(strings.Fields(strings.Join([]string{p.Name, cmd.Name, cmd.Args}, " ")), " ")
}

func (p Program[C]) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s [command]\n\nWithout a command, %s %s.\nConfiguration comes from the environment.\n\nCommands:\n", p.Name, p.Name, p.Doc)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, c := range p.commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimPrefix(p.form(c), p.Name+" "), c.Doc)
	}
	fmt.Fprintf(tw, "  help, -h, --help\tprint this help\n")
	_ = tw.Flush()
	if p.Notes != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(p.Notes))
	}
}

func (p Program[C]) serve(ctx context.Context, c Call[C]) error {
	return p.Serve(ctx, c.Config, c.Log, telemetry.Config{Getenv: c.Getenv})
}

// migrate creates the service's database if it does not exist and applies
// its migrations: what a deployment runs before the service, or instead of
// letting it migrate at start-up.
func (p Program[C]) migrate() Command[C] {
	return Command[C]{Name: "migrate", Doc: "create the database if needed, apply the migrations and exit",
		Run: func(ctx context.Context, c Call[C]) error {
			dsn := c.Config.Settings().DatabaseURL
			if err := pgdb.EnsureDatabase(ctx, dsn); err != nil {
				return err
			}
			if err := pgdb.Migrate(ctx, dsn, p.Migrations); err != nil {
				return err
			}
			fmt.Fprintln(c.Stdout, p.Name+": migrations applied to", pgdb.Redact(dsn))
			return nil
		}}
}

// health is the container health check: the image has no shell or curl.
func (p Program[C]) health() Command[C] {
	return Command[C]{Name: "health", Doc: "exit 0 if the running service's /readyz (at HTTP_ADDR) answers 200",
		Run: func(ctx context.Context, c Call[C]) error {
			return healthcheck.Ready(ctx, c.Config.Settings().HTTPAddr, c.Stdout)
		}}
}

// Main runs p as the process: its arguments and environment, a context that
// ends on SIGINT or SIGTERM, and on failure the error on stderr after p's
// name, and exit status 1.
func (p Program[C]) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := p.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, p.Name+":", err)
		os.Exit(1)
	}
}
