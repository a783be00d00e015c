package devstack_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
)

// call sends body (when not empty) to the registry and returns the status and body.
func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func schemaBody(fields string) string {
	s, _ := json.Marshal(map[string]string{"schema": `{"type":"record","name":"R","fields":[` + fields + `]}`})
	return string(s)
}

// A registry with a StatePath keeps its schemas, IDs, versions and levels
// across a restart: an event framed with ID 2 before it still names the same
// schema after it, and the next new schema gets ID 3, not a taken one.
func TestARegistryWithAStatePathKeepsItsIDsAcrossARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.json")
	start := func() *devstack.RegistryServer {
		r, err := devstack.StartRegistryWith(devstack.RegistryConfig{Addr: "127.0.0.1:0", StatePath: path})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := start()
	a := `{"name":"a","type":"string"}`
	b := `{"name":"b","type":"string","default":""}`
	for _, c := range []struct{ url, body, want string }{
		{"/subjects/other-value/versions", schemaBody(a), `{"id":1}`},
		{"/subjects/s-value/versions", schemaBody(a + "," + b), `{"id":2}`},
		{"/subjects/s-value/versions", schemaBody(a), `{"id":1}`},
	} {
		if code, got := call(t, "POST", r.URL()+c.url, c.body); code != 200 || strings.TrimSpace(got) != c.want {
			t.Fatalf("POST %s: %d %s, want %s", c.url, code, got, c.want)
		}
	}
	if code, got := call(t, "PUT", r.URL()+"/config/s-value", `{"compatibility":"FULL_TRANSITIVE"}`); code != 200 {
		t.Fatalf("PUT config: %d %s", code, got)
	}
	if code, got := call(t, "DELETE", r.URL()+"/subjects/other-value", ""); code != 200 {
		t.Fatalf("DELETE subject: %d %s", code, got)
	}
	r.Close()

	r = start()
	defer r.Close()
	if code, got := call(t, "GET", r.URL()+"/schemas/ids/2", ""); code != 200 || !strings.Contains(got, `\"b\"`) {
		t.Fatalf("schema 2 after the restart: %d %s", code, got)
	}
	if code, got := call(t, "GET", r.URL()+"/subjects/s-value/versions", ""); code != 200 || strings.TrimSpace(got) != "[1,2]" {
		t.Fatalf("versions after the restart: %d %s", code, got)
	}
	if code, got := call(t, "GET", r.URL()+"/config/s-value", ""); code != 200 || !strings.Contains(got, "FULL_TRANSITIVE") {
		t.Fatalf("level after the restart: %d %s", code, got)
	}
	if code, got := call(t, "GET", r.URL()+"/subjects", ""); code != 200 || strings.TrimSpace(got) != `["s-value"]` {
		t.Fatalf("subjects after the restart: %d %s", code, got)
	}
	c := `{"name":"c","type":"int","default":0}`
	if code, got := call(t, "POST", r.URL()+"/subjects/s-value/versions", schemaBody(a+","+b+","+c)); code != 200 || strings.TrimSpace(got) != `{"id":3}` {
		t.Fatalf("a new schema after the restart: %d %s, want id 3", code, got)
	}
	if code, got := call(t, "GET", r.URL()+"/subjects/s-value/versions/latest", ""); code != 200 || !strings.Contains(got, `"version":3`) {
		t.Fatalf("latest after the restart: %d %s", code, got)
	}
}

// A change the registry cannot save is refused, not acknowledged: a client
// told an ID must find it after a restart.
func TestARegistryThatCannotSaveAChangeAnswers500(t *testing.T) {
	dir := t.TempDir()
	r, err := devstack.StartRegistryWith(devstack.RegistryConfig{Addr: "127.0.0.1:0", StatePath: filepath.Join(dir, "gone", "registry.json")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	code, got := call(t, "POST", r.URL()+"/subjects/s-value/versions", schemaBody(`{"name":"a","type":"string"}`))
	if code != 500 || !strings.Contains(got, `"error_code":50001`) {
		t.Fatalf("got %d %s, want 500 with error_code 50001", code, got)
	}
}

// A state file that cannot be read whole stops the registry from starting:
// half a registry would hand out IDs already taken.
func TestARegistryRefusesAStateItCannotRead(t *testing.T) {
	for name, state := range map[string]string{
		"not JSON":          `{"schemas":`,
		"a gap in the IDs":  `{"schemas":[{"id":2,"schema":"\"string\""}]}`,
		"an unknown schema": `{"schemas":[{"id":1,"schema":"\"string\""}],"subjects":{"s":[{"version":1,"id":7}]}}`,
		"a bad schema":      `{"schemas":[{"id":1,"schema":"{\"type\":\"nope\"}"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "registry.json")
			if err := os.WriteFile(path, []byte(state), 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := devstack.StartRegistryWith(devstack.RegistryConfig{Addr: "127.0.0.1:0", StatePath: path})
			if err == nil {
				r.Close()
				t.Fatal("started on a state it cannot read")
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

// A broker with a DataDir keeps its records and committed offsets.
func TestABrokerWithADataDirKeepsRecordsAndOffsets(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	k, err := devstack.StartKafka(devstack.KafkaConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	produceAndCommit(t, ctx, k, "a", "1")
	k.Close()

	k, err = devstack.StartKafka(devstack.KafkaConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	// The group resumes after "a": the next record it reads is the new one.
	produceAndCommit(t, ctx, k, "b", "2")
}

// The cluster kept in a directory starts again with its databases. The
// directory is in t.TempDir, which is 0700: when the tests run as root, the
// postgres user cannot reach it, and ClusterDir gives a directory of
// /var/tmp instead, the same one each time.
func TestAKeptClusterKeepsItsDatabases(t *testing.T) {
	want := filepath.Join(t.TempDir(), "postgres")
	dir := devstack.ClusterDir(want)
	if dir != devstack.ClusterDir(want) {
		t.Fatal("ClusterDir is not the same twice")
	}
	if os.Geteuid() == 0 {
		if !strings.HasPrefix(dir, "/var/tmp/orders-playground-") {
			t.Fatalf("as root, ClusterDir(%s) = %s, want a directory of /var/tmp the postgres user reaches", want, dir)
		}
		t.Cleanup(func() { os.RemoveAll(filepath.Dir(dir)) })
	} else if dir != want {
		t.Fatalf("ClusterDir(%s) = %s, want it unchanged", want, dir)
	}
	ctx := context.Background()
	dsn, stop, err := devstack.StartKeptForTest(ctx, t.Logf, dir)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, dsn, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		t.Fatalf("the data is gone after stop: %v", err)
	}
	dsn, stop, err = devstack.StartKeptForTest(ctx, t.Logf, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("after a restart: %q %v", v, err)
	}
}

func exec(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// produceAndCommit writes key=value, and checks that group "g" reads it next
// and commits it.
func produceAndCommit(t *testing.T, ctx context.Context, k *devstack.Kafka, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(k.Brokers()...), Topic: "order-events", RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Murmur2Balancer{Consistent: true}, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(key), Value: []byte(value)}); err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers(), GroupID: "g", Topic: "order-events",
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Key) != key || string(m.Value) != value {
		t.Fatalf("group g read %s=%s next, want %s=%s", m.Key, m.Value, key, value)
	}
	if err := r.CommitMessages(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// A cluster started from a relative directory (PostgreSQL changes into its
// data directory first, so a relative path it is given points nowhere)
// runs, and Restart ends its sessions and brings it back on the same URL.
func TestAClusterFromARelativeDirStartsAndRestarts(t *testing.T) {
	base, err := os.MkdirTemp("", "orders-relative-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil { // the postgres user reaches it when root runs this
		t.Fatal(err)
	}
	t.Chdir(base)
	ctx := context.Background()
	c, err := devstack.StartCluster(ctx, t.Logf, filepath.Join("state", "cluster"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	if want := filepath.Join(base, "state", "cluster"); c.Dir != want {
		t.Errorf("Dir = %s, want %s", c.Dir, want)
	}
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("a session from before the restart still answers")
	}
	exec(t, c.URL, "SELECT 1")
}

// A server that will not start is reported with the end of its log and
// where the log is, not with pg_ctl's "could not start server" alone.
func TestAClusterThatWillNotStartQuotesItsLog(t *testing.T) {
	base, err := os.MkdirTemp("", "orders-broken-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil { // the postgres user reaches it when root runs this
		t.Fatal(err)
	}
	dir := filepath.Join(base, "cluster")
	ctx := context.Background()
	c, err := devstack.StartCluster(ctx, t.Logf, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	conf, err := os.OpenFile(filepath.Join(dir, "data", "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conf.WriteString("\nshared_buffers = 'not a size'\n"); err != nil {
		t.Fatal(err)
	}
	conf.Close()
	_, err = devstack.StartCluster(ctx, t.Logf, dir, false)
	if err == nil {
		t.Fatal("a cluster with a broken postgresql.conf started")
	}
	for _, want := range []string{filepath.Join(dir, "log"), "shared_buffers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
}
