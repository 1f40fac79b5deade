package plugin

import "github.com/prometheus/client_golang/prometheus"

// The reasons of bridge_plugin_errors_total.
const (
	ReasonTimeout     = "timeout"
	ReasonMemory      = "memory"
	ReasonTrap        = "trap"
	ReasonOutputLimit = "output_too_large"
	ReasonBadOutput   = "bad_output"
	ReasonUnavailable = "unavailable"
)

var reasons = []string{ReasonTimeout, ReasonMemory, ReasonTrap, ReasonOutputLimit, ReasonBadOutput, ReasonUnavailable}

type metrics struct {
	calls       *prometheus.CounterVec
	errors      *prometheus.CounterVec
	seconds     *prometheus.HistogramVec
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
	resident    prometheus.Gauge
	bindings    prometheus.Gauge

	// The children of calls and seconds for each point, resolved once so
	// that a call does not hash its labels.
	pointCalls   map[Point]prometheus.Counter
	pointSeconds map[Point]prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_plugin_calls_total",
			Help: "Plug-in calls, by extension point."}, []string{"point"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_plugin_errors_total",
			Help: "Plug-in calls that failed, by extension point and reason; the binding's onError was applied."},
			[]string{"point", "reason"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bridge_plugin_call_seconds",
			Help:    "Wall time of a plug-in call, instantiation included.",
			Buckets: []float64{.00001, .00003, .0001, .0003, .001, .003, .01, .03, .1, .3, 1}}, []string{"point"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Name: "bridge_plugin_cache_hits_total",
			Help: "Plug-in calls that found their plug-in compiled and resident."}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "bridge_plugin_cache_misses_total",
			Help: "Plug-in calls that had to load and compile their plug-in (through the on-disk compilation cache)."}),
		resident: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_plugin_resident_instances",
			Help: "Plug-in instances held in memory on this node, idle or running."}),
		bindings: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_plugin_bindings",
			Help: "Plug-in bindings known to this node."}),
	}
	m.pointCalls = map[Point]prometheus.Counter{}
	m.pointSeconds = map[Point]prometheus.Observer{}
	for _, p := range Points {
		m.pointCalls[p] = m.calls.WithLabelValues(string(p))
		m.pointSeconds[p] = m.seconds.WithLabelValues(string(p))
		for _, r := range reasons {
			m.errors.WithLabelValues(string(p), r)
		}
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.errors, m.seconds, m.cacheHits, m.cacheMisses, m.resident, m.bindings)
	}
	return m
}
