// Package pgtest gives each test its own real PostgreSQL database, migrated
// and dropped when the test ends. There is no fake: a test that cannot reach
// PostgreSQL fails and says how to provide one.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// ServerURL is the server tests create their databases on: TEST_DATABASE_URL,
// or the local default every development machine and CI has.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// DB is one test's database.
type DB struct {
	Name string
	URL  string // connection string of this database
	Pool *pgxpool.Pool
}

// MustDB creates a fresh database, migrated by fsys (nil for none), and
// drops it (terminating stray connections) when tb ends. A migrated database
// is a copy of a template database the migrations built once for the
// server (see template), which is a tenth of a second cheaper than running
// them for each of the suite's two hundred databases.
func MustDB(tb testing.TB, fsys fs.FS) *DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	server := ServerURL()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("pgtest: PostgreSQL is required and did not answer at %s: %v\n"+
			"start one (e.g. `pg_ctlcluster 15 main start`) or set TEST_DATABASE_URL", pgdb.Redact(server), err)
	}
	defer admin.Close(context.Background())

	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	create := "CREATE DATABASE " + name
	if fsys != nil {
		tmpl, err := template(ctx, admin, server, fsys)
		if err != nil {
			tb.Fatalf("pgtest: template database: %v", err)
		}
		create += " TEMPLATE " + tmpl
	}
	if _, err := admin.Exec(ctx, create); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	dbURL := replaceDatabase(tb, server, name)

	db := &DB{Name: name, URL: dbURL}
	tb.Cleanup(func() {
		if db.Pool != nil {
			db.Pool.Close()
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		c, err := pgx.Connect(cctx, server)
		if err != nil {
			tb.Errorf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(cctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop %s: %v", name, err)
		}
	})

	pool, err := pgdb.Open(ctx, dbURL, 0)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	db.Pool = pool
	return db
}

// templates are the template databases this process built or found, by
// the hash of their migrations.
var templates sync.Map // string → *templateDB

type templateDB struct {
	once sync.Once
	name string
	err  error
}

// template returns the name of a template database on the server that
// fsys's migrations built: test_tmpl_ and a hash of the migrations' names
// and contents, so a change of any migration builds a new one. It is built
// once for the server, under an advisory lock that makes concurrent test
// processes take turns, and kept there for later runs: a template nobody
// connects to (they cannot: a database copied from must have no
// connections). Templates of migrations that changed since stay behind
// (docs/testing.md says how to drop them).
func template(ctx context.Context, admin *pgx.Conn, server string, fsys fs.FS) (string, error) {
	h := sha256.New()
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return "", err
	}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	sum := h.Sum(nil)
	key := hex.EncodeToString(sum[:8])
	v, _ := templates.LoadOrStore(key, &templateDB{name: "test_tmpl_" + key})
	t := v.(*templateDB)
	t.once.Do(func() {
		t.err = buildTemplate(ctx, admin, server, t.name, fsys, int64(binary.BigEndian.Uint64(sum[:8])))
	})
	return t.name, t.err
}

func buildTemplate(ctx context.Context, admin *pgx.Conn, server, name string, fsys fs.FS, lock int64) error {
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", lock); err != nil {
		return err
	}
	defer admin.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lock) //nolint:errcheck // the session ends soon anyway
	var done bool
	switch err := admin.QueryRow(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", name).Scan(&done); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil || done:
		return err
	default: // renamed, not yet a template, when its builder stopped
		if _, err := admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			return err
		}
	}
	// Built under another name and renamed once whole, so a template is
	// never half migrated.
	var b [4]byte
	_, _ = rand.Read(b[:])
	building := name + "_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return err
	}
	if err := pgdb.Migrate(ctx, replaceDatabaseURL(server, building), fsys); err != nil {
		_, _ = admin.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)")
		return fmt.Errorf("migrate %s: %w", building, err)
	}
	for _, q := range []string{
		"ALTER DATABASE " + building + " RENAME TO " + name,
		"ALTER DATABASE " + name + " WITH IS_TEMPLATE true",
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// replaceDatabaseURL returns server's URL pointing at database name.
func replaceDatabaseURL(server, name string) string {
	u, err := url.Parse(server)
	if err != nil {
		return server
	}
	u.Path = "/" + name
	return u.String()
}

// replaceDatabase returns server's URL pointing at database name.
func replaceDatabase(tb testing.TB, server, name string) string {
	tb.Helper()
	u, err := url.Parse(server)
	if err != nil {
		tb.Fatalf("pgtest: TEST_DATABASE_URL must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Hangable returns db's URL through a stacktest.Switch in front of the
// server: its Hang makes PostgreSQL, as the URL's users see it, a server
// that accepts connections and never answers; its Resume one that answers
// again. The URL's connect_timeout is 1s, so that connections a pool began
// while the server hung, which outlive the callers that wanted them, do not
// hold the pool's Close for pgdb.ConnectTimeout.
func (db *DB) Hangable(tb testing.TB) (string, *devstack.Switch) {
	tb.Helper()
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		tb.Fatal(err)
	}
	sw := stacktest.Switch(tb, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	u, err := url.Parse(db.URL)
	if err != nil {
		tb.Fatalf("pgtest: TEST_DATABASE_URL must be a postgres:// URL: %v", err)
	}
	u.Host = sw.Addr()
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()
	return u.String(), sw
}

// MustUserNamedDB returns a fresh, empty database and a connection URL that
// names no database but whose user, a role made for the test, has the
// database's name and owns it: PostgreSQL connects such a URL to it. Tests
// that a service refuses a DATABASE_URL naming no database look there for
// what a refused migration would have created.
func MustUserNamedDB(tb testing.TB) (*DB, string) {
	tb.Helper()
	tb.Setenv("PGDATABASE", "") // pgx would prefer it to the user name
	db := MustDB(tb, nil)
	ctx := context.Background()
	role := pgx.Identifier{db.Name}.Sanitize()
	if _, err := db.Pool.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// Before pgtest drops the database: the role owns it.
		conn, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			tb.Errorf("drop role %s: %v", role, err)
			return
		}
		defer conn.Close(ctx)
		for _, q := range []string{"DROP DATABASE IF EXISTS " + role + " WITH (FORCE)", "DROP ROLE " + role} {
			if _, err := conn.Exec(ctx, q); err != nil {
				tb.Errorf("%s: %v", q, err)
			}
		}
	})
	if _, err := db.Pool.Exec(ctx, "ALTER DATABASE "+role+" OWNER TO "+role); err != nil {
		tb.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(ServerURL())
	if err != nil {
		tb.Fatal(err)
	}
	return db, "postgres://" + db.Name + "@" + cfg.Host + ":" + strconv.Itoa(int(cfg.Port)) + "?sslmode=disable"
}

// Tables returns the names of the tables in db's public schema, sorted.
func (db *DB) Tables(tb testing.TB) []string {
	tb.Helper()
	rows, err := db.Pool.Query(context.Background(), "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
	if err != nil {
		tb.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatal(err)
	}
	return tables
}

// Admin runs sql on the server's administrative database (ServerURL).
func Admin(tb testing.TB, sql string) {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// Stop makes db refuse new connections and ends the ones it has, as a
// server restart or a failover does. The returned func lets it accept
// connections again; it runs at the test's end if not called before.
func (db *DB) Stop(tb testing.TB) (restart func()) {
	tb.Helper()
	name := pgx.Identifier{db.Name}.Sanitize()
	Admin(tb, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false")
	Admin(tb, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+db.Name+"' AND pid <> pg_backend_pid()")
	var once sync.Once
	restart = func() { once.Do(func() { Admin(tb, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true") }) }
	tb.Cleanup(restart)
	return restart
}
