package actors

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/xmtp/api"
)

// TestMetricsCountSetProofs: the runtime exports the node subscription's
// set proofs published, failed and seen as counters.
func TestMetricsCountSetProofs(t *testing.T) {
	reg := prometheus.NewRegistry()
	counts := api.ProofCounts{Published: 7, Failed: 2, Seen: 5}
	g := runtimeGauges{
		backlog:   func() float64 { return 0 },
		connected: func() float64 { return 1 },
		proofs:    func() api.ProofCounts { return counts },

		catchUpFailing:     func() float64 { return 0 },
		oldestFailingReply: func() float64 { return 0 },
	}
	if _, err := newMetrics(reg, g); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"bridge_ingress_set_proofs_published_total": 7,
		"bridge_ingress_set_proofs_failed_total":    2,
		"bridge_ingress_set_proofs_seen_total":      5,
	} {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, mf := range mfs {
			if mf.GetName() == name {
				found = true
				if got := mf.GetMetric()[0].GetCounter().GetValue(); got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
		}
		if !found {
			t.Errorf("%s not exported", name)
		}
	}
}
