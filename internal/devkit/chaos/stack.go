package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// Binaries are the programs a stack runs.
type Binaries struct {
	API, Consumer string   // order-api and order-consumer
	Self          []string // the command that runs RunChildIfAsked: the broker and the registry
}

const (
	topic      = "order-events"
	dlqTopic   = "order-events.dlq"
	partitions = 6
	replicas   = 2
)

// stack is one scenario's system: two order-api and two order-consumer
// replicas, the broker and the registry as processes of their own, fresh
// databases on the run's PostgreSQL cluster, and a toxiproxy proxy on
// every path from a service to what it depends on. Nothing is shared with
// the previous scenario but the cluster (whose databases are new).
type stack struct {
	dir                      string
	pg                       *devstack.Cluster
	ordersURL, projectionURL string // direct, for the runner and the checker

	tox     *toxiproxy.ApiServer
	proxies map[string]*toxiproxy.Proxy // "kafka"; "<replica>/postgres", "<replica>/registry"; "client/<order-api replica>"

	broker, registry *proc
	brokerAddr       string // the broker's own listener; clients use the kafka proxy's
	registryURL      string // direct
	apis, consumers  []*replica
}

type replica struct {
	*proc
	url   string // http://127.0.0.1:port
	front string // order-api: the load's way in, through a proxy ("client/<name>")
}

func (s *stack) replicas() []*replica { return append(append([]*replica{}, s.apis...), s.consumers...) }

// kafkaProxy is the address every client of the broker uses.
func (s *stack) kafkaProxy() string { return s.proxies["kafka"].Listen }

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// newStack starts a scenario's system in dir and waits until every
// replica is ready.
func newStack(ctx context.Context, bins Binaries, pg *devstack.Cluster, dir, name string) (_ *stack, err error) {
	s := &stack{dir: dir, pg: pg, proxies: map[string]*toxiproxy.Proxy{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db := strings.ReplaceAll(name, "-", "_")
	if s.ordersURL, err = databaseURL(pg.URL, "chaos_"+db+"_orders"); err != nil {
		return nil, err
	}
	if s.projectionURL, err = databaseURL(pg.URL, "chaos_"+db+"_projection"); err != nil {
		return nil, err
	}
	for _, u := range []string{s.ordersURL, s.projectionURL} {
		if err := recreateDatabase(ctx, pg.URL, u); err != nil {
			return nil, err
		}
	}

	s.tox = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	if s.brokerAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	if _, err := s.proxy("kafka", s.brokerAddr); err != nil {
		return nil, err
	}
	registryAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s.registryURL = "http://" + registryAddr
	s.broker = &proc{name: "broker", argv: bins.Self, logPath: filepath.Join(dir, "broker.log"), env: []string{
		envChild + "=" + childBroker, envListen + "=" + s.brokerAddr, envAdvertise + "=" + s.kafkaProxy(),
		envDataDir + "=" + filepath.Join(dir, "kafka"), envPartitions + "=" + strconv.Itoa(partitions),
		envTopic + "=" + topic, envDLQ + "=" + dlqTopic,
	}}
	s.registry = &proc{name: "registry", argv: bins.Self, logPath: filepath.Join(dir, "registry.log"), env: []string{
		envChild + "=" + childRegistry, envListen + "=" + registryAddr, envDataDir + "=" + filepath.Join(dir, "registry.json"),
	}}
	for _, p := range []*proc{s.broker, s.registry} {
		if err := p.start(); err != nil {
			return nil, err
		}
	}
	if err := s.waitBroker(ctx); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, s.registryURL+"/subjects", s.registry); err != nil {
		return nil, err
	}

	for i := 1; i <= replicas; i++ {
		a, err := s.replica(fmt.Sprintf("order-api-%d", i), bins.API, s.ordersURL, nil)
		if err != nil {
			return nil, err
		}
		s.apis = append(s.apis, a)
		c, err := s.replica(fmt.Sprintf("order-consumer-%d", i), bins.Consumer, s.projectionURL, []string{"DLQ_TOPIC=" + dlqTopic})
		if err != nil {
			return nil, err
		}
		s.consumers = append(s.consumers, c)
	}
	// One order-api first: it migrates and registers the schema, which
	// the others would otherwise race for at once (they would wait on the
	// migration lock; this only makes start-up quicker to read in logs).
	for _, group := range [][]*replica{s.apis[:1], s.apis[1:], s.consumers} {
		for _, r := range group {
			if err := r.start(); err != nil {
				return nil, err
			}
		}
		for _, r := range group {
			if err := s.waitReady(ctx, r); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// proxy starts a toxiproxy proxy on a free port of 127.0.0.1 to upstream.
func (s *stack) proxy(name, upstream string) (*toxiproxy.Proxy, error) {
	p := toxiproxy.NewProxy(s.tox, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("proxy %s: %w", name, err)
	}
	s.proxies[name] = p
	return p, nil
}

// replica prepares a service replica whose paths to PostgreSQL and the
// registry go through proxies of its own, and to the broker through the
// shared kafka proxy (the broker advertises that one address).
func (s *stack) replica(name, bin, dbURL string, extra []string) (*replica, error) {
	pgHost, err := hostPort(s.pg.URL)
	if err != nil {
		return nil, err
	}
	pgp, err := s.proxy(name+"/postgres", pgHost)
	if err != nil {
		return nil, err
	}
	regp, err := s.proxy(name+"/registry", strings.TrimPrefix(s.registryURL, "http://"))
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// Its sessions carry its name, so that a fault can find them in
	// pg_stat_activity.
	viaProxy := strings.Replace(dbURL, pgHost, pgp.Listen, 1) + "&application_name=" + name
	env := append([]string{
		"HTTP_ADDR=" + httpAddr,
		"DATABASE_URL=" + viaProxy,
		"KAFKA_BROKERS=" + s.kafkaProxy(),
		"SCHEMA_REGISTRY_URL=http://" + regp.Listen,
		"ORDER_EVENTS_TOPIC=" + topic,
		"LOG_FORMAT=text",
		"LOG_LEVEL=info",
		"ADMIN_ADDR=",
	}, extra...)
	// The load reaches each order-api through a proxy of its own too, so
	// that answers can be lost on the way back.
	front := ""
	if strings.HasPrefix(name, "order-api") {
		p, err := s.proxy("client/"+name, httpAddr)
		if err != nil {
			return nil, err
		}
		front = "http://" + p.Listen
	}
	return &replica{proc: &proc{name: name, argv: []string{bin}, env: env, logPath: filepath.Join(s.dir, name+".log")},
		url: "http://" + httpAddr, front: front}, nil
}

func hostPort(dsn string) (string, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), nil
}

// waitReady waits for a replica's /readyz to answer 200.
func (s *stack) waitReady(ctx context.Context, r *replica) error {
	return waitHTTP(ctx, r.url+"/readyz", r.proc)
}

func waitHTTP(ctx context.Context, url string, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := c.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !p.running() {
			return fmt.Errorf("%s exited before it was ready (see %s)", p.name, p.logPath)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s after 60s (see %s)", p.name, url, p.logPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *stack) waitBroker(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		// Listening is not enough: the broker answers metadata once it has
		// loaded its data directory.
		if c, err := kafka.DialContext(ctx, "tcp", s.brokerAddr); err == nil {
			_, err := c.ReadPartitions(topic)
			c.Close()
			if err == nil {
				return nil
			}
		}
		if !s.broker.running() {
			return fmt.Errorf("the broker exited (see %s)", s.broker.logPath)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the broker does not listen on %s after 60s (see %s)", s.brokerAddr, s.broker.logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// leader returns the order-api replica whose relay holds the lock
// (outbox_relay_leader 1 on its /metrics), or nil if none says so.
func (s *stack) leader(ctx context.Context) *replica {
	for _, a := range s.apis {
		if !a.running() {
			continue
		}
		if v, ok := metric(ctx, a.url, "outbox_relay_leader"); ok && v == 1 {
			return a
		}
	}
	return nil
}

// waitLeader waits up to d for a relay leader.
func (s *stack) waitLeader(ctx context.Context, d time.Duration) *replica {
	deadline := time.Now().Add(d)
	for {
		if l := s.leader(ctx); l != nil || time.Now().After(deadline) {
			return l
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// metric reads one unlabelled sample from a replica's /metrics.
func metric(ctx context.Context, base, name string) (float64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// close stops everything the stack started; the cluster stays, its
// databases too (the next scenario makes new ones).
func (s *stack) close() {
	_ = s.stopReplicas()
	for _, p := range []*proc{s.broker, s.registry} {
		if p != nil {
			_ = p.stop(10 * time.Second)
		}
	}
	for _, p := range s.proxies {
		p.Stop()
	}
}

// stopReplicas stops every service replica at once, each with SIGTERM
// (its graceful shutdown), and returns the first that did not stop so.
func (s *stack) stopReplicas() error {
	rs := s.replicas()
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.stop(25 * time.Second)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func databaseURL(server, name string) (string, error) {
	cfg, err := pgx.ParseConfig(server)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), name), nil
}

// recreateDatabase drops the database of url, if it is there, and makes it
// again, empty.
func recreateDatabase(ctx context.Context, server, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	c, err := pgx.Connect(ctx, server)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	name := pgx.Identifier{cfg.Database}.Sanitize()
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return err
	}
	if err := pgdb.EnsureDatabase(ctx, url); err != nil {
		return err
	}
	return nil
}
