package chaos

import (
	"context"
	"time"
)

// Scenario is a named schedule of faults, injected while the load runs.
type Scenario struct {
	Name string
	Doc  string // what it does, for -list and docs/reliability.md
	run  func(ctx context.Context, f *faulter) error
}

// Scenarios are every scenario, in the order make chaos runs them.
var Scenarios = []Scenario{
	{Name: "kill", Doc: "SIGKILL of the relay leader, then of an order-consumer replica, each caught with a transaction open (stopped until PostgreSQL shows one of its sessions idle in a transaction), and restarted 2 s later.",
		run: func(ctx context.Context, f *faulter) error {
			if err := f.at(ctx, 0.2); err != nil {
				return err
			}
			if err := f.killLeader(ctx, 2*time.Second); err != nil {
				return err
			}
			if err := f.at(ctx, 0.55); err != nil {
				return err
			}
			return f.killConsumer(ctx, 2*time.Second)
		}},
	{Name: "pause", Doc: "SIGSTOP of an order-consumer replica for 5 s, then a zombie relay leader: SIGSTOP with its path to PostgreSQL cut for 6 s (its session and lock end, the other replica leads), then both healed.",
		run: func(ctx context.Context, f *faulter) error {
			if err := f.at(ctx, 0.15); err != nil {
				return err
			}
			if err := f.pause(ctx, f.s.consumers[f.rnd.IntN(len(f.s.consumers))], 5*time.Second); err != nil {
				return err
			}
			if err := f.at(ctx, 0.5); err != nil {
				return err
			}
			return f.zombieLeader(ctx, 6*time.Second)
		}},
	{Name: "postgres", Doc: "A fast restart of PostgreSQL, then every session of the services terminated in the middle of its transactions.",
		run: func(ctx context.Context, f *faulter) error {
			if err := f.at(ctx, 0.2); err != nil {
				return err
			}
			if err := f.pgRestart(ctx); err != nil {
				return err
			}
			if err := f.at(ctx, 0.6); err != nil {
				return err
			}
			return f.pgCut(ctx)
		}},
	{Name: "broker", Doc: "The broker SIGKILLed, down for 5 s, and started again on its data directory.",
		run: func(ctx context.Context, f *faulter) error {
			if err := f.at(ctx, 0.3); err != nil {
				return err
			}
			return f.brokerDown(ctx, 5*time.Second)
		}},
	{Name: "registry", Doc: "The Schema Registry SIGKILLed, down for 6 s, and started again on its state.",
		run: func(ctx context.Context, f *faulter) error {
			if err := f.at(ctx, 0.3); err != nil {
				return err
			}
			return f.registryDown(ctx, 6*time.Second)
		}},
	{Name: "network", Doc: "Through toxiproxy, one after another: 300 ms (±100) of latency on every path to PostgreSQL for 3 s; those paths timing out (data held, connections closed after 2 s) for 3 s; every registry connection reset as it sends, for 3 s; the load's answers from order-api lost (connections reset as the answer comes back) for 3 s; the path to the broker black-holed in one direction (requests dropped, connections held open) for 4 s; 200 ms of latency to the broker for 2 s.",
		run: func(ctx context.Context, f *faulter) error {
			for _, s := range []struct {
				frac              float64
				kind, part, toxic string
				d                 time.Duration
			}{
				{0.05, "latency", "/postgres", `"type":"latency","stream":"downstream","attributes":{"latency":300,"jitter":100}`, 3 * time.Second},
				{0.22, "timeouts", "/postgres", `"type":"timeout","stream":"upstream","attributes":{"timeout":2000}`, 3 * time.Second},
				{0.40, "connections reset", "/registry", `"type":"reset_peer","stream":"upstream","attributes":{"timeout":0}`, 3 * time.Second},
				{0.55, "answers lost (reset)", "client/", `"type":"reset_peer","stream":"downstream","attributes":{"timeout":0}`, 3 * time.Second},
				{0.70, "black hole (one direction)", "kafka", `"type":"timeout","stream":"upstream","attributes":{"timeout":0}`, 4 * time.Second},
				{0.88, "latency", "kafka", `"type":"latency","stream":"downstream","attributes":{"latency":200,"jitter":50}`, 2 * time.Second},
			} {
				if err := f.at(ctx, s.frac); err != nil {
					return err
				}
				if err := f.toxic(ctx, s.kind, s.part, s.toxic, s.d); err != nil {
					return err
				}
			}
			return nil
		}},
	{Name: "partitions", Doc: "The events topic grown from 6 to 12 partitions while the load runs: an order's later events may go to a new partition, which the consumers find by themselves.",
		run: func(ctx context.Context, f *faulter) error {
			if err := f.at(ctx, 0.3); err != nil {
				return err
			}
			return f.addPartitions(ctx, 2*partitions)
		}},
	{Name: "rolling", Doc: "A rolling restart: every replica stopped with SIGTERM, started again and ready before the next.",
		run: func(ctx context.Context, f *faulter) error {
			if err := f.at(ctx, 0.1); err != nil {
				return err
			}
			return f.rollingRestart(ctx)
		}},
}

// ScenarioNamed returns the scenario called name.
func ScenarioNamed(name string) (Scenario, bool) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}
