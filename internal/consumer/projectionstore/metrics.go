package projectionstore

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// Metrics are the read models' Prometheus metrics:
//
//	consumer_read_model_events_total{read_model}    applied events written to the read model (committed)
//	consumer_read_model_failures_total{read_model}  batches that failed in the read model's statements
//
// A nil *Metrics records nothing (a rebuild's store).
type Metrics struct {
	events, failures *prometheus.CounterVec
}

// NewMetrics registers the read models' metrics on reg, with a series at 0
// for each of models from the start.
func NewMetrics(reg prometheus.Registerer, models ...ReadModel) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consumer_read_model_events_total",
			Help: "Applied events written to each read model, counted once their batch committed."}, []string{"read_model"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consumer_read_model_failures_total",
			Help: "Batches that failed in a read model's statements (retried if transient, applied one by one if permanent)."}, []string{"read_model"}),
	}
	m.events, m.failures = telemetry.Register(reg, m.events), telemetry.Register(reg, m.failures)
	for _, rm := range models {
		m.events.WithLabelValues(rm.Name())
		m.failures.WithLabelValues(rm.Name())
	}
	return m
}

func (m *Metrics) applied(models []ReadModel, n int) {
	if m == nil || n == 0 {
		return
	}
	for _, rm := range models {
		m.events.WithLabelValues(rm.Name()).Add(float64(n))
	}
}

func (m *Metrics) failed(model string) {
	if m != nil {
		m.failures.WithLabelValues(model).Inc()
	}
}
