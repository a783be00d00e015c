package orderapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
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
