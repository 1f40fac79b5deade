package supervision

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the supervision strategies of a node do. One Metrics
// is shared by every identity of the node; the identity is logged, never a
// label, because there are too many of them.
type Metrics struct {
	restarts    *prometheus.CounterVec
	quarantined *prometheus.CounterVec
}

// NewMetrics registers the supervision metrics on reg:
// bridge_actor_restarts_total{handler} and
// bridge_actor_quarantined_total{handler}.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_actor_restarts_total",
			Help: "Restarts of failed handler actors, by handler.",
		}, []string{"handler"}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_actor_quarantined_total",
			Help: "Poison messages taken out of a handler's stream after repeated failures, by handler.",
		}, []string{"handler"}),
	}
	// Every handler's series exists from the start, at 0, so the first
	// restart or quarantine shows as an increase.
	for _, h := range []string{"forward", "reverse", "canary"} {
		m.restarts.WithLabelValues(h)
		m.quarantined.WithLabelValues(h)
	}
	for _, c := range []prometheus.Collector{m.restarts, m.quarantined} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register supervision metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) restarted(handler string) {
	if m != nil {
		m.restarts.WithLabelValues(handler).Inc()
	}
}

func (m *Metrics) quarantine(handler string) {
	if m != nil {
		m.quarantined.WithLabelValues(handler).Inc()
	}
}
