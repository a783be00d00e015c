package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/event/envelope"
)

// Corruption damages a finished run on purpose, so that the checker can be
// seen to catch it (bin/chaos -corrupt NAME, and the package's test).
type Corruption struct {
	Name   string
	Figure string // the figure it must fail
	Doc    string
	apply  func(ctx context.Context, c *corrupter) (mentions string, err error)
}

// Corruptions are every corruption, in the order the self-test applies
// them.
var Corruptions = []Corruption{
	{Name: "projection-row", Figure: FigLost, Doc: "an order's projection row deleted",
		apply: func(ctx context.Context, c *corrupter) (string, error) {
			id := c.pick(0)
			return id.String(), c.db(ctx, c.st.projectionURL, "DELETE FROM order_projection WHERE id = $1", id)
		}},
	{Name: "ledger-twice", Figure: FigDoubleApplied, Doc: "a second applied outcome in the ledger for an order's version 2",
		apply: func(ctx context.Context, c *corrupter) (string, error) {
			id := c.pick(1)
			return id.String() + " version 2", c.db(ctx, c.st.projectionURL, `
INSERT INTO processed_events (event_id, order_id, version, event_type, outcome)
SELECT $2, order_id, version, event_type, 'applied' FROM processed_events WHERE order_id = $1 AND version = 2`, id, uuid.New())
		}},
	{Name: "totals-twice", Figure: FigDoubleApplied, Doc: "a customer's line of the customer totals counted twice",
		apply: func(ctx context.Context, c *corrupter) (string, error) {
			customer := c.recs.OrderTerms[c.pick(1)].Customer
			return "customer " + customer, c.db(ctx, c.st.projectionURL,
				"UPDATE customer_orders SET orders = orders + 1, total_minor = total_minor * 2 WHERE customer_id = $1 AND orders > 0", customer)
		}},
	{Name: "forged-event", Figure: FigPhantom, Doc: "an event on the topic the API never wrote: a real one's bytes with another order's ID",
		apply: func(ctx context.Context, c *corrupter) (string, error) {
			id, forged := c.pick(2), uuid.New()
			e := c.versions[id][0]
			value, err := c.value(ctx, e)
			if err != nil {
				return "", err
			}
			value = bytes.ReplaceAll(value, []byte(id.String()), []byte(forged.String()))
			return forged.String(), c.produce(ctx, topic, e.Partition, kafka.Message{Key: []byte(forged.String()), Value: value,
				Headers: []kafka.Header{
					{Key: envelope.HeaderEventID, Value: []byte(uuid.NewString())},
					{Key: envelope.HeaderCorrelationID, Value: []byte("forged")}}})
		}},
	{Name: "swapped-versions", Figure: FigReordered, Doc: "a copy of the topic, record for record, with an order's versions 1 and 2 swapped on its partition, read instead of the topic",
		apply: func(ctx context.Context, c *corrupter) (string, error) {
			id := c.pick(0)
			byPartition := map[int][]kafka.Message{}
			if _, err := readTopic(ctx, c.st.kafkaProxy(), topic, func(m kafka.Message) error {
				byPartition[m.Partition] = append(byPartition[m.Partition], kafka.Message{Key: m.Key, Value: m.Value, Headers: m.Headers})
				return nil
			}); err != nil {
				return "", err
			}
			p := c.versions[id][0].Partition
			var at []int
			for i, m := range byPartition[p] {
				if string(m.Key) == id.String() && len(at) < 2 {
					at = append(at, i)
				}
			}
			if len(at) < 2 {
				return "", fmt.Errorf("order %s: %d records keyed by it on partition %d", id, len(at), p)
			}
			msgs := byPartition[p]
			msgs[at[0]], msgs[at[1]] = msgs[at[1]], msgs[at[0]]
			c.topic = topic + ".swapped"
			tr := &kafka.Transport{}
			defer tr.CloseIdleConnections()
			admin := &kafka.Client{Addr: kafka.TCP(c.st.kafkaProxy()), Transport: tr, Timeout: 10 * time.Second}
			resp, err := admin.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
				{Topic: c.topic, NumPartitions: int(c.recs.TopicPartitions), ReplicationFactor: 1}}})
			if err == nil {
				err = resp.Errors[c.topic]
			}
			if err != nil {
				return "", err
			}
			for part, msgs := range byPartition {
				if err := c.produce(ctx, c.topic, part, msgs...); err != nil {
					return "", err
				}
			}
			return fmt.Sprintf("order %s version 1 after version 2", id), nil
		}},
}

// CorruptionNamed returns the corruption called name.
func CorruptionNamed(name string) (Corruption, bool) {
	for _, c := range Corruptions {
		if c.Name == name {
			return c, true
		}
	}
	return Corruption{}, false
}

// corrupter holds a finished run whose replicas are stopped (nothing
// relays or consumes what it does), and the topic the checker is to read.
type corrupter struct {
	st       *stack
	recs     *Records
	topic    string
	picked   []uuid.UUID // acknowledged orders with versions 1 and 2 on the topic
	versions map[uuid.UUID][]TopicEvent
}

func newCorrupter(st *stack, recs *Records) (*corrupter, error) {
	c := &corrupter{st: st, recs: recs, topic: topic, versions: map[uuid.UUID][]TopicEvent{}}
	for _, e := range recs.Topic {
		c.versions[e.OrderID] = append(c.versions[e.OrderID], e)
	}
	for id, evs := range c.versions {
		if len(evs) >= 2 && evs[0].Version == 1 && evs[1].Version == 2 && evs[0].Partition == evs[1].Partition {
			c.picked = append(c.picked, id)
		}
		if len(c.picked) == 3 {
			break
		}
	}
	if len(c.picked) < 3 {
		return nil, fmt.Errorf("fewer than 3 orders with versions 1 and 2 on the topic (%d orders): nothing to corrupt", len(c.versions))
	}
	return c, nil
}

// pick is the i-th of three orders the corruptions damage, one each.
func (c *corrupter) pick(i int) uuid.UUID { return c.picked[i] }

// recheck reads everything again (the topic the corruptions left to read)
// and checks it with the client's log of the run.
func (c *corrupter) recheck(ctx context.Context) (Verdict, error) {
	again, err := collect(ctx, c.st.kafkaProxy(), c.st.registryURL, c.topic, c.st.ordersURL, c.st.projectionURL)
	if err != nil {
		return Verdict{}, err
	}
	again.Requests = c.recs.Requests
	return Check(again), nil
}

func (c *corrupter) db(ctx context.Context, url, sql string, args ...any) error {
	return withDB(ctx, url, func(conn *pgx.Conn) error {
		tag, err := conn.Exec(ctx, sql, args...)
		if err == nil && tag.RowsAffected() == 0 {
			err = errors.New("changed no row")
		}
		return err
	})
}

// value reads the bytes of the topic record e.
func (c *corrupter) value(ctx context.Context, e TopicEvent) ([]byte, error) {
	conn, err := kafka.DialLeader(ctx, "tcp", c.st.kafkaProxy(), topic, e.Partition)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.Seek(e.Offset, kafka.SeekAbsolute); err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := conn.ReadMessage(10 << 20)
	return m.Value, err
}

// produce writes msgs, in order, to one partition of name.
func (c *corrupter) produce(ctx context.Context, name string, partition int, msgs ...kafka.Message) error {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(c.st.kafkaProxy()), Topic: name, Balancer: fixedPartition(partition),
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: len(msgs), BatchBytes: 64 << 20, Transport: tr}
	defer w.Close()
	return w.WriteMessages(ctx, msgs...)
}

type fixedPartition int

func (p fixedPartition) Balance(kafka.Message, ...int) int { return int(p) }
