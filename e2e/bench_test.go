package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
)

// cpuTime returns the user plus system CPU time the process pid used so
// far, from /proc/<pid>/stat (Linux).
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	d, err := testkit.CPUTime(pid)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkForwardCPUPerMessage measures the bridge node process's CPU
// time per forwarded message in a burst without crashes: 10 Go XMTP
// senders → the node (a separate process) → a local HTTP echo → the reply
// published back. It reports cpu-ms/msg, the burst's messages per second,
// and the p50 and p99 round trip (from the sender's publish to the
// creation time of the bridge's reply); ns/op is the wall time per
// message.
func BenchmarkForwardCPUPerMessage(b *testing.B) {
	c := newCluster(b, map[string]string{"BRIDGE_LOG_LEVEL": "warn"})
	tg := webhooktest.NewTarget(b, "json")
	_, addr := echoBridge(b, c, tg)
	senders := 10
	per := max(1, (b.N+senders-1)/senders)
	br := newBurst(b, c.xmtpGRPC, addr, senders, per)
	pid := c.node.cmd.Process.Pid
	before := cpuTime(b, pid)
	b.ResetTimer()
	start := time.Now()
	br.start()
	br.wait(5 * time.Minute)
	testkit.WaitFor(b, 5*time.Minute, func() bool { return tg.Texts() >= br.total() }, "every message at the target")
	testkit.WaitFor(b, 5*time.Minute, func() bool {
		r, err := br.replies()
		return err == nil && len(r) >= br.total()
	}, "every reply")
	elapsed := time.Since(start)
	b.StopTimer()
	used := cpuTime(b, pid) - before
	n := float64(br.total())
	b.ReportMetric(float64(used.Microseconds())/1000/n, "cpu-ms/msg")
	b.ReportMetric(n/elapsed.Seconds(), "msgs/s")

	_, replied, err := br.replyTimes()
	if err != nil {
		b.Fatal(err)
	}
	var rtts []time.Duration
	br.sentAt.Range(func(k, v any) bool {
		if r, ok := replied[k.(string)]; ok {
			rtts = append(rtts, max(0, r.Sub(v.(time.Time))))
		}
		return true
	})
	slices.Sort(rtts)
	if len(rtts) > 0 {
		b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(rtts[min(len(rtts)-1, len(rtts)*99/100)].Microseconds())/1000, "p99-ms")
	}
}
