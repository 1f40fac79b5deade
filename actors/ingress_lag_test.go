package actors

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// TestIngressRecordsTheAgeOfWhatItRoutes: every envelope the node
// subscription routes is observed once in bridge_ingress_lag_seconds, at
// an age between nothing and the time since it was sent.
func TestIngressRecordsTheAgeOfWhatItRoutes(t *testing.T) {
	e := newEnv(t)
	at, bt := webhooktest.NewTarget(t, persistence.FormatJSON), webhooktest.NewTarget(t, persistence.FormatJSON)
	noReply := func(f *persistence.ForwardConfig) { f.ReplyMode = persistence.ReplyNone }
	a, asecret := e.bridge(at.URL, persistence.FormatJSON, noReply)
	b, bsecret := e.bridge(bt.URL, persistence.FormatJSON, noReply)
	at.SetSecret(asecret)
	bt.SetSecret(bsecret)
	rt, reg := e.runtime("node-a", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	const n = 5
	for i := range n {
		if _, err := rt.Send(ctx, a.ID, b.Address, content.Text(fmt.Sprintf("lag %d", i))); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	testkit.WaitFor(t, 30*time.Second, func() bool { return len(bt.Contents()) >= n }, "the messages at b's target")
	// The invitation and the messages at least, each once. The two are
	// read one after the other while the ingress may still route a copy
	// of a's own messages: they agree once it is done.
	var routed, sum float64
	var count uint64
	testkit.WaitFor(t, 10*time.Second, func() bool {
		routed = counterValue(t, reg, "bridge_ingress_envelopes_routed_total", nil)
		count, sum = histogram(t, reg, "bridge_ingress_lag_seconds")
		return routed >= n+1 && float64(count) == routed
	}, "bridge_ingress_lag_seconds to count each routed envelope once")
	if sum < 0 || sum > float64(count)*time.Since(start).Seconds() {
		t.Fatalf("bridge_ingress_lag_seconds sums %vs over %d envelopes sent in the last %s", sum, count, time.Since(start))
	}
}

// histogram returns the sample count and sum of the histogram name.
func histogram(t testing.TB, reg *prometheus.Registry, name string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				if h := m.GetHistogram(); h != nil {
					return h.GetSampleCount(), h.GetSampleSum()
				}
			}
		}
	}
	t.Fatalf("no histogram %s", name)
	return 0, 0
}
