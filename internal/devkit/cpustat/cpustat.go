// Package cpustat measures CPU time for the load generator and the
// benchmarks: this process's own, and PostgreSQL's from /proc (Linux only,
// and only for a server on this machine).
package cpustat

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// Self is the CPU time this process has used, user and system, in seconds.
func Self() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// PostgresTracker adds up the CPU of PostgreSQL's processes from its first
// Sample on, process by process, so that a process ending during the run
// (another client's connection closing, a test database dropped) keeps the
// CPU it was seen to use instead of taking it out of the sum: sampled each
// second with the memory, a process loses at most its last second. A process
// that starts during the run counts from its start.
type PostgresTracker struct {
	mu      sync.Mutex
	started bool
	procs   map[int]*procCPU
	reused  float64 // what processes whose PID was taken by a new one had used
}

type procCPU struct{ first, last float64 }

func (t *PostgresTracker) Sample() error {
	now, err := PostgresProcs()
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.procs == nil {
		t.procs = map[int]*procCPU{}
	}
	for pid, v := range now {
		p, ok := t.procs[pid]
		switch {
		case !ok && t.started:
			t.procs[pid] = &procCPU{first: 0, last: v}
		case !ok:
			t.procs[pid] = &procCPU{first: v, last: v}
		case v < p.last: // the PID now names another process
			t.reused += p.last - p.first
			*p = procCPU{first: 0, last: v}
		default:
			p.last = v
		}
	}
	t.started = true
	return nil
}

// Total is the CPU used since the first sample, in seconds.
func (t *PostgresTracker) Total() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	sum := t.reused
	for _, p := range t.procs {
		sum += p.last - p.first
	}
	return sum
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo).
const clockTicks = 100

// PostgresProcs reads utime and stime of every process named postgres, in
// seconds, by PID.
func PostgresProcs() (map[int]float64, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		return nil, errors.New("no /proc to read PostgreSQL's CPU from (Linux only)")
	}
	procs := map[int]float64{}
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone since the glob
		}
		open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || close < open || string(b[open+1:close]) != "postgres" {
			continue
		}
		// After "(comm) ": state is field 3; utime and stime are 14 and 15.
		f := bytes.Fields(b[close+2:])
		if len(f) < 13 {
			continue
		}
		u, err1 := strconv.ParseFloat(string(f[11]), 64)
		s, err2 := strconv.ParseFloat(string(f[12]), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		procs[pid] = (u + s) / clockTicks
	}
	if len(procs) == 0 {
		return nil, errors.New("no process named postgres visible on this machine (a remote server is not measured)")
	}
	return procs, nil
}
