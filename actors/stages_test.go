package actors

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
)

// TestStagesTimeAForwardedMessage: a message forwarded and answered is
// timed once in every stage of bridge_forward_stage_seconds, and its two
// statements in bridge_forward_statement_seconds; the stages add up to no
// more than the round trip took.
func TestStagesTimeAForwardedMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	_, reg := e.runtime("n1", nil)
	began := time.Now()
	conversationStart(t, e, b.Address)
	took := time.Since(began)
	var total float64
	for _, st := range stageNames {
		var n uint64
		testkit.WaitFor(t, 5*time.Second, func() bool {
			n, _ = stageHistogram(t, reg, "bridge_forward_stage_seconds", "stage", st)
			return n >= 1
		}, "stage %s timed", st)
		n, sum := stageHistogram(t, reg, "bridge_forward_stage_seconds", "stage", st)
		if n != 1 {
			t.Fatalf("stage %s timed %d times, want 1", st, n)
		}
		total += sum
	}
	if total <= 0 || total > took.Seconds() {
		t.Fatalf("the stages add up to %.4f s, the round trip took %s", total, took)
	}
	for _, st := range []string{"record", "complete"} {
		if n, _ := stageHistogram(t, reg, "bridge_forward_statement_seconds", "statement", st); n < 1 {
			t.Fatalf("statement %s timed %d times, want at least 1", st, n)
		}
	}
}

// stageHistogram reads the count and sum of the series of histogram name whose
// label is value.
func stageHistogram(t *testing.T, reg *prometheus.Registry, name, label, value string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, map[string]string{label: value}) && m.Histogram != nil {
				return m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum()
			}
		}
	}
	return 0, 0
}
