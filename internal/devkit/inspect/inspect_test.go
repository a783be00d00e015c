package inspect_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/inspect"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
	"github.com/ordersonkafka/orders/migrations"
	"github.com/ordersonkafka/orders/schemas"
)

const (
	topic    = "order-events"
	dlqTopic = "order-events.dlq"
)

// A stack as the playground runs it, in this process: the broker, the
// registry, order-api and order-consumer on databases of their own, one
// order placed through the API and applied, and one poison message with
// the order's key dead-lettered; then the page on it.
type stack struct {
	page    *httptest.Server
	orderID string
}

func newStack(t *testing.T) stack {
	t.Helper()
	k := stacktest.Kafka(t, devstack.KafkaConfig{Topics: []string{topic, dlqTopic}})
	reg := stacktest.Registry(t)
	ordersDB, projectionDB := pgtest.MustDB(t, migrations.Orders()), pgtest.MustDB(t, migrations.Projection())
	shared := map[string]string{"KAFKA_BROKERS": k.Brokers()[0], "SCHEMA_REGISTRY_URL": reg.URL(), "SHUTDOWN_TIMEOUT": "2s"}

	apiCfg, err := config.Load[orderapi.Config](stacktest.Env(shared, "DATABASE_URL", ordersDB.URL, "RELAY_POLL_INTERVAL", "100ms"))
	if err != nil {
		t.Fatal(err)
	}
	api, err := orderapi.New(context.Background(), apiCfg, stacktest.Logger(t), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	apiURL, _ := stacktest.Serve(t, api)
	consumerCfg, err := config.Load[orderconsumer.Config](stacktest.Env(shared, "DATABASE_URL", projectionDB.URL,
		"CONSUMER_BACKOFF_MIN", "10ms", "CONSUMER_BACKOFF_MAX", "200ms", "CONSUMER_BATCH_LINGER", "5ms"))
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := orderconsumer.New(context.Background(), consumerCfg, stacktest.Logger(t), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	consumerURL, _ := stacktest.Serve(t, consumer)

	id := placeOrder(t, apiURL)
	poison(t, k.Brokers()[0], id)
	stacktest.WaitFor(t, "the order in the projection", 30*time.Second, func() bool {
		resp, err := http.Get(consumerURL + "/orders/" + id)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	kafkatest.WaitForCount(t, k.Brokers()[0], dlqTopic, 1, 30*time.Second)

	page, err := inspect.New(context.Background(), inspect.Config{OrdersDB: ordersDB.URL, ProjectionDB: projectionDB.URL,
		Brokers: k.Brokers(), RegistryURL: reg.URL(), Topic: topic, DLQTopic: dlqTopic, Group: consumerCfg.GroupID, Logger: stacktest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(page.Close)
	srv := httptest.NewServer(page.Handler())
	t.Cleanup(srv.Close)
	return stack{page: srv, orderID: id}
}

// placeOrder places an order through order-api and returns its ID.
func placeOrder(t *testing.T, apiURL string) string {
	t.Helper()
	resp, err := http.Post(apiURL+"/orders", "application/json",
		strings.NewReader(`{"customer_id":"c-inspect","currency":"EUR","items":[{"sku":"BOOK-1","quantity":2,"unit_price_minor":1250}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var o struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil || resp.StatusCode != 201 || o.ID == "" {
		t.Fatalf("place an order: %d %v %+v", resp.StatusCode, err, o)
	}
	return o.ID
}

// poison writes bytes that are not Avro to the topic with key.
func poison(t *testing.T, broker, key string) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Murmur2Balancer{Consistent: true}, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte(key), Value: []byte("not avro")}); err != nil {
		t.Fatalf("write the poison message: %v", err)
	}
}

// get returns the status and body of the page at path.
func get(t *testing.T, s stack, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.page.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// section is the text of the page's <section id="id">, or "" if it has none.
func section(page, id string) string {
	_, rest, ok := strings.Cut(page, `<section id="`+id+`">`)
	if !ok {
		return ""
	}
	s, _, _ := strings.Cut(rest, "</section>")
	return s
}

// wants fails t for each of wants that text lacks.
func wants(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s does not show %q:\n%s", what, w, text)
		}
	}
}

func TestThePageShowsWhatTheStackHolds(t *testing.T) {
	s := newStack(t)

	t.Run("the overview shows topics, lag, subjects, decoded events and the dead letter", func(t *testing.T) {
		st, page := get(t, s, "GET", "/")
		if st != 200 {
			t.Fatalf("GET / = %d:\n%s", st, page)
		}
		wants(t, "the topics", section(page, "topics"), topic+" — 6 partitions, 2 messages", dlqTopic+" — 6 partitions, 1 messages")
		// Everything was applied or dead-lettered, and committed.
		wants(t, "the lag", section(page, "lag"), "Consumer group order-projector on "+topic+" — lag 0", `<tr class="lag">`)
		// order-api registers every version of schemas/ and sets the subject's level.
		versions := make([]string, len(schemas.All()))
		for i := range versions {
			versions[i] = strconv.Itoa(i + 1)
		}
		wants(t, "the subjects", section(page, "subjects"), "global compatibility BACKWARD",
			`<td class="mono">`+topic+`-value</td><td>`+strings.Join(versions, ", ")+`</td><td>`+schemas.Compatibility+`</td>`)
		wants(t, "the events", section(page, "events"), "<td>PLACED</td>", ">"+s.orderID+"</a>", "event_type=PLACED",
			"eventcodec.ErrNotFramed")
		wants(t, "the dead letters", section(page, "dlq"), "eventcodec.ErrNotFramed", topic+"/",
			"order-consumer dlq replay -partition ")
	})

	t.Run("the events filtered by an order show only its own", func(t *testing.T) {
		_, page := get(t, s, "GET", "/?order="+s.orderID)
		if n := strings.Count(section(page, "events"), `<tr class="event">`); n != 2 {
			t.Errorf("%d events of the order, want 2 (its PLACED and the poison with its key)", n)
		}
		_, page = get(t, s, "GET", "/?order=00000000-0000-7000-8000-000000000000")
		if n := strings.Count(section(page, "events"), `<tr class="event">`); n != 0 {
			t.Errorf("%d events of an order that does not exist", n)
		}
		_, page = get(t, s, "GET", "/?order=x")
		wants(t, "a filter that is no order ID", section(page, "events"), "is not an order ID")
	})

	t.Run("the trail shows the order in both databases and on the topic", func(t *testing.T) {
		st, page := get(t, s, "GET", "/orders/"+s.orderID)
		if st != 200 {
			t.Fatalf("GET /orders/%s = %d:\n%s", s.orderID, st, page)
		}
		wants(t, "the API state", section(page, "api"), s.orderID, "placed", "c-inspect", "2500")
		wants(t, "the outbox", section(page, "outbox"), "published", "PLACED")
		wants(t, "its events", section(page, "topic-events"), "<td>PLACED</td>", "eventcodec.ErrNotFramed")
		wants(t, "the projection", section(page, "projection"), "<th>version</th>", s.orderID, "placed")
		wants(t, "the ledger", section(page, "ledger"), "PLACED", "applied")
		wants(t, "the parked events", section(page, "parked"), "none")
		_, customers, _ := strings.Cut(section(page, "read-models"), "customer_orders")
		wants(t, "the customer's read model", customers,
			`<td class="mono">c-inspect</td><td class="mono">placed</td><td class="mono">EUR</td><td class="mono">1</td><td class="mono">2500</td>`)
		wants(t, "its dead letters", section(page, "order-dlq"), "eventcodec.ErrNotFramed")
	})

	t.Run("an unknown or malformed order ID is said so", func(t *testing.T) {
		_, page := get(t, s, "GET", "/orders/00000000-0000-7000-8000-000000000000")
		wants(t, "an unknown order's trail", page, "no trace of this order")
		st, page := get(t, s, "GET", "/orders/nope")
		if st != 400 || !strings.Contains(page, "is not an order ID") {
			t.Errorf("GET /orders/nope = %d:\n%s", st, page)
		}
	})

	t.Run("it answers only GET", func(t *testing.T) {
		for _, m := range []string{"POST", "PUT", "DELETE"} {
			if st, _ := get(t, s, m, "/"); st != http.StatusMethodNotAllowed {
				t.Errorf("%s / = %d, want 405", m, st)
			}
		}
	})
}
