package e2e

import (
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
)

// TestClusterForcedDoubleActivation makes two nodes that both believe they
// own the same identities: node A, alone in cluster "cluster-a", hosts 8
// bridges with 6 s leases and is paused with SIGSTOP, so it still thinks
// they are its own. Node B, alone in cluster "cluster-b" on the same
// database and XMTP node, takes them over once A's leases expire, and
// answers. Then A continues (SIGCONT) with its old activations while B
// holds the leases, so for a moment both have the identities active and
// both receive their envelopes, and more messages arrive. Every message
// still gets exactly one XMTP reply; A counts fenced writes (its lease
// renewals and any write it tried are refused) and stale activations, and
// ends up hosting none of the bridges.
func TestClusterForcedDoubleActivation(t *testing.T) {
	t.Parallel()
	c := newBridgeCluster(t, clusterOpts{provider: "automanaged", nodes: 1, name: "cluster-a",
		tune: map[string]string{"BRIDGE_LEASE_TTL": "6s"}})
	a := c.nodes[0]
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	bridges := c.createBridges(tg, 8)
	c.waitPlaced(a, bridges, []*clusterNode{a}, time.Minute)
	c.waitHostedTotal(a, bridges, []*clusterNode{a}, time.Minute)
	pool := newXMTPPool(t, c, bridges, 4)
	pool.waitAnswered(pool.round("on-a"), 2*time.Minute, "a first message to every bridge on A")
	fenced0, _ := a.metricSum("bridge_cluster_fenced_writes_total")
	stale0, _ := a.metricSum("bridge_actor_stale_activations_total")

	a.pause()
	paused := time.Now()
	b := c.newNode("c-node-b", map[string]string{"BRIDGE_CLUSTER_NAME": "cluster-b"})
	b.launch()
	b.waitReady(90 * time.Second)
	testkit.WaitFor(t, time.Minute, func() bool {
		leases := c.leases()
		for _, br := range bridges {
			l := leases[br.ID]
			if _, node := memberOfOwner(l.Owner); !l.Live || node != b.id {
				return false
			}
		}
		return true
	}, "B to hold a live lease on every bridge")
	c.waitPlaced(b, bridges, []*clusterNode{b}, time.Minute)
	t.Logf("B took the leases over %s after A was paused", time.Since(paused).Round(time.Millisecond))
	pool.waitAnswered(pool.round("a-paused"), 2*time.Minute, "a message to every bridge while A is paused")

	a.resume()
	pool.waitAnswered(pool.round("both-awake"), 2*time.Minute, "a message to every bridge right after A continued")
	var fenced, stale float64
	testkit.WaitFor(t, time.Minute, func() bool {
		fenced, _ = a.metricSum("bridge_cluster_fenced_writes_total")
		stale, _ = a.metricSum("bridge_actor_stale_activations_total")
		return fenced > fenced0 && stale > stale0 && a.hosted() == 0
	}, "A to count fenced writes and stale activations and host none of the bridges")
	t.Logf("A after SIGCONT: bridge_cluster_fenced_writes_total %v (was %v), bridge_actor_stale_activations_total %v (was %v)",
		fenced, fenced0, stale, stale0)
	if !a.alive() {
		t.Fatalf("A exited after it lost its leases: %v", a.proc.err)
	}
	c.waitHostedTotal(b, bridges, []*clusterNode{b}, time.Minute)
	pool.waitAnswered(pool.round("after"), 2*time.Minute, "a message to every bridge once A gave up")
	if h := a.hosted(); h != 0 {
		t.Fatalf("A hosts %d identities again, want 0: B holds their leases", h)
	}
	pool.checkNothingLost(tg, 2*time.Minute)
}
