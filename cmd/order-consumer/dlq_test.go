package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
)

// A selection that cannot mean what it says (`dlq replay -partition -5
// -from 1` must not replay every partition) is refused with nothing written,
// and a letter replayed once is skipped unless -force, so `dlq replay -all`
// run twice does not replay everything twice.
func TestDLQReplaySelectionsAndRepeats(t *testing.T) {
	k, getenv := operatorEnv(t, nil)
	ctx := context.Background()
	var dls []deadletter.DeadLetter
	for i, p := range []int{1, 1, 4} {
		dls = append(dls, deadletter.DeadLetter{
			Msg:   kafka.Message{Topic: "order-events", Partition: p, Offset: int64(i), Time: time.Now(), Key: []byte("k"), Value: []byte{byte('a' + i)}},
			Class: "eventcodec.ErrNotFramed", Err: errorString("not framed"),
		})
	}
	publish(t, k, dls)
	var out bytes.Buffer
	for _, args := range [][]string{
		{"-partition", "-5", "-from", "1"},
		{"-partition", "6"},
		{"-partition", "1", "-from", "2", "-to", "1"},
		{"-from", "1"},
		{"-partition", "1", "-to", "-1"},
		{"-all", "-key", "k"},
	} {
		for _, cmd := range []string{"replay", "list"} {
			if cmd == "list" && args[0] == "-all" {
				continue
			}
			err := run(ctx, append([]string{"dlq", cmd}, args...), getenv, &out, &out)
			if err == nil {
				t.Errorf("dlq %s %s: accepted", cmd, strings.Join(args, " "))
			}
		}
	}
	if msgs := kafkatest.MustReadAll(t, k.Brokers()[0], "order-events"); len(msgs) != 0 {
		t.Fatalf("refused selections replayed %d messages", len(msgs))
	}

	replayAll := func(extra ...string) map[string]any {
		t.Helper()
		out.Reset()
		if err := run(ctx, append([]string{"dlq", "replay", "-all"}, extra...), getenv, &out, &out); err != nil {
			t.Fatal(err)
		}
		var res map[string]any
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("output %q: %v", out.String(), err)
		}
		return res
	}
	if res := replayAll(); res["replayed"] != 3.0 {
		t.Fatalf("first replay -all: %v", res)
	}
	if res := replayAll(); res["replayed"] != 0.0 || res["skipped_already_replayed"] != 3.0 {
		t.Fatalf("second replay -all: %v", res)
	}
	msgs := kafkatest.MustReadAll(t, k.Brokers()[0], "order-events")
	if len(msgs) != 3 {
		t.Fatalf("two replays of 3 letters put %d messages back", len(msgs))
	}
	for i, m := range msgs {
		if want := dls[i].Msg.Partition; m.Partition != want {
			t.Errorf("letter %d replayed to partition %d, original %d", i, m.Partition, want)
		}
	}
	if res := replayAll("-force"); res["replayed"] != 3.0 {
		t.Fatalf("replay -all -force: %v", res)
	}
	// A selection of one partition replays only it.
	out.Reset()
	if err := run(ctx, []string{"dlq", "replay", "-partition", "4", "-force"}, getenv, &out, &out); err != nil || !strings.Contains(out.String(), `"replayed":1`) {
		t.Fatalf("replay -partition 4: %v %s", err, out.String())
	}
}

// operatorEnv is what an operator's commands run against: a broker with the
// topics, and the projection database (migrated by fsys, if not nil), as
// the environment the commands read.
func operatorEnv(t *testing.T, fsys fs.FS) (*devstack.Kafka, func(string) string) {
	t.Helper()
	k := stacktest.Kafka(t, devstack.KafkaConfig{})
	db := pgtest.MustDB(t, fsys)
	return k, stacktest.Env(map[string]string{"KAFKA_BROKERS": k.Brokers()[0], "DATABASE_URL": db.URL})
}

// publish dead-letters dls as the consumer would.
func publish(t *testing.T, k *devstack.Kafka, dls []deadletter.DeadLetter) {
	t.Helper()
	pub, err := deadletter.NewPublisher(deadletter.PublisherConfig{Topic: "order-events.dlq", Brokers: k.Brokers(), Group: "order-projector", Logger: stacktest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(context.Background(), dls); err != nil {
		t.Fatal(err)
	}
}
