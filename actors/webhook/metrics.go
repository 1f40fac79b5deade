package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts deliveries of a node. One Metrics is shared by every
// bridge; bridges are not a label.
type Metrics struct {
	deliveries *prometheus.CounterVec
	responses  *prometheus.CounterVec
	latency    prometheus.Histogram

	// The counters of every outcome and status class, looked up once.
	byOutcome map[Outcome]prometheus.Counter
	byClass   [6]prometheus.Counter // none, 1xx … 5xx at 0 … 5
}

// NewMetrics registers the delivery metrics on reg:
// bridge_forward_deliveries_total{outcome},
// bridge_forward_responses_total{class} and
// bridge_forward_delivery_duration_seconds.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_forward_deliveries_total",
			Help: "Delivery attempts to forward endpoints, by outcome.",
		}, []string{"outcome"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_forward_responses_total",
			Help: "Responses of forward endpoints by status class (none: no response).",
		}, []string{"class"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bridge_forward_delivery_duration_seconds",
			Help:    "Time from sending a delivery to having read its response.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.responses, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register forward metrics: %w", err)
		}
	}
	m.byOutcome = make(map[Outcome]prometheus.Counter, len(Outcomes))
	for _, o := range Outcomes {
		m.byOutcome[o] = m.deliveries.WithLabelValues(string(o))
	}
	for i := range 6 {
		m.byClass[i] = m.responses.WithLabelValues(statusClassOf(i))
	}
	return m, nil
}

func (m *Metrics) observe(r Result) {
	if m == nil {
		return
	}
	if c, ok := m.byOutcome[r.Outcome]; ok {
		c.Inc()
	} else {
		m.deliveries.WithLabelValues(string(r.Outcome)).Inc()
	}
	m.byClass[statusClassIndex(r.Status)].Inc()
	m.latency.Observe(r.Latency.Seconds())
}
