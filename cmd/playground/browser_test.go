//go:build browser

// The inspector page in a real browser: `make test-browser` runs it (not
// `make test`: it needs chromium, and a browser costs seconds of CPU).

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
)

// TestInspectorInABrowser: a playground with an order placed through its
// API and a poison message dead-lettered; headless chromium renders the
// inspector page and the order's trail, and their DOM shows the topics
// with their partitions, the group's lag, the subject, the order's event
// decoded, the dead letter with its class and replay command, and the
// order in order-api's database, its outbox row, its event's partition and
// offset, its projection's version and the ledger's outcome.
func TestInspectorInABrowser(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		var err error
		if chromium, err = exec.LookPath("chromium"); err != nil {
			t.Fatal("this test needs chromium (Debian: apt-get install chromium), or CHROMIUM set to a Chrome or Chromium binary")
		}
	}
	opts := testOptions(t, "browser")
	p := startPlayground(t, opts)
	page := "http://" + opts.inspectAddr
	if !strings.Contains(p.banner.String(), page) {
		t.Fatalf("the banner does not link the inspector page %s:\n%s", page, p.banner)
	}
	m := regexp.MustCompile(`(?m)^  Kafka\s+(\S+)`).FindStringSubmatch(p.banner.String())
	if m == nil {
		t.Fatalf("no broker in the banner:\n%s", p.banner)
	}
	broker := m[1]

	id := placeOrder(t, "http://"+opts.apiAddr)
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Murmur2Balancer{Consistent: true}, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("poison-1"), Value: []byte("not avro")}); err != nil {
		t.Fatalf("write the poison message: %v", err)
	}
	w.Close()
	kafkatest.WaitForCount(t, broker, dlqTopic, 1, 30*time.Second)
	stacktest.WaitFor(t, "the order in the projection", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + opts.consumerAddr + "/orders/" + id)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// Where the order's event is, as the broker says.
	var event kafka.Message
	for _, msg := range kafkatest.MustReadAll(t, broker, topic) {
		if string(msg.Key) == id {
			event = msg
		}
	}
	if event.Key == nil {
		t.Fatalf("no event of order %s on %s", id, topic)
	}

	dom := dumpDOM(t, chromium, page+"/")
	want(t, "the topics", section(dom, "topics"), topic+" — 6 partitions", dlqTopic+" — 6 partitions", `<tr class="partition">`)
	want(t, "the lag", section(dom, "lag"), "Consumer group order-projector on "+topic+" — lag", `<tr class="lag">`)
	want(t, "the subjects", section(dom, "subjects"), topic+"-value", "BACKWARD_TRANSITIVE")
	want(t, "the events", section(dom, "events"), "<td>PLACED</td>", ">"+id+"</a>", "event_type=PLACED")
	want(t, "the dead letters", section(dom, "dlq"), "poison-1", "eventcodec.ErrNotFramed",
		"order-consumer dlq replay -partition ")

	dom = dumpDOM(t, chromium, page+"/orders/"+id)
	want(t, "the API state", section(dom, "api"), `<td class="mono">`+id+`</td><td class="mono">placed</td><td class="mono">1</td>`)
	want(t, "the outbox", section(dom, "outbox"), `<td class="mono">published</td>`, "PLACED")
	want(t, "the event's position", section(dom, "topic-events"),
		fmt.Sprintf(`<tr class="event"><td class="n">%d</td><td class="n">%d</td>`, event.Partition, event.Offset), "<td>PLACED</td>")
	want(t, "the projection", section(dom, "projection"), "<th>version</th>",
		`<td class="mono">`+id+`</td><td class="mono">placed</td><td class="mono">1</td>`)
	want(t, "the ledger", section(dom, "ledger"), `<td class="mono">PLACED</td><td class="mono">applied</td>`)
	want(t, "the read models", section(dom, "read-models"), "customer_orders", "c-42")
}

// placeOrder places the banner's order through order-api at api.
func placeOrder(t *testing.T, api string) string {
	t.Helper()
	resp, err := http.Post(api+"/orders", "application/json",
		strings.NewReader(`{"customer_id":"c-42","currency":"EUR","items":[{"sku":"BOOK-1","quantity":2,"unit_price_minor":1250}]}`))
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

// dumpDOM is the DOM headless chromium holds once it has loaded url.
func dumpDOM(t *testing.T, chromium, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// --no-sandbox: the tests may run as root, where chromium's sandbox
	// refuses to start.
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-proxy-server", "--no-first-run", "--user-data-dir="+t.TempDir(), "--dump-dom", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, stderr.String())
	}
	if !strings.Contains(string(out), "</html>") {
		t.Fatalf("chromium --dump-dom %s printed no page:\n%s\n%s", url, out, stderr.String())
	}
	return string(out)
}

// section is the markup of the page's <section id="id">, or "" if it has none.
func section(dom, id string) string {
	_, rest, ok := strings.Cut(dom, `<section id="`+id+`">`)
	if !ok {
		return ""
	}
	s, _, _ := strings.Cut(rest, "</section>")
	return s
}

// want fails t for each of wants that markup lacks.
func want(t *testing.T, what, markup string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(markup, w) {
			t.Errorf("%s in the browser does not show %q:\n%s", what, w, markup)
		}
	}
}
