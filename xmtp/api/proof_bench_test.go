package api

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

// BenchmarkSetProofEnvelopes counts the proof envelopes a subscription
// stores in the node (none: proof topics are ephemeral) and the sets it
// sends for 3,000 topics added 5 ms apart (with
// BRIDGE_MEASURE_REMOVE set, a removal after every tenth) and reports
// them with the sets sent: a figure, not a speed, so it runs once
// whatever -benchtime asks.
func BenchmarkSetProofEnvelopes(b *testing.B) {
	t := b
	db := testDatabase(t)
	n := startNode(t, db, "", false)
	c := dial(t, n.GRPCAddr(), WithSetProofs(nil))
	ctx := testkit.Context(t, 120*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	_ = collect(sub)
	testkit.WaitFor(t, 20*time.Second, func() bool { sub.Add(topic("measure-warm")); return sub.Connected() }, "connected")
	for i := range 3000 {
		sub.Add(topic(fmt.Sprintf("measure-%04d", i)))
		if os.Getenv("BRIDGE_MEASURE_REMOVE") != "" && i%10 == 9 {
			time.Sleep(60 * time.Millisecond)
			sub.Remove(topic(fmt.Sprintf("measure-%04d", i)))
			time.Sleep(60 * time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond)
	}
	testkit.WaitFor(t, 60*time.Second, func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return len(sub.holds) == 0
	}, "every hold ended")
	time.Sleep(time.Second)
	stored := storedProofs(t, db)
	sub.mu.Lock()
	var sets uint64
	for _, st := range sub.streams {
		sets += st.sets
	}
	sub.mu.Unlock()
	t.Logf("streams %d, sets %d, stored proof envelopes %d, proofs sent %d (%d of them again) failed %d seen %d, catch-up pages %d",
		len(sub.streams), sets, stored, sub.proofsSent.Load(), sub.proofsRepeated.Load(), sub.proofsFailed.Load(), sub.proofsSeen.Load(), sub.pages.Load())
	b.ReportMetric(float64(sets), "sets")
	b.ReportMetric(float64(stored), "stored-proofs")
	b.ReportMetric(float64(stored)/float64(max(sets, 1)), "stored-proofs/set")
	b.ReportMetric(float64(sub.proofsSent.Load())/float64(max(sets, 1)), "proof-publishes/set")
}
