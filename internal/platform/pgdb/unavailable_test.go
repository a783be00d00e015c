package pgdb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// TestUnavailableClassifiesWhatTheDriverSays: errors as pgx returns them,
// wrapped as the stores wrap them.
func TestUnavailableClassifiesWhatTheDriverSays(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("get order: %w", err) }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"a connection exception (08006)", wrap(&pgconn.PgError{Code: "08006"}), true},
		{"the backend terminated (57P01)", wrap(&pgconn.PgError{Code: "57P01"}), true},
		{"a crash shutdown (57P02)", wrap(&pgconn.PgError{Code: "57P02"}), true},
		{"the server starting (57P03)", wrap(&pgconn.PgError{Code: "57P03"}), true},
		{"too many connections (53300)", wrap(&pgconn.PgError{Code: "53300"}), true},
		{"a connection cut mid-reply", wrap(io.ErrUnexpectedEOF), true},
		{"a closed connection", wrap(pgconn.ErrConnClosed), true},
		{"a unique violation (23505)", wrap(&pgconn.PgError{Code: "23505"}), false},
		{"a check violation (23514)", wrap(&pgconn.PgError{Code: "23514"}), false},
		{"a NUL in text (22021)", wrap(&pgconn.PgError{Code: "22021"}), false},
		{"a value too long (22001)", wrap(&pgconn.PgError{Code: "22001"}), false},
		{"a serialization failure (40001)", wrap(&pgconn.PgError{Code: "40001"}), false},
		{"a syntax error (42601)", wrap(&pgconn.PgError{Code: "42601"}), false},
		{"no rows", wrap(pgx.ErrNoRows), false},
		{"a bug", errors.New("items of order: invalid character"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := pgdb.Unavailable(context.Background(), tc.err); got != tc.want {
				t.Errorf("Unavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestUnavailableOnARealServer: the failures a real server and pool
// produce, and the data errors it must not be confused with.
func TestUnavailableOnARealServer(t *testing.T) {
	ctx := context.Background()
	db := pgtest.MustDB(t, nil)

	t.Run("connection refused", func(t *testing.T) {
		_, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=5")
		if err == nil || !pgdb.Unavailable(ctx, err) {
			t.Errorf("Unavailable(%v) = false", err)
		}
	})
	t.Run("data errors are not unavailability", func(t *testing.T) {
		for _, q := range []string{"SELECT 'a' || chr(0)", "SELECT 1/0", "CREATE TEMP TABLE u (k int PRIMARY KEY); INSERT INTO u VALUES (1), (1)"} {
			_, err := db.Pool.Exec(ctx, q)
			if err == nil || pgdb.Unavailable(ctx, err) {
				t.Errorf("%s: Unavailable(%v) = true", q, err)
			}
		}
	})
	t.Run("a pool that cannot get a connection in time", func(t *testing.T) {
		cfg, err := pgxpool.ParseConfig(db.URL)
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = 1
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		held, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Release()
		bounded, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err = pool.Exec(bounded, "SELECT 1")
		if err == nil || !pgdb.Unavailable(ctx, err) {
			t.Errorf("an acquire past the bound while the caller waits: Unavailable(%v) = false", err)
		}
		// The caller's own context ending is the caller's business.
		gone, cancel := context.WithCancel(ctx)
		cancel()
		_, err = pool.Exec(gone, "SELECT 1")
		if err == nil || pgdb.Unavailable(gone, err) {
			t.Errorf("a caller that went away: Unavailable(%v) = true", err)
		}
	})
	t.Run("a database refusing connections, and a terminated backend", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		defer db.Stop(t)()
		if _, err := conn.Exec(ctx, "SELECT 1"); err == nil || !pgdb.Unavailable(ctx, err) {
			t.Errorf("a query on a terminated backend: Unavailable(%v) = false", err)
		}
		_, err = pgx.Connect(ctx, db.URL)
		if err == nil || !pgdb.Unavailable(ctx, err) {
			t.Errorf("connecting to a database refusing connections: Unavailable(%v) = false", err)
		}
	})
}
