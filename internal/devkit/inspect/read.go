package inspect

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/platform/kafkalog"
)

// Bounds on what one page reads: it is for a playground, and a topic or a
// registry that answers with more is cut, and says so.
const (
	maxScan       = 20000   // messages read per partition when looking for one order's events
	maxSubjects   = 100     // subjects listed
	maxRegistry   = 1 << 20 // bytes of one registry answer
	maxHeaderText = 200     // characters of one header's value shown
)

type partitionView struct {
	Partition             int
	First, Next, Messages int64
}

type topicView struct {
	Name       string
	Partitions []partitionView
	Messages   int64
}

// topics reads each topic's partitions and their first and next offsets.
func (p *Page) topics(ctx context.Context) ([]topicView, error) {
	var out []topicView
	for _, name := range []string{p.cfg.Topic, p.cfg.DLQTopic} {
		bounds, err := kafkalog.Offsets(ctx, p.kafka, name)
		if err != nil {
			return out, err
		}
		t := topicView{Name: name}
		for _, b := range bounds {
			t.Partitions = append(t.Partitions, partitionView{Partition: b.Partition, First: b.First, Next: b.Next, Messages: b.Next - b.First})
			t.Messages += b.Next - b.First
		}
		out = append(out, t)
	}
	return out, nil
}

type lagPartition struct {
	Partition int
	Committed string // "none" before the group's first commit there
	End, Lag  int64
}

type lagView struct {
	Partitions []lagPartition
	Total      int64
}

// lag is the group's lag on the topic, by partition: the partition's end
// less the group's committed offset (its first offset when the group has
// committed none there, or one the partition no longer holds). It fetches
// the committed offsets as any admin client does, without joining the
// group.
func (p *Page) lag(ctx context.Context) (lagView, error) {
	var v lagView
	bounds, err := kafkalog.Offsets(ctx, p.kafka, p.cfg.Topic)
	if err != nil {
		return v, err
	}
	parts := make([]int, len(bounds))
	for i, b := range bounds {
		parts[i] = b.Partition
	}
	resp, err := p.kafka.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: p.cfg.Group, Topics: map[string][]int{p.cfg.Topic: parts}})
	if err != nil {
		return v, fmt.Errorf("committed offsets of %s: %w", p.cfg.Group, err)
	}
	if resp.Error != nil {
		return v, fmt.Errorf("committed offsets of %s: %w", p.cfg.Group, resp.Error)
	}
	committed := map[int]int64{}
	for _, po := range resp.Topics[p.cfg.Topic] {
		if po.Error == nil && po.CommittedOffset >= 0 {
			committed[po.Partition] = po.CommittedOffset
		}
	}
	for _, b := range bounds {
		lp := lagPartition{Partition: b.Partition, End: b.Next, Committed: "none"}
		from := b.First
		if c, ok := committed[b.Partition]; ok {
			lp.Committed = fmt.Sprint(c)
			from = max(c, b.First)
		}
		lp.Lag = max(b.Next-from, 0)
		v.Total += lp.Lag
		v.Partitions = append(v.Partitions, lp)
	}
	return v, nil
}

type subjectView struct {
	Name          string
	Versions      []int
	Compatibility string
	Inherited     bool // the global level: the subject sets none
}

type registryView struct {
	Global   string
	Subjects []subjectView
	Cut      bool // more subjects than maxSubjects
}

// registry reads the subjects, their versions and compatibility levels over
// the registry's REST API.
func (p *Page) registry(ctx context.Context) (registryView, error) {
	var v registryView
	var global struct {
		Level string `json:"compatibilityLevel"`
	}
	if _, err := p.get(ctx, "/config", &global); err != nil {
		return v, err
	}
	v.Global = global.Level
	var subjects []string
	if _, err := p.get(ctx, "/subjects", &subjects); err != nil {
		return v, err
	}
	sort.Strings(subjects)
	if len(subjects) > maxSubjects {
		subjects, v.Cut = subjects[:maxSubjects], true
	}
	for _, s := range subjects {
		sv := subjectView{Name: s}
		if _, err := p.get(ctx, "/subjects/"+url.PathEscape(s)+"/versions", &sv.Versions); err != nil {
			return v, err
		}
		var level struct {
			Level string `json:"compatibilityLevel"`
		}
		found, err := p.get(ctx, "/config/"+url.PathEscape(s), &level)
		if err != nil {
			return v, err
		}
		sv.Compatibility, sv.Inherited = level.Level, !found
		if !found {
			sv.Compatibility = v.Global
		}
		v.Subjects = append(v.Subjects, sv)
	}
	return v, nil
}

// get decodes the registry's answer to GET path into out; a 404 is
// found=false, not an error.
func (p *Page) get(ctx context.Context, path string, out any) (found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(p.cfg.RegistryURL, "/")+path, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json")
	switch a := p.cfg.RegistryAuth; {
	case a.BasicAuthUserInfo != "":
		user, pass, _ := strings.Cut(a.BasicAuthUserInfo, ":")
		req.SetBasicAuth(user, pass)
	case a.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+a.BearerToken)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("registry GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRegistry+1))
	if err != nil {
		return false, fmt.Errorf("registry GET %s: %w", path, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("registry GET %s: %s", path, resp.Status)
	}
	if len(body) > maxRegistry {
		return false, fmt.Errorf("registry GET %s: answer over %d bytes", path, maxRegistry)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return false, fmt.Errorf("registry GET %s: %w", path, err)
	}
	return true, nil
}

// eventView is a message of the events' topic, decoded if it decodes.
type eventView struct {
	Partition int
	Offset    int64
	Time      time.Time
	Key       string
	Type      string
	OrderID   string
	Version   int64
	Status    string
	Headers   []string // key=value
	Error     string   // why it does not decode: its class and message
}

// latest returns the newest messages of topic, at most n, newest first,
// that keep accepts, read from the last scan offsets of each partition.
func (p *Page) latest(ctx context.Context, topic string, n int, scan int64, keep func(kafka.Message) bool) ([]kafka.Message, error) {
	bounds, err := kafkalog.Offsets(ctx, p.kafka, topic)
	if err != nil {
		return nil, err
	}
	var out []kafka.Message
	for _, b := range bounds {
		err := kafkalog.Range(ctx, p.kafka, topic, b.Partition, max(b.First, b.Next-scan), b.Next, func(m kafka.Message) error {
			if keep(m) {
				out = append(out, m)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset > out[j].Offset
	})
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// events returns the latest events of the topic, decoded; with an order ID,
// only that order's (its key).
func (p *Page) events(ctx context.Context, orderID string) ([]eventView, error) {
	scan, keep := int64(p.cfg.Latest), func(kafka.Message) bool { return true }
	if orderID != "" {
		scan, keep = maxScan, func(m kafka.Message) bool { return string(m.Key) == orderID }
	}
	msgs, err := p.latest(ctx, p.cfg.Topic, p.cfg.Latest, scan, keep)
	if err != nil {
		return nil, err
	}
	out := make([]eventView, 0, len(msgs))
	for _, m := range msgs {
		ev := eventView{Partition: m.Partition, Offset: m.Offset, Time: m.Time.UTC(), Key: printable(m.Key, maxHeaderText)}
		for _, h := range m.Headers {
			ev.Headers = append(ev.Headers, h.Key+"="+printable(h.Value, maxHeaderText))
		}
		e, err := p.decoder.Decode(ctx, m.Value)
		if err != nil {
			if ctx.Err() != nil {
				return out, err
			}
			class, _ := eventcodec.Class(err)
			if class == "" {
				class = "not decoded"
			}
			ev.Error = class + ": " + err.Error()
		} else {
			ev.Type, ev.OrderID, ev.Version, ev.Status = string(e.Type), e.Order.ID.String(), e.Order.Version, string(e.Order.Status)
		}
		out = append(out, ev)
	}
	return out, nil
}

// letterView is a dead letter and the command that replays it alone.
type letterView struct {
	deadletter.Entry
	Replay string
}

// letters returns the latest dead letters, newest first; with a key, only
// that key's.
func (p *Page) letters(ctx context.Context, key string) ([]letterView, error) {
	scan, keep := int64(p.cfg.Latest), func(kafka.Message) bool { return true }
	if key != "" {
		scan, keep = maxScan, func(m kafka.Message) bool { return string(m.Key) == key }
	}
	msgs, err := p.latest(ctx, p.cfg.DLQTopic, p.cfg.Latest, scan, keep)
	if err != nil {
		return nil, err
	}
	out := make([]letterView, 0, len(msgs))
	for _, m := range msgs {
		e := deadletter.EntryOf(m)
		e.Key = printable(m.Key, maxHeaderText)
		out = append(out, letterView{Entry: e,
			Replay: fmt.Sprintf("order-consumer dlq replay -partition %d -from %d -to %d", m.Partition, m.Offset, m.Offset)})
	}
	return out, nil
}

// printable is b as text if it is UTF-8, else in hex, cut to n characters.
func printable(b []byte, n int) string {
	s := string(b)
	if !utf8.Valid(b) {
		s = fmt.Sprintf("0x%x", b)
	}
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}

// table is the rows of one query, every value as text.
type table struct {
	Columns []string
	Rows    [][]string
	Error   string
}

// query runs sql on pool and returns its rows as text; an error is kept in
// the table, so that one missing table does not hide the others.
func query(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) table {
	var t table
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		t.Error = err.Error()
		return t
	}
	defer rows.Close()
	for _, f := range rows.FieldDescriptions() {
		t.Columns = append(t.Columns, f.Name)
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Error = err.Error()
			return t
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = text(v)
		}
		t.Rows = append(t.Rows, row)
	}
	if err := rows.Err(); err != nil {
		t.Error = err.Error()
	}
	return t
}

// text is a column's value as the page shows it.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return printable(v, 1000)
	case [16]byte:
		return uuid.UUID(v).String()
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case driver.Valuer: // pgtype.Numeric and the like: their SQL text
		if dv, err := v.Value(); err == nil {
			return text(dv)
		}
	case map[string]any, []any:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
	return fmt.Sprint(v)
}

// One order's rows, in each service's database. Payloads are left out: the
// topic's section shows the events decoded.
const (
	apiStateSQL = `SELECT id, status, version, customer_id, currency, total_minor, items, payment_reference,
    cancel_reason, refund_reason, created_at, updated_at FROM orders WHERE id = $1`
	outboxSQL = `SELECT 'pending' AS state, id, event_id, schema_version, headers, created_at, NULL::timestamptz AS published_at, '' AS reason
    FROM outbox WHERE message_key = $1
UNION ALL SELECT 'published', id, event_id, schema_version, headers, created_at, published_at, ''
    FROM outbox_published WHERE message_key = $1
UNION ALL SELECT 'set aside', id, event_id, schema_version, headers, created_at, NULL, reason
    FROM outbox_set_aside WHERE message_key = $1
ORDER BY id`
	projectionSQL = `SELECT id, status, version, customer_id, currency, total_minor, last_event_id, last_event_at,
    projected_at FROM order_projection WHERE id = $1`
	ledgerSQL = `SELECT event_id, version, event_type, outcome, deliveries, applied_at
    FROM processed_events WHERE order_id = $1 ORDER BY version, applied_at`
	parkedSQL = `SELECT event_id, version, topic, partition, "offset", parked_at, leaving, leaving_reason
    FROM parked_events WHERE order_id = $1 ORDER BY version`
	customerSQL = `SELECT customer_id, status, currency, orders, total_minor FROM customer_orders
    WHERE customer_id = (SELECT customer_id FROM order_projection WHERE id = $1) ORDER BY status, currency`
)

// trailView is one order everywhere it is.
type trailView struct {
	Config
	ID, Error                                          string
	API, Outbox, Projection, Ledger, Parked, Customers table
	Events                                             []eventView
	EventsError                                        string
	Letters                                            []letterView
	LettersError                                       string
	Now                                                time.Time
}

func (p *Page) readTrail(ctx context.Context, id uuid.UUID) trailView {
	v := trailView{Config: p.cfg, ID: id.String(), Now: time.Now().UTC()}
	v.API = query(ctx, p.orders, apiStateSQL, id)
	v.Outbox = query(ctx, p.orders, outboxSQL, []byte(id.String()))
	v.Projection = query(ctx, p.projection, projectionSQL, id)
	v.Ledger = query(ctx, p.projection, ledgerSQL, id)
	v.Parked = query(ctx, p.projection, parkedSQL, id)
	v.Customers = query(ctx, p.projection, customerSQL, id)
	var err error
	if v.Events, err = p.events(ctx, id.String()); err != nil {
		v.EventsError = err.Error()
	}
	slices.Reverse(v.Events) // the trail reads oldest first
	if v.Letters, err = p.letters(ctx, id.String()); err != nil {
		v.LettersError = err.Error()
	}
	if len(v.API.Rows) == 0 && v.API.Error == "" && len(v.Events) == 0 && len(v.Projection.Rows) == 0 {
		v.Error = "no trace of this order: not in order-api's database, not on the topic, not in the projection"
	}
	return v
}
