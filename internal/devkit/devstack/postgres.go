package devstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// localURL is where a developer's PostgreSQL usually answers.
const localURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3"

// errNoPostgres is the one line a user sees when no PostgreSQL can be had.
var errNoPostgres = errors.New("PostgreSQL is required: set DATABASE_URL to a server, or install PostgreSQL 15+ so that initdb and pg_ctl are on PATH (apt-get install postgresql, brew install postgresql@16)")

// EnsurePostgres finds a PostgreSQL server for the playground and returns the
// URL of its "postgres" database and a function that undoes what it started:
//  1. DATABASE_URL, when set, names the server; it is used as it is.
//  2. Otherwise a server answering on 127.0.0.1:5432 as user postgres.
//  3. Otherwise a cluster made with initdb and started with pg_ctl (from
//     PATH, or /usr/lib/postgresql/*/bin) on a free port. With keepDir
//     empty it is a throwaway: stop shuts it down and deletes it. With
//     keepDir set, its data lives there: a cluster already in keepDir is
//     started again with its databases, and stop only shuts it down.
//
// Failing all three, the error is one line saying how to get PostgreSQL.
func EnsurePostgres(ctx context.Context, getenv func(string) string, logf func(format string, args ...any), keepDir string) (dsn string, stop func() error, err error) {
	noop := func() error { return nil }
	if u := getenv("DATABASE_URL"); u != "" {
		return u, noop, nil
	}
	switch err := probe(ctx, localURL); {
	case err == nil:
		logf("using the PostgreSQL server on 127.0.0.1:5432")
		return strings.TrimSuffix(localURL, "&connect_timeout=3"), noop, nil
	case !isRefused(err):
		return "", nil, fmt.Errorf("a PostgreSQL server answers on 127.0.0.1:5432 but not as user postgres without a password (%v): set DATABASE_URL", err)
	}
	if keepDir != "" {
		return startCluster(ctx, logf, keepDir, false)
	}
	return startThrowaway(ctx, logf)
}

func probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// isRefused tells "nothing listens there" from "something listens but said no".
func isRefused(err error) bool {
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial")
}

// findPGBin returns the directory holding initdb and pg_ctl.
func findPGBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", errNoPostgres
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&0o111 != 0
}

func startThrowaway(ctx context.Context, logf func(string, ...any)) (string, func() error, error) {
	dir, err := os.MkdirTemp("", "orders-pg-")
	if err != nil {
		return "", nil, err
	}
	logf("no PostgreSQL found: starting a throwaway cluster in %s", dir)
	return startCluster(ctx, logf, dir, true)
}

// startCluster starts the cluster in dir/data, making it first if there is
// none. With remove, stop deletes dir; otherwise the data stays for the
// next start.
func startCluster(ctx context.Context, logf func(string, ...any), dir string, remove bool) (string, func() error, error) {
	c, err := StartCluster(ctx, logf, dir, remove)
	if err != nil {
		return "", nil, err
	}
	return c.URL, c.Stop, nil
}

// Cluster is a PostgreSQL cluster this process started with initdb and
// pg_ctl, and owns: it may restart it or stop it, which it must never do to
// a server the machine shares.
type Cluster struct {
	URL  string // postgres://postgres@127.0.0.1:port/postgres?sslmode=disable
	Dir  string // absolute; the data is in Dir/data, the server's log in Dir/log
	Stop func() error

	bin, data, opts string
	cred            *syscall.Credential
}

// Restart stops the server with pg_ctl's fast mode (every session is
// ended, transactions in flight roll back) and starts it again on the same
// port, as an operator's restart does.
func (c *Cluster) Restart(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "pg_ctl"), "-D", c.data, "-o", c.opts,
		"-l", filepath.Join(c.Dir, "log"), "-m", "fast", "-w", "-t", "60", "restart")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl restart: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// StartCluster starts the cluster in dir/data (dir may be relative), making
// it first if there is none, on a free port of 127.0.0.1. With remove, Stop
// deletes dir and the server runs without fsync; otherwise the data stays
// for the next start.
func StartCluster(ctx context.Context, logf func(string, ...any), dir string, remove bool) (*Cluster, error) {
	// The server changes into its data directory first: every path it is
	// given must be absolute.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	bin, err := findPGBin()
	if err != nil {
		if remove {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	// Its parents stay reachable by others (the postgres user, when root
	// runs this), the directory itself is the cluster's alone.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	cleanup := func() {
		if remove {
			_ = os.RemoveAll(dir)
		}
	}
	// PostgreSQL refuses to run as root: run it as the postgres system user.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			cleanup()
			return nil, errors.New("PostgreSQL cannot run as root and there is no postgres user to run it as: set DATABASE_URL")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			cleanup()
			return nil, err
		}
		if err := searchableByOthers(filepath.Dir(dir)); err != nil {
			cleanup()
			return nil, fmt.Errorf("PostgreSQL runs as user postgres, which cannot reach %s: %w (or set DATABASE_URL)", dir, err)
		}
	}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		logf("starting the PostgreSQL cluster kept in %s", data)
		// A playground killed without its cleanup leaves its server running
		// (it is in its own process group): stop that one first.
		if run("pg_ctl", "-D", data, "status") == nil {
			if err := run("pg_ctl", "-D", data, "-m", "fast", "-w", "stop"); err != nil {
				return nil, err
			}
		}
	} else if err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		cleanup()
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		cleanup()
		return nil, err
	}
	// A throwaway cluster needs no durability; a kept one does.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", port, dir)
	if remove {
		opts += " -c fsync=off"
	}
	if err := run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start"); err != nil {
		err = fmt.Errorf("%w\nthe last lines of its log, %s:\n%s", err, filepath.Join(dir, "log"), tail(filepath.Join(dir, "log"), 10))
		cleanup()
		return nil, err
	}
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	stop := func() error {
		// A fresh context: stop runs when the caller's has ended.
		cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		cleanup()
		if err != nil {
			return fmt.Errorf("pg_ctl stop: %w: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := probe(ctx, url); err != nil {
		_ = stop()
		return nil, fmt.Errorf("PostgreSQL in %s does not answer: %w", dir, err)
	}
	if remove {
		logf("throwaway PostgreSQL on 127.0.0.1:%d (removed on exit)", port)
	} else {
		logf("PostgreSQL on 127.0.0.1:%d, its data kept in %s", port, data)
	}
	return &Cluster{URL: url, Dir: dir, Stop: stop, bin: bin, data: data, opts: opts, cred: cred}, nil
}

// ClusterDir is where a cluster kept for dir lives: dir itself, unless this
// process is root and the postgres user, which runs the cluster, cannot
// reach dir (a repository under /root, mode 0700): then a directory of
// /var/tmp named after dir, which survives a reboot as dir would.
func ClusterDir(dir string) string {
	if dir == "" || os.Geteuid() != 0 {
		return dir
	}
	abs, err := filepath.Abs(dir)
	if err != nil || searchableByOthers(filepath.Dir(abs)) == nil {
		return dir
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join("/var/tmp", "orders-playground-"+hex.EncodeToString(sum[:6]), filepath.Base(abs))
}

// searchableByOthers checks that a user other than dir's owners can reach
// inside dir: every directory from the root to it lets others search it.
func searchableByOthers(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not searchable by others (chmod o+x %s)", dir, dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tail is the last n lines of the file at path, indented, or why not.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
