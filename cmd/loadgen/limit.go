package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/producer/orderstore"
	"github.com/ordersonkafka/orders/migrations"
)

// limitReport is make bench-limit's answer: how close placing orders
// through HTTP comes to PostgreSQL running the same statement alone.
type limitReport struct {
	HTTP            report  `json:"http"`
	PgbenchTPS      float64 `json:"pgbench_tps"`
	PgbenchClients  int     `json:"pgbench_clients"`
	PgbenchSeconds  float64 `json:"pgbench_seconds"`
	Ratio           float64 `json:"ratio"` // HTTP orders/s ÷ pgbench's
	PgbenchDatabase string  `json:"pgbench_database"`
}

// runLimit is -limit: a closed-loop, place-only load through HTTP for
// -duration with -concurrency workers, then, back to back, pgbench running
// order-api's own place statement (orderstore.PlaceSQL, one order and its
// outbox row) with as many clients for as long, on a scratch database with
// order-api's migrations, which it drops after.
func runLimit(ctx context.Context, o options, stdout io.Writer) error {
	o.rate, o.placeOnly, o.e2eSample = 0, true, 0 // the HTTP side is place and nothing else
	pgbench, err := findPgbench()
	if err != nil {
		return err
	}
	g := newGenerator(o)
	if err := g.preflight(ctx); err != nil {
		return err
	}
	httpRep := g.run(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	tps, db, err := runPgbench(ctx, pgbench, o)
	if err != nil {
		return err
	}
	rep := limitReport{HTTP: httpRep, PgbenchTPS: round(tps, 1), PgbenchClients: o.concurrency,
		PgbenchSeconds: o.duration.Seconds(), PgbenchDatabase: db}
	if tps > 0 {
		rep.Ratio = round(httpRep.OrdersPerSecond/tps, 3)
	}
	if o.json {
		return writeJSON(stdout, rep)
	}
	fmt.Fprintf(stdout, "bench-limit: place-only, closed loop, %d workers, %s each\n", o.concurrency, o.duration)
	fmt.Fprintf(stdout, "  through HTTP       %.1f orders/s (HTTP %s)\n", httpRep.OrdersPerSecond, httpRep.HTTP)
	fmt.Fprintf(stdout, "  pgbench            %.1f statements/s (the same INSERT, %d clients, database %s, dropped)\n", tps, o.concurrency, db)
	fmt.Fprintf(stdout, "  ratio              %.3f (HTTP ÷ pgbench)\n", rep.Ratio)
	for _, n := range []string{"order-api", "order-consumer", "postgresql", "loadgen"} {
		if v, ok := httpRep.CPUPer1000Orders[n]; ok {
			fmt.Fprintf(stdout, "  CPU per 1,000 orders through HTTP: %s %.3fs\n", n, v)
		}
	}
	return nil
}

// findPgbench finds a pgbench that runs: on PATH, else in PostgreSQL's
// library directory (Debian's wrapper on PATH needs the server package).
func findPgbench() (string, error) {
	candidates := []string{"pgbench"}
	more, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	candidates = append(candidates, more...)
	for _, c := range candidates {
		if err := exec.Command(c, "--version").Run(); err == nil {
			return c, nil
		}
	}
	return "", errors.New("make bench-limit needs pgbench (Debian: apt-get install postgresql; macOS: brew install postgresql@16)")
}

// runPgbench makes the scratch database, writes the script and runs
// pgbench, returning its transactions per second.
func runPgbench(ctx context.Context, pgbench string, o options) (float64, string, error) {
	db := fmt.Sprintf("loadgen_limit_%d", os.Getpid())
	dsn, err := withDatabase(o.pgURL, db)
	if err != nil {
		return 0, "", err
	}
	if err := pgdb.EnsureDatabase(ctx, dsn); err != nil {
		return 0, "", err
	}
	defer dropDatabase(o.pgURL, db)
	if err := pgdb.Migrate(ctx, dsn, migrations.Orders()); err != nil {
		return 0, "", err
	}
	script, err := pgbenchScript()
	if err != nil {
		return 0, "", err
	}
	dir, err := os.MkdirTemp("", "bench-limit-")
	if err != nil {
		return 0, "", err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "place.sql")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		return 0, "", err
	}
	secs := max(1, int(o.duration.Round(time.Second).Seconds()))
	// The password goes in the environment, not on pgbench's command line
	// (where ps shows it).
	u, err := url.Parse(dsn)
	if err != nil {
		return 0, db, err
	}
	env := os.Environ()
	if pw, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+pw)
		u.User = url.User(u.User.Username())
	}
	cmd := exec.CommandContext(ctx, pgbench, "-n", "-M", "prepared", "-c", strconv.Itoa(o.concurrency),
		"-j", "2", "-T", strconv.Itoa(secs), "-f", file, u.String())
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, db, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	// pgbench 14+ says "without initial connection time", older ones
	// "excluding connections establishing".
	m := regexp.MustCompile(`tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)`).FindSubmatch(out)
	if m == nil {
		return 0, db, fmt.Errorf("pgbench printed no tps:\n%s", out)
	}
	tps, err := strconv.ParseFloat(string(m[1]), 64)
	return tps, db, err
}

// pgbenchScript is orderstore.PlaceSQL with its parameters replaced by
// what order-api sends for a typical order: a new UUID for the order and
// the event, the Avro body the producer writes for it, its headers.
func pgbenchScript() (string, error) {
	now := order.Now()
	_, ev, err := order.Place(order.NewOrder{CustomerID: "load-42", Currency: "EUR",
		Items: []order.Item{{SKU: "SKU-7", Quantity: 2, UnitPriceMinor: 1250}}}, now, order.Meta{})
	if err != nil {
		return "", err
	}
	enc, err := eventcodec.NewEncoder()
	if err != nil {
		return "", err
	}
	payload, version, err := enc.Encode(ev)
	if err != nil {
		return "", err
	}
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	bytea := func(b []byte) string { return `'\x` + hex.EncodeToString(b) + `'` }
	values := map[int]string{
		1: "gen_random_uuid()", 2: quote("order-events"), 3: bytea([]byte(ev.Order.ID.String())), 4: bytea(payload),
		5: strconv.Itoa(version),
		6: quote(`{"event_id":"` + ev.ID.String() + `","event_type":"PLACED","correlation_id":"c0ffee00-0000-4000-8000-000000000000","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`),
		7: "gen_random_uuid()", 8: quote("load-42"), 9: quote("EUR"),
		10: quote(`[{"sku":"SKU-7","quantity":2,"unit_price_minor":1250}]`), 11: "2500", 12: quote("placed"), 13: "1",
		14: "''", 15: "''", 16: "''", 17: "now()", 18: "now()",
	}
	sql := orderstore.PlaceSQL
	for n := 18; n >= 1; n-- { // $18 before $1, which is its prefix
		sql = strings.ReplaceAll(sql, "$"+strconv.Itoa(n), values[n])
	}
	// pgbench reads one statement per line unless continued.
	return strings.Join(strings.Fields(sql), " ") + ";\n", nil
}

func withDatabase(server, name string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("-pg-url %s: want a postgres:// URL", pgdb.Redact(server))
	}
	u.Path = "/" + name
	return u.String(), nil
}

func dropDatabase(server, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: drop the scratch database %s: %v\n", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: drop the scratch database %s: %v\n", name, err)
	}
}
