package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ordersonkafka/orders/internal/pgtest"
)

func TestMigrateCreatesAndMigratesTheDatabase(t *testing.T) {
	db := pgtest.MustDB(t, nil) // an empty database
	var out bytes.Buffer
	env := map[string]string{"DATABASE_URL": db.URL}
	if err := run(context.Background(), []string{"migrate"}, func(k string) string { return env[k] }, &out); err != nil {
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
	if err := run(context.Background(), []string{"serve", "now"}, none, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("unknown arguments: %v", err)
	}
	bad := func(k string) string {
		if k == "RELAY_POLL_INTERVAL" {
			return "often"
		}
		return ""
	}
	if err := run(context.Background(), nil, bad, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "RELAY_POLL_INTERVAL") {
		t.Errorf("malformed duration: %v", err)
	}
}

// health is the container health check: it asks /readyz on HTTP_ADDR's
// port (internal/healthcheck tests the answers; this, the wiring).
func TestHealthUsesHTTPAddr(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	var out bytes.Buffer
	ok := run(context.Background(), []string{"health"}, func(k string) string { return map[string]string{"HTTP_ADDR": ":" + u.Port()}[k] }, &out)
	bad := run(context.Background(), []string{"health"}, func(k string) string { return map[string]string{"HTTP_ADDR": ":1"}[k] }, &out)
	if ok != nil || bad == nil {
		t.Errorf("health against the server: %v; against nothing: %v", ok, bad)
	}
}
