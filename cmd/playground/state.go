package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// state is the directory the playground keeps between runs; dir "" keeps
// nothing.
type state struct {
	dir     string
	resumed bool // it held a broker's or a registry's data at start
	fresh   bool // -fresh removed what it held
	// orders is how many orders order-api's database held at start: 0
	// when it did not exist, -1 until it is known.
	orders int64
}

// openState makes dir (removing what it held first when fresh) and says
// whether there is anything to resume in it.
func openState(dir string, fresh bool) (*state, error) {
	st := &state{dir: dir, fresh: fresh, orders: -1}
	if dir == "" {
		return st, nil
	}
	if fresh {
		for _, d := range []string{dir, st.clusterDir()} {
			if err := os.RemoveAll(d); err != nil {
				return nil, fmt.Errorf("-fresh: remove %s: %w", d, err)
			}
		}
	}
	for _, kept := range []string{"kafka", "registry.json"} {
		if _, err := os.Stat(filepath.Join(dir, kept)); err == nil {
			st.resumed = true
		}
	}
	// 0755: PostgreSQL, when the playground starts it as root, runs as the
	// postgres user, which must reach its own directory inside.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return st, nil
}

// path is name inside the state directory, or "" when nothing is kept.
func (st *state) path(name string) string {
	if st.dir == "" {
		return ""
	}
	return filepath.Join(st.dir, name)
}

// clusterDir is where a PostgreSQL cluster the playground starts is kept:
// in the state directory, unless the postgres user cannot reach it there
// (see devstack.ClusterDir).
func (st *state) clusterDir() string { return devstack.ClusterDir(st.path("postgres")) }

// Summary is the banner's line about the state, saying what the
// databases held as well as the directory.
func (st *state) Summary() string {
	s := st.dirSummary()
	switch {
	case st.orders > 0:
		s += fmt.Sprintf("; the databases held %d orders, kept", st.orders)
	case st.orders == 0 && st.resumed:
		s += "; the databases are new (no orders were kept)"
	}
	return s
}

func (st *state) dirSummary() string {
	switch {
	case st.dir == "":
		return "no broker data, schemas or secrets kept: new each run, gone on exit (the databases are make run's)"
	case st.resumed:
		return "resumed from " + st.dir + " (broker data, committed offsets, schemas); make run-fresh starts over"
	case st.fresh:
		return "started fresh (-fresh dropped the databases and " + st.dir + "), kept in " + st.dir + " from now on"
	default:
		return "new, kept in " + st.dir + " across restarts; make run-fresh starts over"
	}
}

// dropDatabase drops the database dsn names, with its connections, if it
// exists, connecting to the server's "postgres" database to do so (server
// may name the very database being dropped: DATABASE_URL=…/orders).
func dropDatabase(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("-fresh: %w", err)
	}
	name := cfg.Database
	admin := cfg.Copy()
	admin.Database = "postgres"
	c, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("-fresh: connect to PostgreSQL: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("-fresh: drop database %s: %w", name, err)
	}
	return nil
}

// writeEnvFiles writes, into dir, each service's variables as a file a
// shell can source, so the operator commands reach what the playground
// runs; it returns each file's path by service.
func writeEnvFiles(dir, what string, shared map[string]string, services map[string]map[string]string) (map[string]string, error) {
	files := map[string]string{}
	for name, env := range services {
		path := filepath.Join(dir, name+".env")
		var b strings.Builder
		fmt.Fprintf(&b, "# %s's settings in %s: set -a; . %s; set +a\n", name, what, path)
		all := maps.Clone(shared)
		maps.Copy(all, env)
		for _, k := range slices.Sorted(maps.Keys(all)) {
			fmt.Fprintf(&b, "%s=%s\n", k, shellQuote(all[k]))
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			return nil, err
		}
		files[name] = path
	}
	return files, nil
}

// bannerEnv is every variable the playground sets, per service, in the
// order the banner prints them.
func bannerEnv(shared map[string]string, services map[string]map[string]string) []serviceEnv {
	var out []serviceEnv
	for _, name := range slices.Sorted(maps.Keys(services)) {
		all := maps.Clone(shared)
		maps.Copy(all, services[name])
		e := serviceEnv{Name: name}
		for _, k := range slices.Sorted(maps.Keys(all)) {
			v := all[k]
			if strings.Contains(k, "PASSWORD") || strings.Contains(k, "SECRET") || strings.Contains(k, "USER_INFO") {
				v = "(in the file)"
			} else if k == "DATABASE_URL" {
				v = pgdb.Redact(v)
			}
			e.Vars = append(e.Vars, k+"="+v)
		}
		out = append(out, e)
	}
	return out
}

type serviceEnv struct {
	Name string
	Vars []string
}

// ordersHeld is how many orders the database dsn holds: 0 when it does not
// exist or has no orders table yet.
func ordersHeld(ctx context.Context, dsn string) (int64, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return 0, err
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	c, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return 0, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	var exists bool
	err = c.QueryRow(ctx, "SELECT count(*) > 0 FROM pg_database WHERE datname = $1", cfg.Database).Scan(&exists)
	c.Close(context.WithoutCancel(ctx))
	if err != nil || !exists {
		return 0, err
	}
	db, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("connect to %s: %w", pgdb.Redact(dsn), err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	var table bool
	if err := db.QueryRow(ctx, "SELECT to_regclass('orders') IS NOT NULL").Scan(&table); err != nil || !table {
		return 0, err
	}
	var n int64
	err = db.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n)
	return n, err
}
