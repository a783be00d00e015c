package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
)

// setLimit sets the topic's max.message.bytes, as an operator would.
func (h *harness) setLimit(limit int) {
	h.t.Helper()
	c := kafkaconn.Plaintext.Client(h.kafka.Brokers(), 5*time.Second)
	resp, err := c.AlterConfigs(context.Background(), &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.AlterConfigRequestConfig{{Name: "max.message.bytes", Value: strconv.Itoa(limit)}},
	}}})
	if err == nil {
		for _, e := range resp.Errors {
			err = errors.Join(err, e)
		}
	}
	if err != nil {
		h.t.Fatal(err)
	}
}

// place places an order of items items, each with the longest SKU, and
// returns its ID: with 100 items its events are about 7 KB.
func (h *harness) place(items int) uuid.UUID {
	h.t.Helper()
	n := order.NewOrder{CustomerID: "c", Currency: "EUR"}
	for i := range items {
		n.Items = append(n.Items, order.Item{SKU: fmt.Sprintf("%064d", i), Quantity: 1, UnitPriceMinor: 100})
	}
	o, ev, err := order.Place(n, order.Now(), order.Meta{})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, _, err := h.store.Create(context.Background(), o, ev, nil); err != nil {
		h.t.Fatal(err)
	}
	return o.ID
}

// change applies c to order id.
func (h *harness) change(id uuid.UUID, c order.Change) {
	h.t.Helper()
	_, err := h.store.Update(context.Background(), id, nil, func(o *order.Order) (order.Event, error) {
		return order.Standard.Apply(o, c, order.Now(), order.Meta{})
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// setAside returns the set-aside rows' event types and reasons, in id
// order, and the orders they are of.
func (h *harness) setAside() (types, reasons []string, orders map[string]bool) {
	h.t.Helper()
	rows, err := outbox.ListSetAside(context.Background(), h.db.Pool)
	if err != nil {
		h.t.Fatal(err)
	}
	orders = map[string]bool{}
	for _, r := range rows {
		types, reasons = append(types, r.EventType), append(reasons, r.Reason)
		orders[r.OrderID] = true
	}
	return types, reasons, orders
}

// gauge is the value of the unlabelled gauge name on reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// One order whose events the topic refuses (its max.message.bytes lowered
// below them) holds back no other order: the orders placed before and
// after it are published, each in its order, while its refused event and
// the order's later ones, written before or after the refusal, are set
// aside with the reason, each logged. Once the limit is raised, moving
// them back publishes them in their order. The relay finds the guilty row
// whether it knows the limit (kafka-go refuses the message before sending
// it) or the broker will not say it (the broker refuses the partition's
// batch, and the rows are written again one at a time).
func TestARowKafkaRefusesIsSetAsideAndOtherOrdersFlow(t *testing.T) {
	for _, knows := range []bool{true, false} {
		t.Run(fmt.Sprintf("the relay knows the limit: %v", knows), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if !knows {
				h.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.DescribeConfigs}, Err: kerr.ClusterAuthorizationFailed, Count: -1})
			}
			h.setLimit(4096) // an ordinary event is about 400 bytes, the large order's 7 KB
			before := h.orders(4)
			large := h.place(100)
			h.change(large, order.Change{Action: order.ActionPay, PaymentReference: "p"})
			between := h.orders(4)
			logs := stacktest.NewLog(t)
			reg := prometheus.NewRegistry()
			reg.MustRegister(outbox.NewBacklogCollector(h.db.Pool))
			h.relay(func(c *outbox.Config) { c.Logger = logs.Logger })

			stacktest.WaitFor(t, "the large order's two events set aside", wait, func() bool {
				types, _, _ := h.setAside()
				return len(types) == 2
			})
			// Written after its order's events were set aside: set aside too.
			h.change(large, order.Change{Action: order.ActionRefund, Reason: "r"})
			after := h.orders(4)
			h.waitAllPublished()
			msgs, seen := h.check(before + between + after)
			if len(seen) != before+between+after {
				t.Fatalf("%d distinct events on the topic, want the %d of the other orders", len(seen), before+between+after)
			}
			for _, m := range msgs {
				if string(m.msg.Key) == large.String() {
					t.Fatalf("an event of the refused order is on the topic (version %d)", m.version)
				}
			}
			types, reasons, orders := h.setAside()
			if want := []string{"PLACED", "PAID", "REFUNDED"}; strings.Join(types, ",") != strings.Join(want, ",") || len(orders) != 1 || !orders[large.String()] {
				t.Fatalf("set aside: %v of orders %v, want the large order's %v", types, orders, want)
			}
			if !strings.Contains(reasons[0], "Message Size Too Large") {
				t.Errorf("the refused event's reason: %q", reasons[0])
			}
			for _, r := range reasons[1:] {
				if !strings.Contains(r, "an earlier event of its order is set aside") {
					t.Errorf("a later event's reason: %q", r)
				}
			}
			if n := gauge(t, reg, "outbox_set_aside"); n != 3 {
				t.Errorf("outbox_set_aside = %v, want 3", n)
			}
			if age := gauge(t, reg, "outbox_oldest_set_aside_age_seconds"); age <= 0 {
				t.Errorf("outbox_oldest_set_aside_age_seconds = %v, want > 0", age)
			}
			if n := strings.Count(logs.String(), `"outbox row set aside`); n != 3 {
				t.Errorf("%d set-aside lines logged, want one per row (3)", n)
			}
			for _, typ := range types {
				if !strings.Contains(logs.String(), `event_type=`+typ) || !strings.Contains(logs.String(), "order_id="+large.String()) {
					t.Errorf("no log line names order %s's %s event", large, typ)
				}
			}

			h.setLimit(1 << 20)
			if n, err := outbox.RetrySetAside(context.Background(), h.db.Pool, large.String()); err != nil || n != 3 {
				t.Fatalf("retry: %d rows, %v", n, err)
			}
			total := before + between + after + 3
			h.waitAllPublished()
			if _, seen := h.check(total); len(seen) != total { // the large order's events too, in their order
				t.Fatalf("%d distinct events on the topic, want %d", len(seen), total)
			}
			if types, _, _ := h.setAside(); len(types) != 0 {
				t.Fatalf("still set aside: %v", types)
			}
		})
	}
}

// Batches are sized for the topic's max.message.bytes: with the limit
// lowered to a few events, a backlog drains without one write refused.
func TestBatchesFitTheTopicsLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.setLimit(2048)
	n := h.orders(40) // 60 events, 10 a partition
	reg := prometheus.NewRegistry()
	h.relay(func(c *outbox.Config) { c.Metrics = outbox.NewMetrics(reg) })
	h.waitAllPublished()
	if _, seen := h.check(n); len(seen) != n {
		t.Fatalf("%d distinct events, want %d", len(seen), n)
	}
	if f := counter(t, reg, "outbox_step_failures_total", "step", "write to Kafka"); f != 0 {
		t.Errorf("%v writes failed", f)
	}
}

// A refusal that belongs to the topic or the broker is an outage: the
// relay retries, and sets nothing aside, however long it lasts.
func TestATopicRefusalSetsNothingAside(t *testing.T) {
	for _, err := range []*kerr.Error{kerr.TopicAuthorizationFailed, kerr.UnknownTopicOrPartition} {
		t.Run(err.Message, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			n := h.orders(4)
			fault := h.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: err, Count: -1})
			reg := prometheus.NewRegistry()
			h.relay(func(c *outbox.Config) { c.Metrics = outbox.NewMetrics(reg) })
			stacktest.WaitFor(t, "three failed writes", wait, func() bool {
				return counter(t, reg, "outbox_step_failures_total", "step", "write to Kafka") >= 3
			})
			if types, _, _ := h.setAside(); len(types) != 0 || h.unpublished() != n {
				t.Fatalf("set aside %v, %d unpublished; want nothing set aside, all %d unpublished", types, h.unpublished(), n)
			}
			fault.Remove()
			h.waitAllPublished()
			if _, seen := h.check(n); len(seen) != n {
				t.Fatalf("%d distinct events, want %d", len(seen), n)
			}
		})
	}
}

// A failed write is retried from the outbox, not from memory: a row an
// operator deletes while the relay is failing is not published.
func TestARowDeletedWhileTheRelayFailsIsNotPublished(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	n := h.orders(4) // 6 events, one batch
	fault := h.kafka.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	reg := prometheus.NewRegistry()
	h.relay(func(c *outbox.Config) { c.Metrics = outbox.NewMetrics(reg) })
	stacktest.WaitFor(t, "two failed writes", wait, func() bool {
		return counter(t, reg, "outbox_step_failures_total", "step", "write to Kafka") >= 2
	})
	// The last order was placed, not paid: its one event goes.
	var deleted string
	if err := h.db.Pool.QueryRow(context.Background(), `DELETE FROM outbox WHERE id = (SELECT max(id) FROM outbox) RETURNING event_id::text`).Scan(&deleted); err != nil {
		t.Fatal(err)
	}
	// An attempt already under way read the row before it went: let two
	// more fail, so that the one the fault's removal lets through read the
	// outbox after the delete.
	failed := counter(t, reg, "outbox_step_failures_total", "step", "write to Kafka")
	stacktest.WaitFor(t, "two more failed writes", wait, func() bool {
		return counter(t, reg, "outbox_step_failures_total", "step", "write to Kafka") >= failed+2
	})
	fault.Remove()
	h.waitAllPublished()
	msgs, seen := h.check(n - 1)
	if seen[deleted] > 0 {
		t.Fatalf("the deleted row's event %s was published", deleted)
	}
	if len(seen) != n-1 {
		t.Fatalf("%d distinct events (%d messages), want the %d rows left", len(seen), len(msgs), n-1)
	}
}
