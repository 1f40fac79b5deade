package prober

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the canary prober's metrics.
type Metrics struct {
	sent        prometheus.Counter
	rtt         prometheus.Histogram
	failures    *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
}

// NewMetrics registers the prober's metrics on reg:
// bridge_canary_sent_total, bridge_canary_rtt_seconds,
// bridge_canary_failures_total{reason} (send, timeout) and
// bridge_canary_last_success_timestamp_seconds{bridge}.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_canary_sent_total",
			Help: "Canary messages the prober published.",
		}),
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bridge_canary_rtt_seconds",
			Help:    "Round-trip time of a canary: XMTP to the bridge, its /canary call, and the reply back.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_canary_failures_total",
			Help: "Canaries that failed, by reason: send (could not publish) or timeout (no reply in time).",
		}, []string{"reason"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bridge_canary_last_success_timestamp_seconds",
			Help: "Unix time of the last canary round trip that succeeded, per bridge.",
		}, []string{"bridge"}),
	}
	for _, c := range []prometheus.Collector{m.sent, m.rtt, m.failures, m.lastSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register canary metrics: %w", err)
		}
	}
	// Both reasons exist from the start, so rate() sees the first failure.
	m.failures.WithLabelValues("send")
	m.failures.WithLabelValues("timeout")
	return m, nil
}
