package deadletter_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
)

const (
	topic    = "order-events"
	dlqTopic = "order-events.dlq"
)

func startKafka(t *testing.T) *devstack.Kafka {
	t.Helper()
	return stacktest.Kafka(t, devstack.KafkaConfig{})
}

func publisher(t *testing.T, k *devstack.Kafka) *deadletter.Publisher {
	t.Helper()
	p, err := deadletter.NewPublisher(deadletter.PublisherConfig{Topic: "order-events.dlq", Brokers: k.Brokers(), Group: "g", Logger: stacktest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// setLimit sets the DLQ topic's max.message.bytes, as an operator would.
func setLimit(t *testing.T, k *devstack.Kafka, limit int) {
	t.Helper()
	c := kafkaconn.Plaintext.Client(k.Brokers(), 5*time.Second)
	resp, err := c.AlterConfigs(context.Background(), &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: dlqTopic,
		Configs: []kafka.AlterConfigRequestConfig{{Name: "max.message.bytes", Value: strconv.Itoa(limit)}},
	}}})
	if err == nil {
		for _, e := range resp.Errors {
			err = errors.Join(err, e)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

func header(m kafka.Message, key string) (string, bool) { return kafkatest.Header(m, key) }

func letter(value []byte, headers ...kafka.Header) deadletter.DeadLetter {
	return deadletter.DeadLetter{
		Msg: kafka.Message{Topic: topic, Partition: 3, Offset: 7, Time: time.Now(), Key: []byte("order-1"),
			Value: value, Headers: append([]kafka.Header{{Key: "event_id", Value: []byte("e-1")}}, headers...)},
		Class: "eventcodec.ErrNotFramed", Err: errors.New("not in the Confluent wire format"),
	}
}

// A value just under the broker's limit is accepted on order-events, but its
// dead letter (the same bytes and the kafka_dlt-* headers) would not be: it
// is cut to fit and says so, rather than refused for ever.
func TestADeadLetterAlwaysFits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int // DLQ topic's max.message.bytes; 0 leaves Kafka's default
		value int
	}{
		{"value just under the default 1 MiB limit", 0, 1048400},
		{"value over a DLQ topic's lower limit", 20000, 19900},
		{"value far over a DLQ topic's lower limit", 8000, 500000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := startKafka(t)
			if tc.limit != 0 {
				setLimit(t, k, tc.limit)
			}
			p := publisher(t, k)
			value := bytes.Repeat([]byte("x"), tc.value)
			small := letter([]byte("small"))
			small.Msg.Offset = 8
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := p.Publish(ctx, []deadletter.DeadLetter{letter(value), small}); err != nil {
				t.Fatal(err)
			}
			got := kafkatest.WaitForCount(t, k.Brokers()[0], dlqTopic, 2, 10*time.Second)
			big := got[0]
			if from, _ := header(big, deadletter.HeaderTruncatedFrom); from != strconv.Itoa(tc.value) {
				t.Errorf("%s = %q, want %d", deadletter.HeaderTruncatedFrom, from, tc.value)
			}
			if len(big.Value) == 0 || len(big.Value) >= tc.value || !bytes.Equal(big.Value, value[:len(big.Value)]) {
				t.Errorf("cut value: %d bytes, not a prefix of the original's %d", len(big.Value), tc.value)
			}
			if id, _ := header(big, "event_id"); id != "e-1" || string(big.Key) != "order-1" {
				t.Errorf("key and original headers lost: %q %v", big.Key, big.Headers)
			}
			if class, _ := header(big, deadletter.HeaderExceptionClass); class != "eventcodec.ErrNotFramed" {
				t.Errorf("class %q", class)
			}
			if !deadletter.Truncated(big) || deadletter.Truncated(got[1]) {
				t.Error("Truncated does not tell the cut letter from the whole one")
			}
			if string(got[1].Value) != "small" {
				t.Errorf("the letter that fits was changed: %q", got[1].Value)
			}
		})
	}
}

// What does not fit once the value is empty goes next: the original headers,
// then the key, each cut marked.
func TestHeadersAndKeyAreCutWhenTheValueIsNotEnough(t *testing.T) {
	k := startKafka(t)
	setLimit(t, k, 8000)
	p := publisher(t, k)
	// Named like a header of ours, it is still the original's.
	dl := letter([]byte("v"), kafka.Header{Key: "dlq_big", Value: bytes.Repeat([]byte("h"), 20000)})
	dl.Msg.Key = bytes.Repeat([]byte("k"), 20000)
	if err := p.Publish(context.Background(), []deadletter.DeadLetter{dl}); err != nil {
		t.Fatal(err)
	}
	got := kafkatest.WaitForCount(t, k.Brokers()[0], dlqTopic, 1, 10*time.Second)[0]
	if n, _ := header(got, deadletter.HeaderHeadersDropped); n != "2" {
		t.Errorf("%s = %q, want 2 (event_id and dlq_big)", deadletter.HeaderHeadersDropped, n)
	}
	if _, ok := header(got, "dlq_big"); ok {
		t.Error("the 20 KB header was kept")
	}
	if n, _ := header(got, deadletter.HeaderKeyTruncatedFrom); n != "20000" || len(got.Key) != 256 {
		t.Errorf("key cut to %d bytes, %s = %q", len(got.Key), deadletter.HeaderKeyTruncatedFrom, n)
	}
	if class, _ := header(got, deadletter.HeaderExceptionClass); class != "eventcodec.ErrNotFramed" {
		t.Errorf("the kafka_dlt-* headers were not kept: class %q", class)
	}
}

// A broker that will not say its limit (DescribeConfigs refused) leaves the
// publisher with Kafka's default: a letter over it is still cut to fit.
func TestALimitTheBrokerWillNotTellIsKafkasDefault(t *testing.T) {
	k := startKafka(t)
	k.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.DescribeConfigs}, Err: kerr.ClusterAuthorizationFailed, Count: -1})
	p := publisher(t, k)
	if err := p.Publish(context.Background(), []deadletter.DeadLetter{letter(bytes.Repeat([]byte("x"), 1048400))}); err != nil {
		t.Fatal(err)
	}
	got := kafkatest.WaitForCount(t, k.Brokers()[0], dlqTopic, 1, 10*time.Second)[0]
	if from, _ := header(got, deadletter.HeaderTruncatedFrom); from != "1048400" {
		t.Errorf("%s = %q", deadletter.HeaderTruncatedFrom, from)
	}
}

// The limit is learned once; if the topic's limit drops afterwards the broker
// refuses the letter, and the publisher learns it again and cuts to fit.
func TestALimitLoweredLaterIsLearnedFromTheRefusal(t *testing.T) {
	k := startKafka(t)
	p := publisher(t, k)
	ctx := context.Background()
	if err := p.Publish(ctx, []deadletter.DeadLetter{letter([]byte("first"))}); err != nil {
		t.Fatal(err)
	}
	setLimit(t, k, 10000)
	if err := p.Publish(ctx, []deadletter.DeadLetter{letter(bytes.Repeat([]byte("y"), 50000))}); err != nil {
		t.Fatal(err)
	}
	got := kafkatest.WaitForCount(t, k.Brokers()[0], dlqTopic, 2, 10*time.Second)
	if from, _ := header(got[1], deadletter.HeaderTruncatedFrom); from != "50000" {
		t.Errorf("%s = %q", deadletter.HeaderTruncatedFrom, from)
	}
}

// A record the broker refuses for what it is (not its size) is dead-lettered
// cut to the minimum, with the refusal, instead of retried for ever; the
// letters beside it in the batch are kept whole.
func TestARecordRefusedOtherwiseIsCutToTheMinimum(t *testing.T) {
	k := startKafka(t)
	p := publisher(t, k)
	poisoned := letter([]byte("refuse me"))
	fine := letter([]byte("keep me"))
	fine.Msg.Offset = 8
	// Refuse the batch, then the poisoned letter alone.
	k.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: dlqTopic, Err: kerr.InvalidRecord, Count: 1})
	k.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: dlqTopic, Err: kerr.InvalidRecord, Count: 1,
		When: func(r kmsg.Request) bool {
			return bytes.Contains(r.(*kmsg.ProduceRequest).Topics[0].Partitions[0].Records, []byte("refuse me"))
		}})
	if err := p.Publish(context.Background(), []deadletter.DeadLetter{poisoned, fine}); err != nil {
		t.Fatal(err)
	}
	got := kafkatest.WaitForCount(t, k.Brokers()[0], dlqTopic, 2, 10*time.Second)
	byValue := map[string]kafka.Message{}
	var cut kafka.Message
	for _, m := range got {
		if _, ok := header(m, deadletter.HeaderRefusedByBroker); ok {
			cut = m
		} else {
			byValue[string(m.Value)] = m
		}
	}
	if _, ok := byValue["keep me"]; !ok {
		t.Fatalf("the letter beside the refused one was not kept whole: %v", got)
	}
	if cut.Value == nil || len(cut.Value) != 0 || string(cut.Key) != "order-1" {
		t.Fatalf("the refused letter: key %q value %q", cut.Key, cut.Value)
	}
	if why, _ := header(cut, deadletter.HeaderRefusedByBroker); !strings.Contains(strings.ToLower(why), "invalid") {
		t.Errorf("refusal header %q", why)
	}
	if from, _ := header(cut, deadletter.HeaderTruncatedFrom); from != "9" {
		t.Errorf("%s = %q", deadletter.HeaderTruncatedFrom, from)
	}
}

// kafka-go's Reader hands the consumer nil for a null and for an empty value
// alike; the dead letter keeps what the original was.
func TestNullAndEmptyValuesAreDeadLetteredAsTheyWere(t *testing.T) {
	k := startKafka(t)
	w := &kafka.Writer{Addr: kafka.TCP(k.Brokers()...), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 4 })}
	defer w.Close()
	ctx := context.Background()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte{}}, kafka.Message{Key: nil, Value: nil}); err != nil {
		t.Fatal(err)
	}
	// As the consumer's reader returns them: nil, nil.
	dls := []deadletter.DeadLetter{
		{Msg: kafka.Message{Topic: topic, Partition: 4, Offset: 0, Key: []byte("k"), Time: time.Now()}, Class: "c", Err: errors.New("e")},
		{Msg: kafka.Message{Topic: topic, Partition: 4, Offset: 1, Time: time.Now()}, Class: "c", Err: errors.New("e")},
	}
	if err := publisher(t, k).Publish(ctx, dls); err != nil {
		t.Fatal(err)
	}
	got := kafkatest.WaitForCount(t, k.Brokers()[0], dlqTopic, 2, 10*time.Second)
	if got[0].Value == nil || len(got[0].Value) != 0 {
		t.Errorf("empty value dead-lettered as %#v", got[0].Value)
	}
	if got[1].Value != nil || got[1].Key != nil {
		t.Errorf("null key and value dead-lettered as %#v %#v", got[1].Key, got[1].Value)
	}
	if got[0].Partition != 4 || got[1].Partition != 4 {
		t.Errorf("dead letters on partitions %d and %d, originals on 4", got[0].Partition, got[1].Partition)
	}
}

// memLog is an in-memory ReplayLog for the package's own tests; the
// projection's PostgreSQL log is tested with the service.
type memLog map[deadletter.Position]bool

func (l memLog) Replayed(_ context.Context, _ string, ps []deadletter.Position) (map[deadletter.Position]bool, error) {
	out := map[deadletter.Position]bool{}
	for _, p := range ps {
		if l[p] {
			out[p] = true
		}
	}
	return out, nil
}

func (l memLog) RecordReplayed(_ context.Context, _ string, ps []deadletter.Position) error {
	for _, p := range ps {
		l[p] = true
	}
	return nil
}

// Replay writes to the original partition (not the key's), keeps an empty
// value empty, skips letters replayed before unless forced and letters cut
// to fit, and refuses selections that cannot mean what they say.
func TestReplay(t *testing.T) {
	k := startKafka(t)
	p := publisher(t, k)
	ctx := context.Background()
	key := []byte("order-7")
	orig := (kafkatest.JavaPartition(key, 6) + 2) % 6 // not where murmur2 puts the key
	empty := deadletter.DeadLetter{Msg: kafka.Message{Topic: topic, Partition: orig, Offset: 5, Key: key, Value: []byte{}, Time: time.Now()}, Class: "c", Err: errors.New("e")}
	big := deadletter.DeadLetter{Msg: kafka.Message{Topic: topic, Partition: orig, Offset: 6, Key: key, Value: bytes.Repeat([]byte("z"), 1048500), Time: time.Now()}, Class: "c", Err: errors.New("e")}
	if err := p.Publish(ctx, []deadletter.DeadLetter{empty, big}); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitForCount(t, k.Brokers()[0], dlqTopic, 2, 10*time.Second)
	log := memLog{}
	all := deadletter.Filter{}
	res, err := deadletter.Replay(ctx, k.Brokers(), kafkaconn.Plaintext, dlqTopic, all, deadletter.ReplayOptions{Log: log})
	if err != nil || res.Replayed != 1 || res.SkippedTruncated != 1 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	back := kafkatest.WaitForCount(t, k.Brokers()[0], topic, 1, 10*time.Second)
	if back[0].Partition != orig || back[0].Value == nil || len(back[0].Value) != 0 || !bytes.Equal(back[0].Key, key) {
		t.Fatalf("replayed to partition %d (original %d), value %#v", back[0].Partition, orig, back[0].Value)
	}
	if from, _ := header(back[0], deadletter.HeaderReplayedFrom); from != dlqTopic+"/"+strconv.Itoa(orig)+"@0" {
		t.Errorf("replayed from %q", from)
	}
	res, err = deadletter.Replay(ctx, k.Brokers(), kafkaconn.Plaintext, dlqTopic, all, deadletter.ReplayOptions{Log: log})
	if err != nil || res.Replayed != 0 || res.SkippedReplayed != 1 {
		t.Fatalf("second replay: %+v %v", res, err)
	}
	res, err = deadletter.Replay(ctx, k.Brokers(), kafkaconn.Plaintext, dlqTopic, all, deadletter.ReplayOptions{Log: log, Force: true})
	if err != nil || res.Replayed != 1 {
		t.Fatalf("forced replay: %+v %v", res, err)
	}
	kafkatest.WaitForCount(t, k.Brokers()[0], topic, 2, 10*time.Second)

	// A letter from a partition the topic no longer has is refused, and so is
	// its whole selection: nothing is written.
	gone := deadletter.DeadLetter{Msg: kafka.Message{Topic: topic, Partition: 9, Offset: 1, Key: []byte("order-9"), Value: []byte("v"), Time: time.Now()}, Class: "c", Err: errors.New("e")}
	if err := p.Publish(ctx, []deadletter.DeadLetter{gone}); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitForCount(t, k.Brokers()[0], dlqTopic, 3, 10*time.Second)
	if _, err := deadletter.Replay(ctx, k.Brokers(), kafkaconn.Plaintext, dlqTopic, deadletter.Filter{Key: "order-9"}, deadletter.ReplayOptions{Log: memLog{}}); err == nil ||
		!strings.Contains(err.Error(), "no longer exists") {
		t.Errorf("replay of a letter from partition 9 of 6: %v", err)
	}

	neg, six, one, zero := -5, 6, int64(1), int64(0)
	for name, f := range map[string]deadletter.Filter{
		"negative partition":        {Partition: &neg},
		"partition the DLQ lacks":   {Partition: &six},
		"from after to":             {Partition: &orig, FromOffset: &one, ToOffset: &zero},
		"offsets without partition": {FromOffset: &one},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := deadletter.Replay(ctx, k.Brokers(), kafkaconn.Plaintext, dlqTopic, f, deadletter.ReplayOptions{Log: memLog{}}); err == nil {
				t.Fatal("accepted")
			}
			if _, err := deadletter.List(ctx, k.Brokers(), kafkaconn.Plaintext, dlqTopic, f); err == nil {
				t.Fatal("list accepted it")
			}
		})
	}
	if msgs := kafkatest.MustReadAll(t, k.Brokers()[0], topic); len(msgs) != 2 {
		t.Errorf("refused selections wrote: %d messages on %s, want 2", len(msgs), topic)
	}
}
