package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"
)

// Fault is one fault a scenario injected: what, to whom, and when it began
// and was healed, from the start of the load.
type Fault struct {
	Kind   string        `json:"kind"`
	Target string        `json:"target"`
	At     time.Duration `json:"at"`
	Healed time.Duration `json:"healed"`
}

// faulter injects a scenario's faults into a running stack on a schedule
// drawn from the seed: the same seed, the same kinds at the same times.
type faulter struct {
	s     *stack
	rnd   *rand.Rand
	start time.Time
	d     time.Duration

	mu     sync.Mutex
	faults []Fault
}

// at waits until frac of the load's duration has passed, give or take a
// twentieth of it drawn from the seed.
func (f *faulter) at(ctx context.Context, frac float64) error {
	jitter := (f.rnd.Float64() - 0.5) / 10
	when := f.start.Add(time.Duration((frac + jitter) * float64(f.d)))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(when)):
		return nil
	}
}

// hold waits d, or less if ctx ends (the heal still runs).
func hold(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// inject runs one fault: do breaks something, heal mends it after for.
// Heal always runs, even when the run is being cancelled, so that the
// stack is whole for the checker.
func (f *faulter) inject(ctx context.Context, kind, target string, lasting time.Duration, do func() error, heal func() error) error {
	began := time.Since(f.start)
	if err := do(); err != nil {
		if heal != nil {
			_ = heal() // whatever part of it was done
		}
		return fmt.Errorf("%s on %s: %w", kind, target, err)
	}
	if lasting > 0 { // from when the fault began
		hold(ctx, time.Until(f.start.Add(began+lasting)))
	}
	var herr error
	if heal != nil {
		herr = heal()
	}
	f.mu.Lock()
	f.faults = append(f.faults, Fault{Kind: kind, Target: target, At: began, Healed: time.Since(f.start)})
	f.mu.Unlock()
	if herr != nil {
		return fmt.Errorf("heal %s on %s: %w", kind, target, herr)
	}
	return nil
}

// retarget renames the last fault recorded on target, once what it led to
// is known.
func (f *faulter) retarget(target, to string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.faults) - 1; i >= 0; i-- {
		if f.faults[i].Target == target {
			f.faults[i].Target = to
			return
		}
	}
}

func (f *faulter) recorded() []Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Fault(nil), f.faults...)
}

func (f *faulter) restart(ctx context.Context, r *replica) error {
	if err := r.start(); err != nil {
		return err
	}
	return f.s.waitReady(ctx, r)
}

// killLeader SIGKILLs the order-api replica whose relay leads, and starts
// it again after down.
func (f *faulter) killLeader(ctx context.Context, down time.Duration) error {
	l := f.s.waitLeader(ctx, 15*time.Second)
	if l == nil {
		return fmt.Errorf("no relay leader to kill")
	}
	target := l.name
	err := f.inject(ctx, "kill relay leader", l.name, down, func() error {
		caught, err := f.killInTransaction(ctx, l)
		if err != nil {
			return err
		}
		target += caught
		if next := f.s.waitLeader(ctx, down); next != nil {
			target += " (" + next.name + " took the lead)"
		}
		return nil
	}, func() error { return f.restart(context.WithoutCancel(ctx), l) })
	f.retarget(l.name, target)
	return err
}

// killConsumer SIGKILLs a consumer replica in the middle of a batch.
func (f *faulter) killConsumer(ctx context.Context, down time.Duration) error {
	c := f.s.consumers[f.rnd.IntN(len(f.s.consumers))]
	target := c.name
	err := f.inject(ctx, "kill consumer", c.name, down, func() error {
		caught, err := f.killInTransaction(ctx, c)
		target += caught
		return err
	}, func() error { return f.restart(context.WithoutCancel(ctx), c) })
	f.retarget(c.name, target)
	return err
}

// killInTransaction SIGKILLs r in the middle of its work: it stops r
// (SIGSTOP) until PostgreSQL shows one of r's sessions idle in a
// transaction — r has begun a batch and not yet committed it — and kills
// it then; after 5 s of trying, it kills it anyway. It says which.
func (f *faulter) killInTransaction(ctx context.Context, r *replica) (string, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := r.signal(syscall.SIGSTOP); err != nil {
			return "", err
		}
		var open bool
		err := withDB(context.WithoutCancel(ctx), f.s.pg.URL, func(c *pgx.Conn) error {
			return c.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
				WHERE application_name = $1 AND state = 'idle in transaction'`, r.name).Scan(&open)
		})
		if (err == nil && open) || time.Now().After(deadline) {
			if err := r.kill(); err != nil {
				return "", err
			}
			if open {
				return " (killed with a transaction open)", nil
			}
			return " (no open transaction caught in 5 s)", nil
		}
		if err := r.signal(syscall.SIGCONT); err != nil {
			return "", err
		}
		hold(ctx, time.Duration(1+f.rnd.IntN(20))*time.Millisecond)
	}
}

// pause SIGSTOPs a replica for d: it keeps its connections, and answers
// nothing.
func (f *faulter) pause(ctx context.Context, r *replica, d time.Duration) error {
	return f.inject(ctx, "pause (SIGSTOP)", r.name, d,
		func() error { return r.signal(syscall.SIGSTOP) },
		func() error { return r.signal(syscall.SIGCONT) })
}

// zombieLeader pauses the relay leader and cuts its path to PostgreSQL, so
// that the server ends its session and its advisory lock: another replica
// takes the lead. Then the path is mended and the old leader continued, a
// zombie that believes it still leads and may still hold a batch.
func (f *faulter) zombieLeader(ctx context.Context, d time.Duration) error {
	l := f.s.waitLeader(ctx, 15*time.Second)
	if l == nil {
		return fmt.Errorf("no relay leader to pause")
	}
	p := f.s.proxies[l.name+"/postgres"]
	target := l.name
	defer func() { f.retarget(l.name, target) }()
	return f.inject(ctx, "zombie relay leader (SIGSTOP + PostgreSQL path cut)", l.name, d,
		func() error {
			if err := l.signal(syscall.SIGSTOP); err != nil {
				return err
			}
			p.Stop()
			if next := f.s.waitLeader(ctx, d); next != nil && next != l {
				target += " (" + next.name + " took the lead)"
			} else {
				target += " (no other replica took the lead)"
			}
			return nil
		},
		func() error {
			err := p.Start()
			if serr := l.signal(syscall.SIGCONT); err == nil {
				err = serr
			}
			return err
		})
}

// pgRestart restarts the run's PostgreSQL cluster (fast mode: sessions
// ended, transactions in flight rolled back).
func (f *faulter) pgRestart(ctx context.Context) error {
	return f.inject(ctx, "PostgreSQL fast restart", "postgres", 0,
		func() error { return f.s.pg.Restart(context.WithoutCancel(ctx)) }, nil)
}

// pgCut ends every session of the scenario's databases at once, in the
// middle of whatever transactions they run.
func (f *faulter) pgCut(ctx context.Context) error {
	return f.inject(ctx, "PostgreSQL sessions terminated", "postgres", 0, func() error {
		ctx := context.WithoutCancel(ctx)
		return withDB(ctx, f.s.pg.URL, func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname LIKE 'chaos\_%' AND pid <> pg_backend_pid()`)
			return err
		})
	}, nil)
}

// brokerDown SIGKILLs the broker, and starts it again on its data after
// down.
func (f *faulter) brokerDown(ctx context.Context, down time.Duration) error {
	b := f.s.broker
	return f.inject(ctx, "broker killed and restarted", "broker", down, b.kill, func() error {
		if err := b.start(); err != nil {
			return err
		}
		return f.s.waitBroker(context.WithoutCancel(ctx))
	})
}

// registryDown SIGKILLs the registry, and starts it again on its state
// after down.
func (f *faulter) registryDown(ctx context.Context, down time.Duration) error {
	r := f.s.registry
	return f.inject(ctx, "registry down", "registry", down, r.kill, func() error {
		if err := r.start(); err != nil {
			return err
		}
		return waitHTTP(context.WithoutCancel(ctx), f.s.registryURL+"/subjects", r)
	})
}

// toxic adds a toxiproxy toxic for d to the proxies whose names contain
// part: "/postgres" or "/registry" (every replica's path there), "kafka"
// (the one path to the broker), "client/" (the load's paths to order-api).
func (f *faulter) toxic(ctx context.Context, kind, part, spec string, d time.Duration) error {
	var names []string
	for name := range f.s.proxies {
		if strings.Contains(name, part) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return fmt.Errorf("%s: no proxy named like %q", kind, part)
	}
	toxicName := strings.ReplaceAll(kind, " ", "_")
	return f.inject(ctx, kind, strings.Trim(part, "/")+" paths", d,
		func() error {
			for _, n := range names {
				if _, err := f.s.proxies[n].Toxics.AddToxicJson(strings.NewReader(
					fmt.Sprintf(`{"name":%q,%s}`, toxicName, spec))); err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
			}
			return nil
		},
		func() error {
			for _, n := range names {
				if err := f.s.proxies[n].Toxics.RemoveToxic(context.WithoutCancel(ctx), toxicName); err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
			}
			return nil
		})
}

// addPartitions grows the events topic to n partitions, as an operator
// does: the relay's new events for some orders go to new partitions.
func (f *faulter) addPartitions(ctx context.Context, n int) error {
	return f.inject(ctx, "partitions added", fmt.Sprintf("%s: %d → %d", topic, partitions, n), 0, func() error {
		tr := &kafka.Transport{}
		defer tr.CloseIdleConnections()
		c := &kafka.Client{Addr: kafka.TCP(f.s.brokerAddr), Timeout: 10 * time.Second, Transport: tr}
		resp, err := c.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{
			Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: int32(n)}}})
		if err == nil {
			err = resp.Errors[topic]
		}
		return err
	}, nil)
}

// rollingRestart stops every replica with SIGTERM, one by one, starting
// each again and waiting for it to be ready before the next.
func (f *faulter) rollingRestart(ctx context.Context) error {
	for _, r := range f.s.replicas() {
		if err := f.inject(ctx, "rolling restart", r.name, 0,
			func() error { return r.stop(25 * time.Second) },
			func() error { return f.restart(context.WithoutCancel(ctx), r) }); err != nil {
			return err
		}
	}
	return nil
}
