package orderapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
	"github.com/ordersonkafka/orders/openapi"
)

// getJSON GETs url and decodes its JSON object; the exchange is held to
// order-api's OpenAPI document.
func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := openapitest.Load(t, openapi.OrderAPI()).Client(t).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("GET %s: %d, a body that is not a JSON object: %v", url, resp.StatusCode, err)
	}
	return resp.StatusCode, m
}

// field returns body[object][key] as a string ("" if absent).
func field(body map[string]any, object, key string) string {
	m, _ := body[object].(map[string]any)
	s, _ := m[key].(string)
	return s
}

// gaugeValue scrapes the unlabelled gauge name from order-api's /metrics
// (-1 when absent).
func gaugeValue(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := openapitest.Load(t, openapi.OrderAPI()).Client(t).Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := fams[name]; ok && len(f.GetMetric()) == 1 {
		return f.GetMetric()[0].GetGauge().GetValue()
	}
	return -1
}

// logged counts the lines of log whose message is msg and whose check is
// check.
func logged(log *stacktest.Log, msg, check string) int {
	if strings.Contains(msg, " ") {
		msg = strconv.Quote(msg)
	}
	return len(regexp.MustCompile(`(?m)^.* msg=`+regexp.QuoteMeta(msg)+` .*check=`+check+`( |$)`).FindAllString(log.String(), -1))
}

// With Kafka refusing every write, order-api keeps taking orders and stays
// ready, but once rows have waited RELAY_STALL_AFTER with nothing
// published, every replica's /readyz lists outbox_relay as degraded: the
// leader naming the failing step and Kafka's error, the standby from the
// shared outbox, pointing at the leader; outbox_relay_stalled is 1 on both,
// and each logs one line when it starts and one when it ends, however
// often it is probed.
func TestAStalledRelayIsDegradedOnEveryReplica(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	leader := s.start(t, "RELAY_STALL_AFTER", "300ms")
	stacktest.WaitFor(t, "the first relay to lead", wait, leader.svc.Relay().IsLeader)
	standby := s.start(t, "RELAY_STALL_AFTER", "300ms")
	for _, api := range []*instance{leader, standby} {
		if st, body := getJSON(t, api.url+"/readyz"); st != 200 || field(body, "checks", "outbox_relay") != "ok" || body["degraded"] != nil {
			t.Fatalf("/readyz before any fault: %d %v", st, body)
		}
	}

	fault := s.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	place(t, standby.url)
	var leaderSays, standbySays string
	stacktest.WaitFor(t, "both replicas to report the relay stalled", wait, func() bool {
		lst, lb := getJSON(t, leader.url+"/readyz")
		sst, sb := getJSON(t, standby.url+"/readyz")
		if lst != 200 || sst != 200 {
			t.Fatalf("/readyz failed while only Kafka is down: %d %v, %d %v", lst, lb, sst, sb)
		}
		leaderSays, standbySays = field(lb, "degraded", "outbox_relay"), field(sb, "degraded", "outbox_relay")
		// The leader names the step once its write has failed: kafka-go
		// retries NOT_ENOUGH_REPLICAS itself first, which may outlast
		// RELAY_STALL_AFTER ("no step failing" meanwhile).
		return strings.Contains(leaderSays, "write to Kafka: ") && standbySays != "" && field(lb, "checks", "outbox_relay") == leaderSays
	})
	for _, want := range []string{"write to Kafka: ", "Not Enough Replicas", "leads and published nothing", "1 row waits", "RELAY_STALL_AFTER=300ms"} {
		if !strings.Contains(leaderSays, want) {
			t.Errorf("the leader's outbox_relay %q does not say %q", leaderSays, want)
		}
	}
	for _, want := range []string{"relay stalled: 1 row waits", "the leading replica's outbox_relay check names why"} {
		if !strings.Contains(standbySays, want) {
			t.Errorf("the standby's outbox_relay %q does not say %q", standbySays, want)
		}
	}
	for _, api := range []*instance{leader, standby} {
		if v := gaugeValue(t, api.url, "outbox_relay_stalled"); v != 1 {
			t.Errorf("outbox_relay_stalled = %v while stalled, want 1", v)
		}
	}

	fault.Remove()
	kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 1, wait)
	stacktest.WaitFor(t, "both replicas to report the relay ok", wait, func() bool {
		_, lb := getJSON(t, leader.url+"/readyz")
		_, sb := getJSON(t, standby.url+"/readyz")
		return field(lb, "checks", "outbox_relay") == "ok" && field(sb, "checks", "outbox_relay") == "ok" &&
			lb["degraded"] == nil && sb["degraded"] == nil
	})
	for name, api := range map[string]*instance{"leader": leader, "standby": standby} {
		if v := gaugeValue(t, api.url, "outbox_relay_stalled"); v != 0 {
			t.Errorf("%s: outbox_relay_stalled = %v once published, want 0", name, v)
		}
		if n, m := logged(api.log, "degraded", "outbox_relay"), logged(api.log, "no longer degraded", "outbox_relay"); n != 1 || m != 1 {
			t.Errorf("%s logged the stall starting %d times and ending %d times, want once each", name, n, m)
		}
	}
}

// A row Kafka refuses for its size is set aside: /readyz stays 200 and
// lists outbox_set_aside as degraded, naming the order and Kafka's refusal,
// until the rows are moved back and published; one line is logged when it
// starts and one when it ends.
func TestRowsSetAsideAreDegradedUntilRetried(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	setLimit(t, s, 4000)
	api := s.start(t, "RELAY_STALL_AFTER", "200ms") // the watch looks every 50ms
	stacktest.WaitFor(t, "the relay to lead", wait, api.svc.Relay().IsLeader)
	var items []string
	for i := range 100 {
		items = append(items, fmt.Sprintf(`{"sku":"%064d","quantity":1,"unit_price_minor":100}`, i))
	}
	st, o := post(t, api.url+"/orders", `{"customer_id":"big","currency":"EUR","items":[`+strings.Join(items, ",")+`]}`)
	if st != 201 {
		t.Fatalf("place: %d %v", st, o)
	}
	id := o["id"].(string)
	var says string
	stacktest.WaitFor(t, "/readyz to list the row set aside", wait, func() bool {
		st, body := getJSON(t, api.url+"/readyz")
		if st != 200 {
			t.Fatalf("/readyz %d %v while a row is set aside", st, body)
		}
		says = field(body, "degraded", "outbox_set_aside")
		return says != ""
	})
	for _, want := range []string{"1 outbox row set aside", id, "Kafka refused it", "order-api outbox retry"} {
		if !strings.Contains(says, want) {
			t.Errorf("outbox_set_aside %q does not say %q", says, want)
		}
	}

	setLimit(t, s, 1<<20)
	if n, err := outbox.RetrySetAside(context.Background(), s.db.Pool, id); err != nil || n != 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 1, wait)
	stacktest.WaitFor(t, "/readyz to show nothing set aside", wait, func() bool {
		_, body := getJSON(t, api.url+"/readyz")
		return field(body, "checks", "outbox_set_aside") == "ok"
	})
	if n, m := logged(api.log, "degraded", "outbox_set_aside"), logged(api.log, "no longer degraded", "outbox_set_aside"); n != 1 || m != 1 {
		t.Errorf("logged the rows set aside %d times and their end %d times, want once each", n, m)
	}
}

// setLimit sets the topic's max.message.bytes, as an operator would.
func setLimit(t *testing.T, s *stack, limit int) {
	t.Helper()
	c := kafkaconn.Plaintext.Client(s.kafka.Brokers(), 5*time.Second)
	resp, err := c.AlterConfigs(context.Background(), &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: "order-events",
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

// /livez is 200 while the relay and the purger wait for work, however long
// (an idle loop beats while it waits), and 503 naming the relay while it is
// stuck in a query that does not return: here its batch read waits for a
// lock on the outbox the test holds. Once the lock is released it is live
// again.
func TestLivezNamesAWedgedRelayNotAnIdleOne(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	const timeout = time.Second
	api := s.start(t, "LIVENESS_TIMEOUT", timeout.String())
	stacktest.WaitFor(t, "the relay to lead", wait, api.svc.Relay().IsLeader)
	place(t, api.url)
	kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 1, wait)

	// Idle for two timeouts: nothing to publish, nothing to purge.
	for until := time.Now().Add(2 * timeout); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
		st, body := getJSON(t, api.url+"/livez")
		loops, _ := body["loops"].(map[string]any)
		if st != 200 || body["status"] != "live" || loops["relay"] == nil || loops["idempotency key purger"] == nil {
			t.Fatalf("/livez of an idle order-api: %d %v", st, body)
		}
	}

	ctx := context.Background()
	tx, err := s.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op once rolled back
	if _, err := tx.Exec(ctx, "LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var wedged string
	stacktest.WaitFor(t, "/livez 503 naming the relay", wait, func() bool {
		st, body := getJSON(t, api.url+"/livez")
		wedged = field(body, "wedged", "relay")
		return st == 503 && body["status"] == "wedged" && wedged != ""
	})
	if !strings.Contains(wedged, "no heartbeat for") || !strings.Contains(wedged, "LIVENESS_TIMEOUT=1s") {
		t.Errorf("wedged relay: %q", wedged)
	}
	if st, body := getJSON(t, api.url+"/livez"); field(body, "wedged", "idempotency key purger") != "" {
		t.Errorf("/livez names the idle purger: %d %v", st, body)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, "/livez 200 once the lock is released", wait, func() bool {
		st, _ := getJSON(t, api.url+"/livez")
		return st == 200
	})
}
