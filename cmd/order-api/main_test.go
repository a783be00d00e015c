package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/schematest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/schemas"
)

func TestMigrateCreatesAndMigratesTheDatabase(t *testing.T) {
	db := pgtest.MustDB(t, nil) // an empty database
	var out bytes.Buffer
	env := map[string]string{"DATABASE_URL": db.URL}
	if err := run(context.Background(), []string{"migrate"}, func(k string) string { return env[k] }, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "migrations applied") {
		t.Errorf("output %q", out.String())
	}
	conn, err := pgx.Connect(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM outbox").Scan(&n); err != nil {
		t.Fatalf("outbox table missing after migrate: %v", err)
	}
}

func TestRunRefusesBadArgumentsAndConfiguration(t *testing.T) {
	none := func(string) string { return "" }
	if err := run(context.Background(), []string{"serve", "now"}, none, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("unknown arguments: %v", err)
	}
	bad := func(k string) string {
		if k == "RELAY_POLL_INTERVAL" {
			return "often"
		}
		return ""
	}
	if err := run(context.Background(), nil, bad, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "RELAY_POLL_INTERVAL") {
		t.Errorf("malformed duration: %v", err)
	}
}

// health is the container health check: it asks /readyz on HTTP_ADDR's
// port (internal/platform/healthcheck tests the answers; this, the wiring).
func TestHealthUsesHTTPAddr(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	var out bytes.Buffer
	ok := run(context.Background(), []string{"health"}, func(k string) string { return map[string]string{"HTTP_ADDR": ":" + u.Port()}[k] }, &out, &out)
	bad := run(context.Background(), []string{"health"}, func(k string) string { return map[string]string{"HTTP_ADDR": ":1"}[k] }, &out, &out)
	if ok != nil || bad == nil {
		t.Errorf("health against the server: %v; against nothing: %v", ok, bad)
	}
}

// A DATABASE_URL naming no database would be migrated into the database
// PostgreSQL falls back to, the one named like the user. Here that is a
// database made for the test, so a migration shows there; the service, and
// its migrate command, refuse before touching it.
func TestRunRefusesADatabaseURLThatNamesNoDatabase(t *testing.T) {
	for _, args := range [][]string{nil, {"migrate"}} {
		t.Run(strings.Join(append([]string{"order-api"}, args...), " "), func(t *testing.T) {
			db, dsn := pgtest.MustUserNamedDB(t)
			env := map[string]string{"DATABASE_URL": dsn, "HTTP_ADDR": "127.0.0.1:0", "RELAY_ENABLED": "false"}
			// Bounds a regression in which the service starts and serves.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var logs bytes.Buffer
			err := run(ctx, args, func(k string) string { return env[k] }, &logs, &logs)
			if want := "DATABASE_URL="; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("run = %v, want an error with %q; logs:\n%s", err, want, logs.String())
			}
			if tables := db.Tables(t); len(tables) > 0 {
				t.Errorf("the database named like the user was migrated: %v", tables)
			}
		})
	}
}

// `order-api schemas check` and `schemas register` reach the registry named
// by SCHEMA_REGISTRY_URL (orderapi's tests cover what they print and the
// incompatible case).
func TestSchemasCommands(t *testing.T) {
	reg := stacktest.Registry(t)
	env := func(k string) string { return map[string]string{"SCHEMA_REGISTRY_URL": reg.URL()}[k] }
	var out bytes.Buffer
	if err := run(context.Background(), []string{"schemas", "check"}, env, &out, &out); err != nil || !strings.Contains(out.String(), "does not exist yet") {
		t.Fatalf("check before registering: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"schemas", "register"}, env, &out, &out); err != nil || strings.Count(out.String(), "registered") != len(schemas.All()) {
		t.Fatalf("register: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"schemas", "check", "-strict"}, env, &out, &out); err != nil || strings.Contains(out.String(), "missing") {
		t.Fatalf("check -strict after registering: %v\n%s", err, out.String())
	}
	// A newer writer registers a version schemas/ lacks: reported, and a
	// failure only with -strict.
	body, _ := json.Marshal(map[string]string{"schema": schematest.Future().Text})
	resp, err := http.Post(reg.URL()+"/subjects/order-events-value/versions", "application/vnd.schemaregistry.v1+json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a newer writer registers: %v %v", resp, err)
	}
	resp.Body.Close()
	out.Reset()
	if err := run(context.Background(), []string{"schemas", "check"}, env, &out, &out); err != nil || !strings.Contains(out.String(), "NOT in schemas/") {
		t.Fatalf("check with a newer writer's version: %v\n%s", err, out.String())
	}
	if err := run(context.Background(), []string{"schemas", "check", "-strict"}, env, &out, &out); err == nil {
		t.Fatalf("check -strict with a newer writer's version succeeded\n%s", out.String())
	}
	if err := run(context.Background(), []string{"schemas", "check"}, func(k string) string {
		return map[string]string{"SCHEMA_REGISTRY_URL": "http://127.0.0.1:1"}[k]
	}, &out, &out); err == nil {
		t.Fatal("check against no registry succeeded")
	}
}
