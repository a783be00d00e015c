// Command playground runs the whole system without Docker: an embedded
// Kafka-protocol broker (kfake) on 127.0.0.1:9092 and a Confluent-compatible
// Schema Registry on 127.0.0.1:8081 in this process, and order-api on 8080
// and order-consumer on 8082 as two child processes of the same binary (so
// each has its own memory and its own /metrics, as in production), on a real
// PostgreSQL with a database for each service (see devstack.EnsurePostgres
// for how one is found or started). `make run` starts it; Ctrl-C stops the
// services gracefully, then everything else.
//
// Everything listens on 127.0.0.1 (-host, PLAYGROUND_HOST, moves all but
// the broker); each port has a flag and a variable (-api-port,
// PLAYGROUND_API_PORT…), and -port-offset (PLAYGROUND_PORT_OFFSET) moves
// them all, so that two checkouts run side by side. A port already taken
// is refused before anything starts. The databases are named after the
// checkout (orders_<hash of the state directory's path>), so that two
// checkouts on one server never share or drop each other's data.
//
// On 127.0.0.1:8090 (-inspect-port) the playground serves a read-only
// page of what it holds, as Confluent Control Center would show it
// (package inspect): each topic's partitions and offsets, the consumer
// group's lag, the registry's subjects, the latest events decoded and
// filterable by order, the dead letters with the command that replays each,
// and at /orders/<id> one order's trail through order-api's database, the
// topic and order-consumer's database. With -secure it reads the secured
// broker and registry with order-consumer's credentials.
//
// The playground keeps its state in one directory (-state, default
// .playground): the broker's data (topics, records, committed offsets), the
// registry's schemas with their IDs, and the PostgreSQL cluster it had to
// start when no server answered. Started again, it resumes all of it, so an
// order placed before a restart is still read, and its events still decode.
// `make run-fresh` (-fresh) drops the two databases and the directory first.
// Each start writes every variable it gives the services to
// <state>/order-api.env and <state>/order-consumer.env, which a shell can
// source to run the operator commands against the playground.
//
// The OTEL_* and LOG_* variables of the environment reach both services, so
// `OTEL_TRACES_EXPORTER=console make run` prints their spans.
//
// With -secure (`make run-secure`) everything is secured as in production:
// the broker takes only TLS with SASL/SCRAM-SHA-512, the registry only HTTPS
// with basic auth, and both APIs only JWT bearer tokens from a local issuer
// on :8083. A throwaway CA, the credentials and a Kafka client.properties go
// to a temporary directory (removed on exit), and the banner prints the
// variables and a curl that works as printed.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/inspect"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/logging"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/internal/platform/service"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) == 3 && os.Args[1] == childArg {
		if err := runService(ctx, os.Args[2], os.Getenv, os.Stderr); err != nil {
			fmt.Fprintf(os.Stderr, "playground %s: %v\n", os.Args[2], err)
			os.Exit(1)
		}
		return
	}
	opts := defaults()
	fs := flag.NewFlagSet("playground", flag.ExitOnError)
	fs.BoolVar(&opts.secure, "secure", false, "secure everything: Kafka SASL_SSL (SCRAM-SHA-512), registry HTTPS with basic auth, JWT bearer tokens on both APIs (keeps no state: new certificates, credentials and broker each run)")
	fs.StringVar(&opts.state, "state", ".playground", "directory keeping the broker's data, the registry's schemas and a PostgreSQL cluster the playground started, across restarts")
	fs.BoolVar(&opts.fresh, "fresh", false, "start from nothing: drop the playground's databases and remove the state directory first")
	host := fs.String("host", envOr("PLAYGROUND_HOST", "127.0.0.1"), "the address the APIs, the registry and the token issuer listen on (PLAYGROUND_HOST; the broker is always on 127.0.0.1)")
	offset := fs.Int("port-offset", envInt("PLAYGROUND_PORT_OFFSET", 0), "added to every port, to run beside another playground (PLAYGROUND_PORT_OFFSET)")
	ports := map[string]*int{}
	for _, p := range playgroundPorts {
		ports[p.flag] = fs.Int(p.flag, envInt(p.env, p.port), fmt.Sprintf("%s's port, before -port-offset (%s)", p.what, p.env))
	}
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "playground: unexpected arguments %q (see -h)\n", fs.Args())
		os.Exit(2)
	}
	if err := opts.listenOn(*host, *offset, ports); err != nil {
		fmt.Fprintln(os.Stderr, "playground:", err)
		os.Exit(2)
	}
	if err := opts.nameDatabases(); err != nil {
		fmt.Fprintln(os.Stderr, "playground:", err)
		os.Exit(1)
	}
	if err := run(ctx, opts, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "playground:", err)
		os.Exit(1)
	}
}

const (
	topic      = "order-events"
	dlqTopic   = "order-events.dlq"
	partitions = 6
)

// options are where the playground listens and what it names its
// databases; the tests move them out of a running playground's way.
type options struct {
	secure                                      bool
	state                                       string // "" keeps nothing (the tests, and -secure)
	fresh                                       bool
	kafkaPort                                   int
	registryAddr, apiAddr, consumerAddr, issuer string // host:port
	inspectAddr                                 string // host:port of the inspector page
	kafkaPlainAddr                              string // -secure: host:port of the plain gateway to the broker
	ordersDB, projectionDB                      string
}

// defaults are the playground's addresses, the same ports as
// docker-compose.yml's (the token issuer is the secure playground's only),
// on 127.0.0.1 only.
func defaults() options {
	return options{kafkaPort: 9092, registryAddr: "127.0.0.1:8081", apiAddr: "127.0.0.1:8080", consumerAddr: "127.0.0.1:8082",
		issuer: "127.0.0.1:8083", inspectAddr: "127.0.0.1:8090", kafkaPlainAddr: "127.0.0.1:9093", ordersDB: "orders", projectionDB: "orders_projection"}
}

// playgroundPorts are the ports a user may move, each with its flag and
// variable; -port-offset (PLAYGROUND_PORT_OFFSET) moves them all.
var playgroundPorts = []struct {
	what, flag, env string
	port            int
}{
	{"order-api", "api-port", "PLAYGROUND_API_PORT", 8080},
	{"the Schema Registry", "registry-port", "PLAYGROUND_REGISTRY_PORT", 8081},
	{"order-consumer", "consumer-port", "PLAYGROUND_CONSUMER_PORT", 8082},
	{"the token issuer (-secure)", "issuer-port", "PLAYGROUND_ISSUER_PORT", 8083},
	{"the inspector page", "inspect-port", "PLAYGROUND_INSPECT_PORT", 8090},
	{"Kafka's plain gateway (-secure)", "kafka-plain-port", "PLAYGROUND_KAFKA_PLAIN_PORT", 9093},
	{"Kafka", "kafka-port", "PLAYGROUND_KAFKA_PORT", 9092},
}

// listenOn sets the addresses from the host, the offset and each port.
func (o *options) listenOn(host string, offset int, ports map[string]*int) error {
	addr := map[string]string{}
	for _, p := range playgroundPorts {
		n := *ports[p.flag] + offset
		if n <= 0 || n > 65535 {
			return fmt.Errorf("%s's port %d + -port-offset %d is not a port (-%s, %s)", p.what, *ports[p.flag], offset, p.flag, p.env)
		}
		addr[p.flag] = net.JoinHostPort(host, strconv.Itoa(n))
		if p.flag == "kafka-port" {
			o.kafkaPort = n
		}
	}
	o.apiAddr, o.registryAddr, o.consumerAddr, o.issuer = addr["api-port"], addr["registry-port"], addr["consumer-port"], addr["issuer-port"]
	o.inspectAddr = addr["inspect-port"]
	// The gateway logs in for whoever reaches it: localhost only, whatever -host says.
	o.kafkaPlainAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(*ports["kafka-plain-port"]+offset))
	return nil
}

// checkPorts refuses, before anything starts, a port another program
// holds, naming what would have used it and how to move it.
func checkPorts(o options) error {
	addrs := map[string]string{"api-port": o.apiAddr, "registry-port": o.registryAddr, "consumer-port": o.consumerAddr,
		"kafka-port": net.JoinHostPort("127.0.0.1", strconv.Itoa(o.kafkaPort))}
	addrs["inspect-port"] = o.inspectAddr
	if o.secure {
		addrs["issuer-port"] = o.issuer
		addrs["kafka-plain-port"] = o.kafkaPlainAddr
	}
	for _, p := range playgroundPorts {
		a, ok := addrs[p.flag]
		if !ok {
			continue
		}
		if _, port, _ := net.SplitHostPort(a); port == "0" {
			continue // the tests' "any free port"
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s cannot listen on %s, which is taken (%v): move it with -%s or %s, or every port with -port-offset N or PLAYGROUND_PORT_OFFSET=N",
				p.what, a, err, p.flag, p.env)
		}
		ln.Close()
	}
	return nil
}

// nameDatabases names the two databases after the checkout (the state
// directory's absolute path), so that two checkouts on one server never
// share, or drop, each other's data.
func (o *options) nameDatabases() error {
	abs, err := filepath.Abs(o.state)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(abs))
	tag := hex.EncodeToString(sum[:4])
	o.ordersDB, o.projectionDB = "orders_"+tag, "orders_projection_"+tag
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	v := os.Getenv(k)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "playground: %s=%q is not a number\n", k, v)
		os.Exit(2)
	}
	return n
}

func run(ctx context.Context, opts options, getenv func(string) string, stdout, stderr io.Writer) error {
	log, err := logging.New(stderr, "info", "text")
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }

	if err := checkPorts(opts); err != nil {
		return err
	}
	if opts.secure {
		opts.state = "" // new certificates and credentials each run: nothing to resume
	}
	st, err := openState(opts.state, opts.fresh)
	if err != nil {
		return err
	}
	server, stopPG, err := devstack.EnsurePostgres(ctx, getenv, logf, st.clusterDir())
	if err != nil {
		return err
	}
	defer func() {
		if err := stopPG(); err != nil {
			log.Warn("stop PostgreSQL", "error", err)
		}
	}()
	ordersURL, err := withDatabase(server, opts.ordersDB)
	if err != nil {
		return err
	}
	projectionURL, err := withDatabase(server, opts.projectionDB)
	if err != nil {
		return err
	}
	for _, u := range []string{ordersURL, projectionURL} {
		if opts.fresh {
			if err := dropDatabase(ctx, u); err != nil {
				return err
			}
		}
		if st.orders < 0 { // what order-api's database holds, before it is made
			if st.orders, err = ordersHeld(ctx, u); err != nil {
				return err
			}
		}
		if err := pgdb.EnsureDatabase(ctx, u); err != nil {
			return err
		}
	}

	kcfg := devstack.KafkaConfig{Port: opts.kafkaPort, Partitions: partitions, Topics: []string{topic, dlqTopic}, DataDir: st.path("kafka")}
	rcfg := devstack.RegistryConfig{Addr: opts.registryAddr, StatePath: st.path("registry.json")}
	var sec *security
	if opts.secure {
		if sec, err = secure(opts.issuer); err != nil {
			return err
		}
		defer sec.close()
		kcfg.Opts, rcfg.TLS, rcfg.BasicAuthUserInfo = sec.kafkaOpts, sec.serverTLS, sec.registryUserInfo
	}
	kafka, err := devstack.StartKafka(kcfg)
	if err != nil {
		return fmt.Errorf("start Kafka on :%d: %w", opts.kafkaPort, err)
	}
	defer kafka.Close()
	registry, err := devstack.StartRegistryWith(rcfg)
	if err != nil {
		return fmt.Errorf("start Schema Registry on %s: %w", opts.registryAddr, err)
	}
	defer registry.Close()

	shared := map[string]string{
		"KAFKA_BROKERS":       kafka.Brokers()[0],
		"SCHEMA_REGISTRY_URL": registry.URL(),
		"ORDER_EVENTS_TOPIC":  topic,
		"DLQ_TOPIC":           dlqTopic,
		"LOG_FORMAT":          "text",
	}
	services := map[string]map[string]string{
		"order-api":      {"HTTP_ADDR": opts.apiAddr, "DATABASE_URL": ordersURL},
		"order-consumer": {"HTTP_ADDR": opts.consumerAddr, "DATABASE_URL": projectionURL},
	}
	// ADMIN_ADDR (pprof) is order-api's; order-consumer's is the next port.
	if admin := getenv("ADMIN_ADDR"); admin != "" {
		next, err := nextPort(admin)
		if err != nil {
			return err
		}
		services["order-api"]["ADMIN_ADDR"], services["order-consumer"]["ADMIN_ADDR"] = admin, next
	}
	var envFiles map[string]string
	if sec != nil {
		maps.Copy(shared, sec.env)
		if err := sec.writeFiles(shared, services); err != nil {
			return err
		}
		envFiles = sec.EnvFiles
	} else if st.dir != "" {
		if envFiles, err = writeEnvFiles(st.dir, "the playground", shared, services); err != nil {
			return err
		}
	}
	// Check both configurations here, so a bad variable fails before anything starts.
	if _, err := config.Load[orderapi.Config](overlay(getenv, shared, services["order-api"])); err != nil {
		return err
	}
	consumerCfg, err := config.Load[orderconsumer.Config](overlay(getenv, shared, services["order-consumer"]))
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the playground's binary to start the services: %w", err)
	}

	// kcat and other librdkafka clients cannot log in to the embedded
	// broker: the secure playground gives them a plain gateway on localhost.
	if sec != nil && opts.kafkaPlainAddr != "" {
		gw, err := sec.gateway(opts.kafkaPlainAddr, kafka.Brokers()[0])
		if err != nil {
			return err
		}
		defer gw.Close()
		sec.PlainBrokers = gw.Addr()
	}

	// The inspector page reads as order-consumer does, secured or not.
	kafkaSec, err := consumerCfg.Kafka.Security()
	if err != nil {
		return err
	}
	page, pageLn, err := startInspector(ctx, opts.inspectAddr, inspect.Config{OrdersDB: ordersURL, ProjectionDB: projectionURL,
		Brokers: kafka.Brokers(), RegistryURL: registry.URL(), Topic: topic, DLQTopic: dlqTopic, Group: consumerCfg.GroupID, Logger: log,
		KafkaSecurity: kafkaSec, RegistryAuth: eventcodec.RegistryAuth{BasicAuthUserInfo: consumerCfg.SchemaRegistryUserInfo,
			BearerToken: consumerCfg.SchemaRegistryBearerToken, TLSCAFile: consumerCfg.SchemaRegistryCAFile}})
	if err != nil {
		return err
	}
	defer page.Close()

	b := bannerData{API: devstack.LocalURL("http", opts.apiAddr), Consumer: devstack.LocalURL("http", opts.consumerAddr), Brokers: kafka.Brokers()[0],
		Registry: registry.URL(), Topic: topic, DLQTopic: dlqTopic, Partitions: partitions,
		OrdersDB: pgdb.Redact(ordersURL), ProjectionDB: pgdb.Redact(projectionURL), Secure: sec,
		State: st, EnvFiles: envFiles, Env: bannerEnv(shared, services)}
	if pageLn != nil {
		b.Inspect = devstack.LocalURL("http", pageLn.Addr().String())
	}
	if err := bannerTemplate.Execute(stdout, b); err != nil {
		if pageLn != nil {
			pageLn.Close()
		}
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for name, env := range services {
		g.Go(func() error { return startService(gctx, self, name, shared, env, stderr) })
	}
	if page != nil {
		g.Go(func() error { return page.Serve(gctx, pageLn) })
	}
	return g.Wait()
}

// startInspector opens the inspector page on cfg and listens on addr for
// it; the caller serves it and closes it.
func startInspector(ctx context.Context, addr string, cfg inspect.Config) (*inspect.Page, net.Listener, error) {
	page, err := inspect.New(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("start the inspector page: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		page.Close()
		return nil, nil, fmt.Errorf("the inspector page cannot listen on %s: %w (move it with -inspect-port or PLAYGROUND_INSPECT_PORT)", addr, err)
	}
	return page, ln, nil
}

// childArg makes the binary run one service instead of the playground.
const childArg = "-playground-service"

// startService runs service name as a child process and waits for it. When
// ctx ends it is sent SIGTERM (its graceful shutdown) and given
// shutdownGrace before it is killed. It returns nil after such a shutdown
// if the service exited cleanly, and an error naming it otherwise.
func startService(ctx context.Context, self, name string, shared, env map[string]string, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, self, childArg, name)
	cmd.Env = os.Environ()
	for _, layer := range []map[string]string{shared, env} {
		for k, v := range layer {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = shutdownGrace
	err := cmd.Run()
	switch {
	case ctx.Err() != nil && (err == nil || errors.Is(err, ctx.Err())):
		// Stopped by us (or by the same Ctrl-C) and exited 0: Wait reports
		// a clean exit after Cancel as the context's error.
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s did not stop cleanly: %w", name, err)
	case err == nil:
		err = errors.New("exited")
	}
	return fmt.Errorf("%s: %w", name, err)
}

// shutdownGrace is how long a service may take to stop after SIGTERM: its
// own SHUTDOWN_TIMEOUT (20s by default) and a little more.
const shutdownGrace = 25 * time.Second

// runService is the child: one service, configured by the environment the
// playground gave it, logging as text with its name.
func runService(ctx context.Context, name string, getenv func(string) string, stderr io.Writer) error {
	tel := telemetry.Config{Getenv: getenv}
	switch name {
	case "order-api":
		cfg, log, err := service.Load[orderapi.Config](getenv, stderr)
		if err != nil {
			return err
		}
		return orderapi.Run(ctx, cfg, log, tel)
	case "order-consumer":
		cfg, log, err := service.Load[orderconsumer.Config](getenv, stderr)
		if err != nil {
			return err
		}
		return orderconsumer.Run(ctx, cfg, log, tel)
	}
	return fmt.Errorf("unknown service %q", name)
}

// overlay gives a service the playground's settings; anything else comes
// from the environment, so LOG_LEVEL=debug make run works.
func overlay(getenv func(string) string, layers ...map[string]string) func(string) string {
	return func(k string) string {
		for i := len(layers) - 1; i >= 0; i-- {
			if v, ok := layers[i][k]; ok {
				return v
			}
		}
		return getenv(k)
	}
}

// nextPort is addr with the port after its own.
func nextPort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n <= 0 || n >= 65535 {
		return "", fmt.Errorf("ADMIN_ADDR=%q: want host:port with a port below 65535 (order-consumer's is the next one)", addr)
	}
	return net.JoinHostPort(host, strconv.Itoa(n+1)), nil
}

// withDatabase returns the server URL pointing at database name.
func withDatabase(server, name string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}
