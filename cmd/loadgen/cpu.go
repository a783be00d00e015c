package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// cpuSnapshot is the CPU time each measured process has used so far, in
// seconds: the services' from their process_cpu_seconds_total, PostgreSQL's
// from /proc (every process named postgres on this machine: the backends of
// both services' connections, the relay's, the consumer's, and the
// server's own workers such as the WAL writer).
type cpuSnapshot map[string]float64

// cpu reads a snapshot; a process it cannot measure is left out and named
// in errs.
func (g *generator) cpu() (cpuSnapshot, map[string]string) {
	snap, errs := cpuSnapshot{}, map[string]string{}
	for name, u := range g.targets() {
		v, err := metricValue(g.client, u+"/metrics", "process_cpu_seconds_total")
		if err != nil {
			errs[name] = err.Error()
			continue
		}
		snap[name] = v
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		snap["loadgen"] = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9 // the client's own share of the machine
	}
	if v, err := postgresCPU(); err != nil {
		errs["postgresql"] = err.Error()
	} else {
		snap["postgresql"] = v
	}
	return snap, errs
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo).
const clockTicks = 100

// postgresCPU sums utime and stime of every process named postgres. A
// process that exits during the run takes its CPU with it (the services'
// pools keep their connections, so little is lost); one that starts is
// counted from its start.
func postgresCPU() (float64, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		return 0, errors.New("no /proc to read PostgreSQL's CPU from (Linux only)")
	}
	var ticks float64
	found := false
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
		ticks += u + s
		found = true
	}
	if !found {
		return 0, errors.New("no process named postgres visible on this machine (a remote server is not measured)")
	}
	return ticks / clockTicks, nil
}
