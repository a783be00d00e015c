package main

import "github.com/ordersonkafka/orders/internal/devkit/cpustat"

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
	snap["loadgen"] = cpustat.Self() // the client's own share of the machine
	if err := g.pg.Sample(); err != nil {
		errs["postgresql"] = err.Error()
	} else {
		snap["postgresql"] = g.pg.Total()
	}
	return snap, errs
}
