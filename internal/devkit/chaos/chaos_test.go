package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/event/envelope"
)

func TestMain(m *testing.M) {
	RunChildIfAsked() // this test binary is also the broker and the registry
	os.Exit(m.Run())
}

// buildServices builds order-api and order-consumer once, as make chaos
// does (with -race when this test has it, reusing its compiled packages).
func buildServices(t *testing.T) Binaries {
	t.Helper()
	goBin := "go"
	for _, root := range []string{os.Getenv("GOROOT"), runtime.GOROOT()} {
		if p := filepath.Join(root, "bin", "go"); root != "" && isFile(p) {
			goBin = p
			break
		}
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	if raceEnabled {
		args = append(args, "-race")
	}
	began := time.Now()
	cmd := exec.Command(goBin, append(args, "github.com/ordersonkafka/orders/cmd/order-api", "github.com/ordersonkafka/orders/cmd/order-consumer")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built order-api and order-consumer in %s", time.Since(began).Round(time.Millisecond))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Binaries{API: filepath.Join(dir, "order-api"), Consumer: filepath.Join(dir, "order-consumer"), Self: []string{self}}
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// TestTheKillScenarioPassesAndTheCheckerCatchesEachCorruption runs the
// kill scenario for a few seconds against the real binaries (the suite
// cannot rot unseen), then corrupts the finished run, one record at a
// time, and checks that each corruption fails its figure, by name.
func TestTheKillScenarioPassesAndTheCheckerCatchesEachCorruption(t *testing.T) {
	ctx := context.Background()
	cfg := Config{Bins: buildServices(t), Dir: t.TempDir(), Seed: 7, Duration: 6 * time.Second, Rate: 20, Logf: t.Logf}
	pg, err := devstack.StartCluster(ctx, t.Logf, devstack.ClusterDir(filepath.Join(cfg.Dir, "cluster")), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	sc, _ := ScenarioNamed("kill")
	res, st, recs := runScenario(ctx, cfg, sc, pg, cfg.Seed)
	if st != nil {
		t.Cleanup(st.close)
	}
	if res.Err != nil {
		t.Fatalf("the run failed: %v", res.Err)
	}
	var kinds []string
	for _, f := range res.Faults {
		kinds = append(kinds, f.Kind)
	}
	if !slices.Equal(kinds, []string{"kill relay leader", "kill consumer"}) {
		t.Errorf("faults injected: %q, want the relay leader and a consumer killed", kinds)
	}
	v := res.Verdict
	if failed := res.Failed(); len(failed) > 0 {
		var b strings.Builder
		Print(&b, []Result{res})
		t.Fatalf("the kill scenario failed %v:\n%s", failed, b.String())
	}
	if v.Orders < 30 || v.Events < v.Orders {
		t.Fatalf("%d orders acknowledged, %d events on the topic: too few to tell anything", v.Orders, v.Events)
	}
	t.Logf("kill: %d orders, %d requests (%d in doubt), %d events, %d duplicates, converged %.1fs after the last fault",
		v.Orders, v.Requests, v.InDoubt, v.Events, v.Duplicates, res.ConvergedAfter.Seconds())

	// Nothing may relay or consume what follows: stop the replicas.
	if err := st.stopReplicas(); err != nil {
		t.Fatal(err)
	}
	events := topic
	recheck := func() Verdict {
		t.Helper()
		again, err := collect(ctx, st.kafkaProxy(), st.registryURL, events, st.ordersURL, st.projectionURL)
		if err != nil {
			t.Fatal(err)
		}
		again.Requests = recs.Requests
		return Check(again)
	}
	if failed := recheck().Failed(); len(failed) > 0 {
		t.Fatalf("the records read again fail %v before any corruption", failed)
	}
	// Two acknowledged orders with at least two versions on the topic,
	// and their records.
	versions := map[uuid.UUID][]TopicEvent{}
	for _, e := range recs.Topic {
		versions[e.OrderID] = append(versions[e.OrderID], e)
	}
	var picked []uuid.UUID
	for id, evs := range versions {
		if len(evs) >= 2 && evs[0].Version == 1 && evs[1].Version == 2 {
			picked = append(picked, id)
		}
		if len(picked) == 3 {
			break
		}
	}
	if len(picked) < 3 {
		t.Fatalf("fewer than 3 orders with two versions on the topic (%d orders)", len(versions))
	}
	db := func(url, sql string, args ...any) {
		t.Helper()
		if err := withDB(ctx, url, func(c *pgx.Conn) error { _, err := c.Exec(ctx, sql, args...); return err }); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{}
	before := recheck()
	counts := func(v Verdict) map[string]int {
		return map[string]int{FigLost: v.Lost, FigPhantom: v.Phantom, FigDoubleApplied: v.DoubleApplied,
			FigReordered: v.Reordered, FigDeadLetters: v.DeadLetters, FigConverged: v.Differ}
	}
	step := func(name, fig string, also []string, corrupt func(), mentions string) {
		t.Helper()
		corrupt()
		want = append(want, fig)
		want = append(want, also...)
		got := recheck()
		failed := got.Failed()
		// Each corruption moves its own figures and no other.
		was, is := counts(before), counts(got)
		for f := range is {
			if moved := is[f] != was[f]; moved != (f == fig || slices.Contains(also, f)) {
				t.Errorf("%s: %s went from %d to %d", name, f, was[f], is[f])
			}
		}
		before = got
		for _, w := range want {
			if !slices.Contains(failed, w) {
				t.Errorf("%s: figures failed %v, want %q among them", name, failed, w)
			}
		}
		if len(failed) != len(uniq(want)) {
			t.Errorf("%s: figures failed %v, want only %v", name, failed, uniq(want))
		}
		if !strings.Contains(strings.Join(got.Examples[fig], "\n"), mentions) {
			t.Errorf("%s: %q examples %q do not name %s", name, fig, got.Examples[fig], mentions)
		}
	}

	// 1. A projection row deleted: the acknowledged versions of that order
	//    are lost, and the projection no longer equals the orders table.
	step("projection row deleted", FigLost, []string{FigConverged}, func() {
		db(st.projectionURL, "DELETE FROM order_projection WHERE id = $1", picked[0])
	}, picked[0].String())

	// 2. A second applied outcome for one order and version in the ledger.
	step("event applied twice", FigDoubleApplied, nil, func() {
		db(st.projectionURL, `INSERT INTO processed_events (event_id, order_id, version, event_type, outcome)
			SELECT $2, order_id, version, event_type, 'applied' FROM processed_events WHERE order_id = $1 AND version = 2`,
			picked[1], uuid.New())
	}, picked[1].String()+" version 2")

	// 2b. A read model that counted an event twice: the customer's line
	//     in customer_orders says two orders where the orders table has one.
	customer := recs.OrderTerms[picked[1]].Customer
	step("customer totals counted twice", FigDoubleApplied, nil, func() {
		db(st.projectionURL, "UPDATE customer_orders SET orders = orders + 1, total_minor = total_minor * 2 WHERE customer_id = $1", customer)
	}, "customer "+customer)

	// 3. An event on the topic the API never wrote: a real one's bytes with
	//    another order's ID, under a new event_id and correlation ID.
	forged := uuid.New()
	step("event inserted on the topic", FigPhantom, nil, func() {
		e := versions[picked[2]][0]
		value := recordValue(t, st, e)
		value = bytes.Replace(value, []byte(picked[2].String()), []byte(forged.String()), -1)
		produce(t, st, topic, e.Partition, kafka.Message{Key: []byte(forged.String()), Value: value, Headers: []kafka.Header{
			{Key: envelope.HeaderEventID, Value: []byte(uuid.NewString())},
			{Key: envelope.HeaderCorrelationID, Value: []byte("forged")}}})
	}, forged.String())

	// 4. Two versions swapped on a partition: the checker reads a copy of
	//    the topic, record for record, but for one order's versions 1 and 2
	//    on its partition, which change places.
	step("two versions swapped on a partition", FigReordered, nil, func() {
		events = topic + ".swapped"
		swapped := picked[0]
		byPartition := map[int][]kafka.Message{}
		if _, err := readTopic(ctx, st.kafkaProxy(), topic, func(m kafka.Message) error {
			byPartition[m.Partition] = append(byPartition[m.Partition], m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		p := versions[swapped][0].Partition
		var at []int
		for i, m := range byPartition[p] {
			if string(m.Key) == swapped.String() && len(at) < 2 {
				at = append(at, i)
			}
		}
		if len(at) < 2 {
			t.Fatalf("order %s: %d records keyed by it on partition %d", swapped, len(at), p)
		}
		msgs := byPartition[p]
		msgs[at[0]], msgs[at[1]] = msgs[at[1]], msgs[at[0]]
		admin := &kafka.Client{Addr: kafka.TCP(st.kafkaProxy()), Transport: &kafka.Transport{}}
		if _, err := admin.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
			{Topic: events, NumPartitions: partitions, ReplicationFactor: 1}}}); err != nil {
			t.Fatal(err)
		}
		for part, msgs := range byPartition {
			copies := make([]kafka.Message, len(msgs))
			for i, m := range msgs {
				copies[i] = kafka.Message{Key: m.Key, Value: m.Value, Headers: m.Headers}
			}
			produce(t, st, events, part, copies...)
		}
	}, swapped(picked[0]))
}

// swapped is how the reordered figure names an order's version 1 seen
// after its version 2.
func swapped(id uuid.UUID) string { return fmt.Sprintf("order %s version 1 after version 2", id) }

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// recordValue reads the bytes of the topic record e.
func recordValue(t *testing.T, st *stack, e TopicEvent) []byte {
	t.Helper()
	conn, err := kafka.DialLeader(context.Background(), "tcp", st.kafkaProxy(), topic, e.Partition)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Seek(e.Offset, kafka.SeekAbsolute); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := conn.ReadMessage(10 << 20)
	if err != nil {
		t.Fatal(err)
	}
	return m.Value
}

// produce writes msgs, in order, to one partition of name.
func produce(t *testing.T, st *stack, name string, partition int, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(st.kafkaProxy()), Topic: name, Balancer: fixedPartition(partition),
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: len(msgs), BatchBytes: 64 << 20,
		Transport: &kafka.Transport{}}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

type fixedPartition int

func (p fixedPartition) Balance(kafka.Message, ...int) int { return int(p) }
