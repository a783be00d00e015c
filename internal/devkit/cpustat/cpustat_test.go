package cpustat

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
)

// PostgreSQL's CPU over a run keeps what a backend used after the backend
// ends: a connection that does work and closes mid-run (here, this test's
// own) still counts, and the figure never goes down (it once came out
// negative when other tests' backends ended during a run).
func TestPostgresCPUKeepsWhatEndedProcessesUsed(t *testing.T) {
	var tr PostgresTracker
	if err := tr.Sample(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM generate_series(1, 5000000) g WHERE g % 7 = 0").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := tr.Sample(); err != nil {
		t.Fatal(err)
	}
	used := tr.Total()
	if used < 0.05 {
		t.Fatalf("PostgreSQL used %.3fs for a query over 5 million rows, want some", used)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		procs, err := PostgresProcs()
		if err != nil {
			t.Fatal(err)
		}
		if _, alive := procs[pid]; !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still runs 10s after its connection closed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tr.Sample(); err != nil {
		t.Fatal(err)
	}
	// Total sums per-process floats in no set order: allow their rounding.
	if after := tr.Total(); after < used-1e-6 {
		t.Errorf("PostgreSQL's CPU fell from %.3fs to %.3fs when a backend ended", used, after)
	}
}
