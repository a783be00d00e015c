package outbox

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// Metrics are the relay's Prometheus metrics. One Metrics serves one relay.
type Metrics struct {
	leader    prometheus.Gauge
	published prometheus.Counter
	batchSize prometheus.Histogram
	write     prometheus.Histogram
	latency   prometheus.Histogram
	failures  *prometheus.CounterVec
}

// NewMetrics registers the relay's metrics on reg:
//
//	outbox_relay_leader                    1 while this relay holds the lock and publishes
//	outbox_published_events_total          events acknowledged by Kafka (acks=all)
//	outbox_batch_size                      events per Kafka write
//	outbox_write_duration_seconds          one Kafka write, sent to acknowledged (acks=all)
//	outbox_publish_latency_seconds         an event's outbox row written to acknowledged by Kafka
//	outbox_step_failures_total{step}       failed attempts ("read outbox", "frame", "write to Kafka", "set aside"), each retried
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.001, .0025, .005, .01, .02, .03, .05, .075, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &Metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_leader",
			Help: "1 while this relay holds the advisory lock and publishes, 0 on a standby."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "outbox_published_events_total",
			Help: "Outbox events acknowledged by Kafka (acks=all)."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "outbox_batch_size",
			Help: "Events per Kafka write.", Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}}),
		write: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "outbox_write_duration_seconds",
			Help: "One Kafka write of a batch, from send to acknowledgement.", Buckets: buckets}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "outbox_publish_latency_seconds",
			Help: "From an event's outbox row being written to its acknowledgement by Kafka.", Buckets: buckets}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outbox_step_failures_total",
			Help: "Failed attempts of a relay step; each is retried with backoff."}, []string{"step"}),
	}
	m.leader, m.published, m.batchSize = telemetry.Register(reg, m.leader), telemetry.Register(reg, m.published), telemetry.Register(reg, m.batchSize)
	m.write, m.latency, m.failures = telemetry.Register(reg, m.write), telemetry.Register(reg, m.latency), telemetry.Register(reg, m.failures)
	for _, step := range []string{stepRead, stepFrame, stepWrite, stepSetAside} {
		m.failures.WithLabelValues(step) // at 0 from start-up, so an alert on it has a series
	}
	return m
}

// The relay's steps, the values of outbox_step_failures_total's step label.
const (
	stepRead     = "read outbox"
	stepFrame    = "frame"
	stepWrite    = "write to Kafka"
	stepSetAside = "set aside" // moving a row Kafka refused to outbox_set_aside
)

// backlogCollector reads the backlog and the rows set aside from the
// database at scrape time, so every replica — leader, standby or API-only —
// reports the same truth.
type backlogCollector struct {
	pool                  *pgxpool.Pool
	backlog, age          *prometheus.Desc
	setAside, setAsideAge *prometheus.Desc
	scrapeTimeout         time.Duration
}

// NewBacklogCollector returns a collector of
//
//	outbox_backlog                               unpublished outbox rows
//	outbox_oldest_unpublished_age_seconds        age of the oldest of them (0 when none)
//	outbox_set_aside                             rows set aside (outbox_set_aside): Kafka refused them, or an earlier row of their order
//	outbox_oldest_set_aside_age_seconds          how long the oldest of them has been set aside (0 when none)
//
// queried from pool on each scrape (one query, bounded by 2 s; on failure
// the metrics are left out of that scrape).
func NewBacklogCollector(pool *pgxpool.Pool) prometheus.Collector {
	return &backlogCollector{
		pool:    pool,
		backlog: prometheus.NewDesc("outbox_backlog", "Outbox rows not yet published.", nil, nil),
		age:     prometheus.NewDesc("outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished outbox row; 0 when there is none.", nil, nil),
		setAside: prometheus.NewDesc("outbox_set_aside",
			"Outbox rows set aside, unpublished until `order-api outbox retry`: Kafka refused them, or an earlier row of their order.", nil, nil),
		setAsideAge: prometheus.NewDesc("outbox_oldest_set_aside_age_seconds",
			"How long the oldest row set aside has been; 0 when there is none.", nil, nil),
		scrapeTimeout: 2 * time.Second,
	}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.age
	ch <- c.setAside
	ch <- c.setAsideAge
}

const backlogSQL = `
SELECT o.n, COALESCE(EXTRACT(EPOCH FROM now() - o.oldest), 0)::float8,
       s.n, COALESCE(EXTRACT(EPOCH FROM now() - s.oldest), 0)::float8
FROM (SELECT count(*) AS n, min(created_at) AS oldest FROM outbox) o,
     (SELECT count(*) AS n, min(set_aside_at) AS oldest FROM outbox_set_aside) s`

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.scrapeTimeout)
	defer cancel()
	var (
		n, set      int64
		age, setAge float64
	)
	if err := c.pool.QueryRow(ctx, backlogSQL).Scan(&n, &age, &set, &setAge); err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, max(age, 0))
	ch <- prometheus.MustNewConstMetric(c.setAside, prometheus.GaugeValue, float64(set))
	ch <- prometheus.MustNewConstMetric(c.setAsideAge, prometheus.GaugeValue, max(setAge, 0))
}
