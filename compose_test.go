package orders_test

// These tests keep docker-compose.yml and the Dockerfile true without a Docker
// engine: the compose file is loaded and validated by compose-go (the library
// `docker compose` itself uses), the Dockerfile is parsed by BuildKit's own
// parser, and both are checked against what the services actually read.

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
)

// loadCompose loads docker-compose.yml as `docker compose -p orders` would
// from the repository root, with schema validation and consistency checks on.
// The environment is empty, so nothing on the test machine can change what
// the file means through interpolation.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(wd, "docker-compose.yml")}},
		Environment: types.Mapping{},
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("orders", true)
	})
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	return s
}

func env(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

func TestComposeServicesAndPorts(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"broker", "schema-registry", "control-center", "postgres", "topics", "order-api", "order-consumer"} {
		service(t, p, name)
	}
	for name, port := range map[string]string{
		"order-api":       "8080",
		"order-consumer":  "8082",
		"broker":          "9092",
		"schema-registry": "8081",
		"control-center":  "9021",
		"postgres":        "5432",
	} {
		var published []string
		for _, pc := range service(t, p, name).Ports {
			published = append(published, pc.Published)
			// Host port = container port everywhere, so the addresses in the
			// docs work both on the host and inside the network.
			if pc.Published == port && pc.Target != parsePort(t, port) {
				t.Errorf("%s publishes %s to container port %d", name, port, pc.Target)
			}
		}
		if !slices.Contains(published, port) {
			t.Errorf("%s does not publish host port %s (publishes %v)", name, port, published)
		}
	}
}

func parsePort(t *testing.T, s string) uint32 {
	t.Helper()
	var n uint32
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("port %q", s)
		}
		n = n*10 + uint32(c-'0')
	}
	return n
}

// The services are configured only through the environment; a variable they
// do not read is a silent no-op that someone will one day rely on.
func TestComposeGivesServicesOnlyVariablesTheyRead(t *testing.T) {
	p := loadCompose(t)
	apiVars, err := config.Vars[orderapi.Config]()
	if err != nil {
		t.Fatal(err)
	}
	consumerVars, err := config.Vars[orderconsumer.Config]()
	if err != nil {
		t.Fatal(err)
	}
	for name, vars := range map[string][]config.Var{"order-api": apiVars, "order-consumer": consumerVars} {
		read := map[string]bool{}
		for _, v := range vars {
			read[v.Name] = true
		}
		for _, v := range telemetry.Vars {
			read[v] = true
		}
		s := service(t, p, name)
		if len(s.Environment) == 0 {
			t.Errorf("%s has no environment", name)
		}
		for k := range s.Environment {
			if !read[k] {
				t.Errorf("%s is given %s, which it does not read", name, k)
			}
		}
	}
}

// The addresses the services are given must name services of this file, on
// a port those services listen on: a typo here only shows at run time.
func TestComposeAddressesPointAtServices(t *testing.T) {
	p := loadCompose(t)
	broker := service(t, p, "broker")
	advertised := listenerAddrs(t, env(broker, "KAFKA_ADVERTISED_LISTENERS"))
	checkBrokers := func(who, list string) {
		t.Helper()
		if list == "" {
			t.Errorf("%s: no bootstrap servers", who)
		}
		for _, addr := range strings.Split(list, ",") {
			host := hostOf(t, strings.TrimSpace(addr))
			if host != "broker" {
				t.Errorf("%s: bootstrap server %q is not the broker service", who, addr)
			}
			if !slices.Contains(advertised, strings.TrimSpace(addr)) {
				t.Errorf("%s: bootstrap server %q is not one of the broker's advertised listeners %v", who, addr, advertised)
			}
		}
	}
	checkURL := func(who, raw, wantHost string) *url.URL {
		t.Helper()
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			t.Errorf("%s: %q is not a URL (%v)", who, raw, err)
			return &url.URL{}
		}
		if _, ok := p.Services[u.Hostname()]; !ok || u.Hostname() != wantHost {
			t.Errorf("%s: %q does not point at the %s service", who, raw, wantHost)
		}
		return u
	}
	sr := service(t, p, "schema-registry")
	srPort := listenPort(t, env(sr, "SCHEMA_REGISTRY_LISTENERS"))
	checkRegistry := func(who, raw string) {
		t.Helper()
		if u := checkURL(who, raw, "schema-registry"); u.Port() != srPort {
			t.Errorf("%s: %q: schema-registry listens on port %q", who, raw, srPort)
		}
	}

	databases := map[string]string{"order-api": "orders", "order-consumer": "orders_projection"}
	for name, db := range databases {
		s := service(t, p, name)
		checkBrokers(name+" KAFKA_BROKERS", env(s, "KAFKA_BROKERS"))
		checkRegistry(name+" SCHEMA_REGISTRY_URL", env(s, "SCHEMA_REGISTRY_URL"))
		u := checkURL(name+" DATABASE_URL", env(s, "DATABASE_URL"), "postgres")
		if got := strings.TrimPrefix(u.Path, "/"); got != db {
			t.Errorf("%s: DATABASE_URL names database %q, want %q", name, got, db)
		}
	}

	cc := service(t, p, "control-center")
	checkRegistry("control-center CONTROL_CENTER_SCHEMA_REGISTRY_URL", env(cc, "CONTROL_CENTER_SCHEMA_REGISTRY_URL"))
	checkBrokers("control-center CONTROL_CENTER_BOOTSTRAP_SERVERS", env(cc, "CONTROL_CENTER_BOOTSTRAP_SERVERS"))
	checkBrokers("schema-registry SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS", env(sr, "SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"))

	// The databases named above are the ones the init script creates.
	pg := service(t, p, "postgres")
	var initDir string
	for _, v := range pg.Volumes {
		if v.Target == "/docker-entrypoint-initdb.d" {
			initDir = v.Source
		}
	}
	if initDir == "" {
		t.Fatal("postgres mounts nothing on /docker-entrypoint-initdb.d")
	}
	scripts, _ := filepath.Glob(filepath.Join(initDir, "*.sql"))
	if len(scripts) == 0 {
		t.Fatalf("no *.sql init script in %s", initDir)
	}
	created := map[string]bool{}
	createDB := regexp.MustCompile(`(?im)^\s*CREATE\s+DATABASE\s+"?([a-z0-9_]+)"?\s*;`)
	for _, f := range scripts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range createDB.FindAllStringSubmatch(string(b), -1) {
			created[m[1]] = true
		}
	}
	for _, db := range databases {
		if !created[db] {
			t.Errorf("the postgres init scripts in %s do not create database %s", initDir, db)
		}
	}
}

// listenerAddrs returns the host:port of each NAME://host:port listener.
func listenerAddrs(t *testing.T, listeners string) []string {
	t.Helper()
	var addrs []string
	for _, l := range strings.Split(listeners, ",") {
		_, addr, ok := strings.Cut(strings.TrimSpace(l), "://")
		if !ok {
			t.Fatalf("listener %q", l)
		}
		addrs = append(addrs, addr)
	}
	return addrs
}

func hostOf(t *testing.T, addr string) string {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("address %q: %v", addr, err)
	}
	return host
}

func listenPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Port() == "" {
		t.Fatalf("listener URL %q (%v)", rawURL, err)
	}
	return u.Port()
}

func TestComposeBrokerIsKRaft(t *testing.T) {
	p := loadCompose(t)
	b := service(t, p, "broker")
	for k := range b.Environment {
		if strings.Contains(strings.ToUpper(k), "ZOOKEEPER") {
			t.Errorf("broker has ZooKeeper setting %s", k)
		}
	}
	for _, name := range []string{"zookeeper", "zk"} {
		if _, ok := p.Services[name]; ok {
			t.Errorf("there is a %s service", name)
		}
	}
	roles := strings.Split(env(b, "KAFKA_PROCESS_ROLES"), ",")
	for i := range roles {
		roles[i] = strings.TrimSpace(roles[i])
	}
	if !slices.Contains(roles, "controller") || !slices.Contains(roles, "broker") {
		t.Errorf("KAFKA_PROCESS_ROLES=%q, want broker and controller in one process", env(b, "KAFKA_PROCESS_ROLES"))
	}
	if env(b, "CLUSTER_ID") == "" {
		t.Error("broker has no CLUSTER_ID, so KRaft storage cannot be formatted")
	}
}

func TestComposeTopicsAreCreated(t *testing.T) {
	p := loadCompose(t)
	topics := service(t, p, "topics")
	script := strings.Join(append(slices.Clone([]string(topics.Entrypoint)), topics.Command...), " ")
	// Each kafka-topics invocation is one sequence of words up to && or ;.
	var calls [][]string
	for _, part := range regexp.MustCompile(`&&|;|\|\||\n`).Split(script, -1) {
		words := strings.Fields(part)
		if i := slices.Index(words, "kafka-topics"); i >= 0 {
			calls = append(calls, words[i:])
		}
	}
	flag := func(words []string, name string) string {
		if i := slices.Index(words, name); i >= 0 && i+1 < len(words) {
			return words[i+1]
		}
		return ""
	}
	for _, topic := range []string{"order-events", "order-events.dlq"} {
		found := false
		for _, c := range calls {
			if flag(c, "--topic") != topic {
				continue
			}
			found = true
			if !slices.Contains(c, "--create") || !slices.Contains(c, "--if-not-exists") {
				t.Errorf("%s: %v does not --create --if-not-exists", topic, c)
			}
			if got := flag(c, "--partitions"); got != "6" {
				t.Errorf("%s: --partitions %q, want 6", topic, got)
			}
			if got := flag(c, "--replication-factor"); got != "1" {
				t.Errorf("%s: --replication-factor %q, want 1", topic, got)
			}
			if got := flag(c, "--bootstrap-server"); got != "broker:29092" {
				t.Errorf("%s: --bootstrap-server %q, want broker:29092", topic, got)
			}
		}
		if !found {
			t.Errorf("topics does not create %s (script %q)", topic, script)
		}
	}
	if b := service(t, p, "topics").DependsOn["broker"]; b.Condition != types.ServiceConditionHealthy {
		t.Errorf("topics waits for broker %q, want %q", b.Condition, types.ServiceConditionHealthy)
	}
}

// One `docker compose up` must start everything in order: the services start
// only once their dependencies answer, and a service_healthy condition is
// only satisfiable if the service has a health check.
func TestComposeStartOrder(t *testing.T) {
	p := loadCompose(t)
	want := map[string]string{
		"postgres":        types.ServiceConditionHealthy,
		"broker":          types.ServiceConditionHealthy,
		"schema-registry": types.ServiceConditionHealthy,
		"topics":          types.ServiceConditionCompletedSuccessfully,
	}
	for _, name := range []string{"order-api", "order-consumer"} {
		s := service(t, p, name)
		for dep, cond := range want {
			if got := s.DependsOn[dep]; got.Condition != cond {
				t.Errorf("%s depends on %s with condition %q, want %q", name, dep, got.Condition, cond)
			}
		}
	}
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				continue
			}
			hc := p.Services[dep].HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) == 0 {
				t.Errorf("%s waits for %s to be healthy, but %s has no health check", name, dep, dep)
			}
		}
	}
}

// The application containers run the distroless image: no shell, so the
// health check and the entrypoint must be binaries the Dockerfile installs.
func TestComposeApplicationContainers(t *testing.T) {
	p := loadCompose(t)
	installed := dockerfileBinaries(t)
	image := builtImage(t, p)
	for name, entrypoint := range map[string]string{"order-api": "", "order-consumer": "/usr/local/bin/order-consumer"} {
		s := service(t, p, name)
		if s.Image != image {
			t.Errorf("%s runs image %q, not %q, the one built from the Dockerfile", name, s.Image, image)
		}
		if got := strings.Join(s.Entrypoint, " "); got != entrypoint {
			t.Errorf("%s entrypoint %q, want %q", name, got, entrypoint)
		}
		bin := "/usr/local/bin/" + name
		if !slices.Contains(installed, bin) {
			t.Errorf("the Dockerfile does not install %s (installs %v)", bin, installed)
		}
		hc := s.HealthCheck
		if hc == nil || !slices.Equal([]string(hc.Test), []string{"CMD", bin, "health"}) {
			t.Errorf("%s health check %v, want [CMD %s health]", name, hc, bin)
		}
	}
}

// builtImage returns the name of the one image the file builds from the
// Dockerfile, failing unless exactly one service builds it.
func builtImage(t *testing.T, p *types.Project) string {
	t.Helper()
	var builders []string
	var image string
	for name, s := range p.Services {
		if s.Build == nil {
			continue
		}
		builders = append(builders, name)
		image = s.Image
		if df := s.Build.Dockerfile; df != "" && df != "Dockerfile" {
			t.Errorf("%s builds from %s, not the Dockerfile", name, df)
		}
	}
	if len(builders) != 1 {
		t.Fatalf("services %v build an image; want exactly one, whose image the others reuse", builders)
	}
	if image == "" {
		t.Fatalf("%s builds without image:, so the other service cannot name what it built", builders[0])
	}
	return image
}

// The image is built once: one service builds it under a name, the other
// runs that name. Neither may pull it: pulling a name that exists only on
// this machine fails at best, and at worst fetches someone else's image.
func TestComposeBuildsTheImageOnce(t *testing.T) {
	p := loadCompose(t)
	image := builtImage(t, p)
	users := 0
	for name, s := range p.Services {
		if s.Image != image {
			continue
		}
		users++
		want := types.PullPolicyNever
		if s.Build != nil {
			want = types.PullPolicyBuild
		}
		if s.PullPolicy != want {
			t.Errorf("%s runs the image built here with pull_policy %q, want %q", name, s.PullPolicy, want)
		}
	}
	if users != 2 {
		t.Errorf("%d services run %s, want order-api and order-consumer", users, image)
	}
}

// A variable set to what the service does anyway has no effect, yet reads as
// a choice the file made: each variable given to a service must change its
// configuration, and the tracing variables count only while tracing is on.
func TestComposeEveryVariableHasAnEffect(t *testing.T) {
	p := loadCompose(t)
	loaders := map[string]func(getenv func(string) string) (any, error){
		"order-api": func(getenv func(string) string) (any, error) {
			return config.Load[orderapi.Config](getenv)
		},
		"order-consumer": func(getenv func(string) string) (any, error) {
			return config.Load[orderconsumer.Config](getenv)
		},
	}
	for name, load := range loaders {
		s := service(t, p, name)
		all := func(k string) string { return env(s, k) }
		got, err := load(all)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		tracing, err := telemetry.NewTracing(context.Background(), name, all)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_ = tracing.Shutdown(context.Background())
		for k := range s.Environment {
			if slices.Contains(telemetry.Vars, k) {
				switch {
				case tracing.Exporter == "none":
					t.Errorf("%s: %s has no effect: tracing is off (OTEL_TRACES_EXPORTER unset or none)", name, k)
				case k == "OTEL_SERVICE_NAME" && env(s, k) == name:
					t.Errorf("%s: OTEL_SERVICE_NAME=%s has no effect: it is the service's own name", name, env(s, k))
				}
				continue
			}
			without, err := load(func(v string) string {
				if v == k {
					return ""
				}
				return all(v)
			})
			if err != nil {
				t.Errorf("%s: without %s: %v", name, k, err)
				continue
			}
			if reflect.DeepEqual(got, without) {
				t.Errorf("%s: %s=%q has no effect: it is the default", name, k, env(s, k))
			}
		}
	}
}

// `docker compose up --wait` returns once every service is healthy, or
// running if it has no health check, or exited if it is a one-shot others
// wait for: every long-running service needs a health check for "healthy"
// to mean anything, Control Center's included, since the documentation's
// "open :9021" step relies on it.
func TestComposeUpWaitMeansHealthy(t *testing.T) {
	p := loadCompose(t)
	oneShot := map[string]bool{}
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				oneShot[dep] = true
			}
		}
	}
	for name, s := range p.Services {
		hc := s.HealthCheck
		hasCheck := hc != nil && !hc.Disable && len(hc.Test) > 0
		switch {
		case oneShot[name] && hasCheck:
			t.Errorf("%s is a one-shot others wait to complete, but has a health check", name)
		case !oneShot[name] && !hasCheck:
			t.Errorf("%s has no health check: `up --wait` would not wait for it to serve", name)
		}
	}

	// Control Center's check asks its own UI, on the port compose publishes,
	// and fails on an HTTP error, as Confluent's cp-demo does.
	cc := service(t, p, "control-center")
	if cc.HealthCheck == nil {
		t.FailNow()
	}
	test := []string(cc.HealthCheck.Test)
	if len(test) < 3 || test[0] != "CMD" || test[1] != "curl" || !slices.Contains(test, "--fail") {
		t.Fatalf("control-center health check %q, want [CMD curl --fail … URL]", test)
	}
	u, err := url.Parse(test[len(test)-1])
	if err != nil || u.Hostname() != "localhost" {
		t.Fatalf("control-center health check asks %q, want a URL on localhost", test[len(test)-1])
	}
	var targets []string
	for _, pc := range cc.Ports {
		targets = append(targets, strconv.Itoa(int(pc.Target)))
	}
	if !slices.Contains(targets, u.Port()) {
		t.Errorf("control-center health check asks port %s; it publishes %v", u.Port(), targets)
	}
	// Control Center starts in minutes, not seconds: failing it early would
	// fail `up --wait` on a machine that is merely slow.
	var retries uint64
	var interval time.Duration
	if hc := cc.HealthCheck; hc.Retries != nil && hc.Interval != nil {
		retries, interval = *hc.Retries, time.Duration(*hc.Interval)
	}
	if time.Duration(retries)*interval < 3*time.Minute {
		t.Errorf("control-center health check gives up after %d retries %v apart; want at least 3 minutes", retries, interval)
	}
}

// composeDoc is docs/docker-compose.md, the compose file's user documentation.
func composeDoc(t *testing.T) (text string, shellLines []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("docs", "docker-compose.md"))
	if err != nil {
		t.Fatal(err)
	}
	inBlock := false
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "```") {
			inBlock = !inBlock && strings.HasPrefix(line, "```sh")
			continue
		}
		if inBlock && line != "" && !strings.HasPrefix(line, "#") {
			shellLines = append(shellLines, line)
		}
	}
	return string(b), shellLines
}

// The documentation states what the file needs and says how to wait for it.
func TestComposeDocStatesMemoryAndWait(t *testing.T) {
	text, lines := composeDoc(t)
	if !regexp.MustCompile(`(?i)at least 6\s*GB of memory`).MatchString(text) {
		t.Error("docs/docker-compose.md does not state the memory Docker needs (at least 6 GB)")
	}
	waits := false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "docker" && f[1] == "compose" && f[2] == "up" && slices.Contains(f, "--wait") {
			waits = true
		}
	}
	if !waits {
		t.Error("docs/docker-compose.md starts the file without `docker compose up … --wait`")
	}
}

// An operator command needs the service's settings: run in the service's own
// container (exec, or run with the service's entrypoint), or from the host
// with a DATABASE_URL that the compose PostgreSQL accepts — its defaults lack
// the password.
func TestComposeDocOperatorCommands(t *testing.T) {
	p := loadCompose(t)
	_, lines := composeDoc(t)
	installed := dockerfileBinaries(t)
	image := builtImage(t, p)
	pg := service(t, p, "postgres")
	pgUser := env(pg, "POSTGRES_USER")
	if pgUser == "" {
		pgUser = "postgres" // the image's default
	}
	var pgPort string
	for _, pc := range pg.Ports {
		if pc.Target == 5432 {
			pgPort = pc.Published
		}
	}
	databases := map[string]string{"order-api": "orders", "order-consumer": "orders_projection"}
	subcommands := map[string][]string{
		"order-api":      {"migrate", "health", "schemas"},
		"order-consumer": {"migrate", "health", "dlq", "rebuild"},
	}
	checkArgs := func(line, bin string, args []string) {
		t.Helper()
		if len(args) == 0 || !slices.Contains(subcommands[bin], args[0]) {
			t.Errorf("%q: %s has no subcommand %v", line, bin, args)
		}
	}
	seen := map[string]int{}
	for _, line := range lines {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && f[0] == "docker" && f[1] == "compose" && f[2] == "exec":
			svc, bin := f[3], f[4]
			if _, ok := databases[svc]; !ok {
				continue
			}
			seen["exec"]++
			if service(t, p, svc).Image != image || !slices.Contains(installed, "/usr/local/bin/"+bin) {
				t.Errorf("%q: the %s container has no %s", line, svc, bin)
			}
			if bin != svc {
				t.Errorf("%q: %s runs in %s's container, with that service's settings (its DATABASE_URL names %s)", line, bin, svc, databases[svc])
			}
			checkArgs(line, bin, f[5:])
		case len(f) >= 4 && f[0] == "docker" && f[1] == "compose" && f[2] == "run":
			i := 3
			for i < len(f) && strings.HasPrefix(f[i], "-") {
				i++
			}
			if i >= len(f) {
				t.Errorf("%q names no service", line)
				continue
			}
			svc := f[i]
			if _, ok := databases[svc]; !ok {
				continue
			}
			seen["run"]++
			// run starts the service's entrypoint, the binary itself, with
			// the arguments: naming the binary again would be an argument.
			checkArgs(line, svc, f[i+1:])
		case len(f) >= 2 && strings.HasPrefix(f[0], "DATABASE_URL="):
			bin := path.Base(f[1])
			db, ok := databases[bin]
			if !ok {
				t.Errorf("%q: DATABASE_URL for %s, which is not a service", line, f[1])
				continue
			}
			seen["host"]++
			u, err := url.Parse(strings.Trim(strings.TrimPrefix(f[0], "DATABASE_URL="), `'"`))
			if err != nil {
				t.Errorf("%q: %v", line, err)
				continue
			}
			password, _ := u.User.Password()
			if u.Hostname() != "localhost" && u.Hostname() != "127.0.0.1" || u.Port() != pgPort ||
				u.User.Username() != pgUser || password != env(pg, "POSTGRES_PASSWORD") ||
				strings.TrimPrefix(u.Path, "/") != db {
				t.Errorf("%q: DATABASE_URL is not the compose PostgreSQL as the host reaches it (localhost:%s, its user and password, database %s)", line, pgPort, db)
			}
			checkArgs(line, bin, f[2:])
		}
	}
	for _, how := range []string{"exec", "run", "host"} {
		if seen[how] == 0 {
			t.Errorf("docs/docker-compose.md shows no operator command run with %s", how)
		}
	}
}

func parseDockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(stages) == 0 {
		t.Fatal("Dockerfile has no stage")
	}
	return stages
}

// dockerfileBinaries returns the paths the final stage copies files to.
func dockerfileBinaries(t *testing.T) []string {
	t.Helper()
	stages := parseDockerfile(t)
	var paths []string
	for _, c := range stages[len(stages)-1].Commands {
		cp, ok := c.(*instructions.CopyCommand)
		if !ok {
			continue
		}
		for _, src := range cp.SourcePaths {
			dst := cp.DestPath
			if strings.HasSuffix(dst, "/") || len(cp.SourcePaths) > 1 {
				dst = path.Join(dst, path.Base(src))
			}
			paths = append(paths, dst)
		}
	}
	return paths
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stage(s): want a build stage and a separate runtime stage", len(stages))
	}
	final := stages[len(stages)-1]
	if base := final.BaseName; base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/") {
		t.Errorf("final stage is FROM %s, want distroless or scratch", base)
	}

	var user string
	var entrypoint []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			entrypoint = c.CmdLine
		}
	}
	if name, _, _ := strings.Cut(user, ":"); name == "" || name == "root" || strings.Trim(name, "0") == "" {
		t.Errorf("final stage runs as user %q, want a non-root user", user)
	}
	if !slices.Equal(entrypoint, []string{"/usr/local/bin/order-api"}) {
		t.Errorf("ENTRYPOINT %q, want [/usr/local/bin/order-api]", entrypoint)
	}

	installed := dockerfileBinaries(t)
	for _, bin := range []string{"order-api", "order-consumer"} {
		if !slices.Contains(installed, "/usr/local/bin/"+bin) {
			t.Errorf("final stage does not copy %s to /usr/local/bin (copies to %v)", bin, installed)
		}
	}

	// The binaries must be static, or they will not run on an image without
	// libc: every `go build` runs with CGO_ENABLED=0, set in the RUN line or
	// by an ENV earlier in its stage.
	builds := 0
	for _, s := range stages[:len(stages)-1] {
		cgoOff := false
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					if kv.Key == "CGO_ENABLED" {
						cgoOff = kv.Value == "0"
					}
				}
			case *instructions.RunCommand:
				line := strings.Join(c.CmdLine, " ")
				if !strings.Contains(line, "go build") {
					continue
				}
				builds++
				if !cgoOff && !regexp.MustCompile(`(^|\s)CGO_ENABLED=0\s`).MatchString(line) {
					t.Errorf("stage %q builds without CGO_ENABLED=0: %s", s.Name, line)
				}
			}
		}
	}
	if builds == 0 {
		t.Error("no stage runs go build")
	}
}

// TestComposeServiceSettingsAreUsable loads order-api's and order-consumer's
// compose environment through their own configuration, as they will at start,
// and checks the result against the rest of the file: it validates, the HTTP
// port is the published one, the database URL carries the postgres service's
// port and credentials, and the topics they use are the ones `topics` creates.
func TestComposeServiceSettingsAreUsable(t *testing.T) {
	p := loadCompose(t)
	pg := service(t, p, "postgres")
	pgUser := env(pg, "POSTGRES_USER")
	if pgUser == "" {
		pgUser = "postgres" // the image's default
	}
	topicsScript := strings.Join(append(slices.Clone([]string(service(t, p, "topics").Entrypoint)), service(t, p, "topics").Command...), " ")
	created := map[string]bool{}
	for _, m := range regexp.MustCompile(`--topic\s+(\S+)`).FindAllStringSubmatch(topicsScript, -1) {
		created[m[1]] = true
	}

	type settings struct {
		httpAddr, databaseURL string
		topics                []string
		validate              func() error
	}
	load := map[string]func(getenv func(string) string) (settings, error){
		"order-api": func(getenv func(string) string) (settings, error) {
			c, err := config.Load[orderapi.Config](getenv)
			return settings{c.HTTPAddr, c.DatabaseURL, []string{c.Topic}, c.Validate}, err
		},
		"order-consumer": func(getenv func(string) string) (settings, error) {
			c, err := config.Load[orderconsumer.Config](getenv)
			return settings{c.HTTPAddr, c.DatabaseURL, []string{c.Topic, c.DLQTopic}, c.Validate}, err
		},
	}
	for name, port := range map[string]string{"order-api": "8080", "order-consumer": "8082"} {
		s := service(t, p, name)
		cfg, err := load[name](func(k string) string { return env(s, k) })
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := cfg.validate(); err != nil {
			t.Errorf("%s: its compose settings do not validate: %v", name, err)
		}
		if _, p, _ := net.SplitHostPort(cfg.httpAddr); p != port {
			t.Errorf("%s listens on %q, but compose publishes and health-checks port %s", name, cfg.httpAddr, port)
		}
		u, err := url.Parse(cfg.databaseURL)
		if err != nil {
			t.Fatalf("%s: DATABASE_URL: %v", name, err)
		}
		password, _ := u.User.Password()
		if u.Port() != "5432" || u.User.Username() != pgUser || password != env(pg, "POSTGRES_PASSWORD") {
			t.Errorf("%s: DATABASE_URL %q does not match the postgres service (port 5432, user %q, its POSTGRES_PASSWORD)", name, cfg.databaseURL, pgUser)
		}
		for _, topic := range cfg.topics {
			if !created[topic] {
				t.Errorf("%s uses topic %q, which `topics` does not create (it creates %v)", name, topic, created)
			}
		}
	}
}
