package persistence

import (
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector exports the connection pool's statistics, read at scrape
// time.
type poolCollector struct {
	s            *Store
	conns        *prometheus.Desc
	maxConns     *prometheus.Desc
	acquires     *prometheus.Desc
	emptyAcquire *prometheus.Desc
	acquireWait  *prometheus.Desc
	canceled     *prometheus.Desc
}

// Collector returns a Prometheus collector of the store's connection pool:
// connections by state, the pool size, acquisitions, acquisitions that had
// to wait and the time spent acquiring. Register it on the node's registry.
func (s *Store) Collector() prometheus.Collector {
	return &poolCollector{
		s: s,
		conns: prometheus.NewDesc("bridge_persistence_pool_connections",
			"Postgres connections of the pool by state.", []string{"state"}, nil),
		maxConns: prometheus.NewDesc("bridge_persistence_pool_max_connections",
			"Largest number of Postgres connections the pool opens.", nil, nil),
		acquires: prometheus.NewDesc("bridge_persistence_pool_acquires_total",
			"Connections acquired from the pool.", nil, nil),
		emptyAcquire: prometheus.NewDesc("bridge_persistence_pool_empty_acquires_total",
			"Acquisitions that waited because no connection was idle.", nil, nil),
		acquireWait: prometheus.NewDesc("bridge_persistence_pool_acquire_seconds_total",
			"Total time spent acquiring connections.", nil, nil),
		canceled: prometheus.NewDesc("bridge_persistence_pool_canceled_acquires_total",
			"Acquisitions canceled by their context.", nil, nil),
	}
}

// Describe sends the descriptors of the pool metrics.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.maxConns, c.acquires, c.emptyAcquire, c.acquireWait, c.canceled} {
		ch <- d
	}
}

// Collect reads the pool statistics.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.ConstructingConns()), "constructing")
	ch <- prometheus.MustNewConstMetric(c.maxConns, prometheus.GaugeValue, float64(st.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(st.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.emptyAcquire, prometheus.CounterValue, float64(st.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.acquireWait, prometheus.CounterValue, st.AcquireDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(c.canceled, prometheus.CounterValue, float64(st.CanceledAcquireCount()))
}
