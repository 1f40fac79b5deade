package conversation

import "github.com/prometheus/client_golang/prometheus"

// rejectedDesc describes the rejection counters when a Rejections is
// registered as a Prometheus collector.
var rejectedDesc = prometheus.NewDesc(
	"bridge_xmtp_rejected_envelopes_total",
	"XMTP envelopes rejected while opening invitations or messages, by reason.",
	[]string{"reason"}, nil,
)

// Describe implements prometheus.Collector, so a Rejections can be
// registered on the caller's registry.
func (r *Rejections) Describe(ch chan<- *prometheus.Desc) { ch <- rejectedDesc }

// Collect implements prometheus.Collector.
func (r *Rejections) Collect(ch chan<- prometheus.Metric) {
	for reason, n := range r.Snapshot() {
		ch <- prometheus.MustNewConstMetric(rejectedDesc, prometheus.CounterValue, float64(n), reason)
	}
}

var _ prometheus.Collector = (*Rejections)(nil)
