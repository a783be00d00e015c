package projector

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// Metrics are the consumer's Prometheus metrics. One Metrics serves one Consumer.
type Metrics struct {
	events  *prometheus.CounterVec
	retries *prometheus.CounterVec
	dlq     *prometheus.CounterVec
	batch   prometheus.Histogram
	size    prometheus.Histogram
	e2e     prometheus.Histogram
	rejoins *prometheus.CounterVec
	resets  prometheus.Counter
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .02, .03, .05, .075, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Dependencies are the values of consumer_retries_total's dependency label:
// what a retried step waited on.
var Dependencies = []string{DepDatabase, DepRegistry, DepFetch, DepCommit, DepDLQ, DepKafka}

// The dependencies a retry names.
const (
	DepDatabase = "database"
	DepRegistry = "schema registry"
	DepFetch    = "kafka fetch"
	DepCommit   = "kafka commit"
	DepDLQ      = "dead-letter topic"
	DepKafka    = "kafka" // the rebuild's reads of the topic's offsets
)

// NewMetrics registers the consumer's metrics on reg:
//
//	consumer_events_total{outcome}            events by outcome: applied, duplicate, stale, parked, dead_lettered
//	consumer_retries_total{dependency}        transient failures retried: database, schema registry, kafka fetch, kafka commit, dead-letter topic
//	consumer_dlq_published_total{class}       messages published to the dead-letter topic, by error class
//	consumer_batch_duration_seconds           a batch from fetched to committed (decode, apply, DLQ, commit)
//	consumer_batch_size                       messages per batch
//	consumer_end_to_end_latency_seconds       an applied event's occurred_at to its batch committed here
//	consumer_rejoins_total{reason}            readers made anew: topic_appeared, partitions_added, offset_reset
//	consumer_offset_resets_total              partitions whose offset was out of range, reset by CONSUMER_OFFSET_RESET
//
// Every series with a known label value is exported at 0 from the start, as
// Prometheus recommends, so a dashboard or an alert on it has a series before
// the first event: the outcomes, the dependencies a retry names, and
// dlqClasses (the classes the caller's Classifier gives).
func NewMetrics(reg prometheus.Registerer, dlqClasses ...string) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consumer_events_total",
			Help: "Consumed messages by outcome: applied, duplicate, stale (older than the projection), parked (until their predecessor is applied), dead_lettered."}, []string{"outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consumer_retries_total",
			Help: "Transient failures retried with backoff, by dependency."}, []string{"dependency"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consumer_dlq_published_total",
			Help: "Messages published to the dead-letter topic, by error class."}, []string{"class"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "consumer_batch_duration_seconds",
			Help: "A batch from fetched to committed: decode, apply, dead letters, offset commit.", Buckets: latencyBuckets}),
		size: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "consumer_batch_size",
			Help: "Messages per batch.", Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}}),
		e2e: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "consumer_end_to_end_latency_seconds",
			Help: "From an applied event's occurred_at (order-api's clock) to its batch being committed here.", Buckets: latencyBuckets}),
		rejoins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consumer_rejoins_total",
			Help: "Times the consumer made its reader anew to join its group again, by reason: topic_appeared, partitions_added, offset_reset."}, []string{"reason"}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{Name: "consumer_offset_resets_total",
			Help: "Partitions whose offset was out of the partition's range (the topic deleted and created again, or retention), reset by CONSUMER_OFFSET_RESET."}),
	}
	m.events, m.retries, m.dlq = telemetry.Register(reg, m.events), telemetry.Register(reg, m.retries), telemetry.Register(reg, m.dlq)
	m.rejoins, m.resets = telemetry.Register(reg, m.rejoins), telemetry.Register(reg, m.resets)
	for _, r := range rejoinReasons {
		m.rejoins.WithLabelValues(r)
	}
	m.batch, m.size, m.e2e = telemetry.Register(reg, m.batch), telemetry.Register(reg, m.size), telemetry.Register(reg, m.e2e)
	for _, o := range outcomes {
		m.events.WithLabelValues(o)
	}
	for _, d := range Dependencies {
		m.retries.WithLabelValues(d)
	}
	for _, c := range dlqClasses {
		m.dlq.WithLabelValues(c)
	}
	return m
}

// DeadLettered counts a dead letter of class published by another part of
// the consumer (the parked events that leave).
func (m *Metrics) DeadLettered(class string) { m.dlq.WithLabelValues(class).Inc() }

// lagCollector asks the brokers at scrape time, so the lag keeps growing on
// the dashboard while the consumer is stuck, which a lag computed from the
// messages the consumer fetched could not show.
type lagCollector struct {
	offsets offsetReader
	lag     *prometheus.Desc
	log     *slog.Logger
}

// NewLagCollector returns a collector of
//
//	consumer_lag{partition}    the partition's end offset minus group's committed offset
//
// for topic and group, read from the brokers on each scrape (bounded by 3 s;
// on failure the metric is left out of that scrape and the cause logged at
// debug). Before the group's first commit on a partition, the lag counts
// from the partition's earliest offset.
func NewLagCollector(brokers []string, sec *kafkaconn.Security, topic, group string, log *slog.Logger) prometheus.Collector {
	return &lagCollector{
		offsets: newOffsetReader(brokers, sec, topic, group),
		log:     log,
		lag: prometheus.NewDesc("consumer_lag", "Messages in the partition not yet committed by the consumer group.",
			[]string{"partition"}, prometheus.Labels{"topic": topic, "group": group}),
	}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.lag }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), offsetsTimeout)
	defer cancel()
	offs, err := c.offsets.read(ctx)
	if err != nil {
		c.log.Debug("consumer lag not available", "error", err)
		return
	}
	for p, o := range offs {
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(o.lag()), strconv.Itoa(p))
	}
}

// offsetsTimeout bounds one read of a group's offsets.
const offsetsTimeout = 3 * time.Second

// offsetReader reads, from the brokers, where each partition of a topic
// ends and where a group has committed on it.
type offsetReader struct {
	client       *kafka.Client
	topic, group string
}

func newOffsetReader(brokers []string, sec *kafkaconn.Security, topic, group string) offsetReader {
	return offsetReader{client: sec.Client(brokers, offsetsTimeout), topic: topic, group: group}
}

// partitionOffsets are a partition's end offset and the group's committed
// one, or, before the group's first commit there (or with one the
// partition no longer holds), the partition's first.
type partitionOffsets struct {
	end, committed int64
}

// lag is how many messages the group has not committed.
func (o partitionOffsets) lag() int64 { return max(o.end-o.committed, 0) }

func (c offsetReader) read(ctx context.Context) (map[int]partitionOffsets, error) {
	md, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.topic}})
	if err != nil {
		return nil, err
	}
	var parts []int
	for _, t := range md.Topics {
		if t.Name == c.topic {
			if t.Error != nil {
				return nil, t.Error
			}
			for _, p := range t.Partitions {
				parts = append(parts, p.ID)
			}
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", c.topic)
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	offs, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.topic: reqs}})
	if err != nil {
		return nil, err
	}
	committed, err := c.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: c.group, Topics: map[string][]int{c.topic: parts}})
	if err != nil {
		return nil, err
	}
	if committed.Error != nil {
		return nil, committed.Error
	}
	done := map[int]int64{}
	for _, p := range committed.Topics[c.topic] {
		if p.Error == nil {
			done[p.Partition] = p.CommittedOffset
		}
	}
	out := map[int]partitionOffsets{}
	for _, po := range offs.Topics[c.topic] {
		if po.Error != nil {
			continue
		}
		from, ok := done[po.Partition]
		if !ok || from < po.FirstOffset {
			from = po.FirstOffset
		}
		out[po.Partition] = partitionOffsets{end: po.LastOffset, committed: from}
	}
	return out, nil
}
