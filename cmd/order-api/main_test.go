package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
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

// The container health check: health exits 0 only when the service on
// HTTP_ADDR answers 200 on /readyz.
func TestHealthChecksReadyz(t *testing.T) {
	for _, tc := range []struct {
		status int
		ok     bool
	}{{http.StatusOK, true}, {http.StatusServiceUnavailable, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(tc.status)
		}))
		u, _ := url.Parse(srv.URL)
		env := map[string]string{"HTTP_ADDR": ":" + u.Port()}
		var out bytes.Buffer
		err := run(context.Background(), []string{"health"}, func(k string) string { return env[k] }, &out)
		srv.Close()
		if tc.ok && err != nil {
			t.Errorf("readyz %d: health failed: %v", tc.status, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("readyz %d: health succeeded", tc.status)
		}
		if !strings.Contains(out.String(), strconv.Itoa(tc.status)) {
			t.Errorf("readyz %d: output %q lacks the status", tc.status, out.String())
		}
	}
	// Nothing listening is unhealthy too.
	srv := httptest.NewServer(http.NotFoundHandler())
	u, _ := url.Parse(srv.URL)
	srv.Close()
	env := map[string]string{"HTTP_ADDR": "127.0.0.1:" + u.Port()}
	if err := run(context.Background(), []string{"health"}, func(k string) string { return env[k] }, &bytes.Buffer{}); err == nil {
		t.Error("health succeeded with nothing listening")
	}
}
