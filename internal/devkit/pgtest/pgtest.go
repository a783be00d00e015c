// Package pgtest gives each test its own real PostgreSQL database, migrated
// and dropped when the test ends. There is no fake: a test that cannot reach
// PostgreSQL fails and says how to provide one.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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

// MustDB creates a fresh database, applies the migrations of fsys (nil for
// none), and drops it (terminating stray connections) when tb ends.
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
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
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

	if fsys != nil {
		if err := pgdb.Migrate(ctx, dbURL, fsys); err != nil {
			tb.Fatalf("pgtest: migrate %s: %v", name, err)
		}
	}
	pool, err := pgdb.Open(ctx, dbURL, 0)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	db.Pool = pool
	return db
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
