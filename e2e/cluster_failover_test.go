package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
)

// killTimes is what one kill -9 of a node measured.
type killTimes struct {
	detect time.Duration // kill -> the member gone from every survivor's members view
	placed time.Duration // kill -> the placement puts every bridge on a survivor
	rehome time.Duration // kill -> a message sent to every bridge after placement answered
	moved  int           // bridges the dead node held
}

// killAndRehome kills victim with SIGKILL and measures how long the
// survivors take to notice and to bring every bridge back: the placement
// of every survivor shows each bridge on a survivor with a newer lease
// epoch than the dead node's, the survivors' hosted gauges add up to the
// bridges, and a message then sent to each bridge gets a reply.
func (c *bridgeCluster) killAndRehome(pool *xmtpPool, bridges []clusterBridge, victim *clusterNode) killTimes {
	t := c.t
	t.Helper()
	survivors := except(c.live(), victim)
	before := c.waitPlaced(survivors[0], bridges, c.live(), time.Minute)
	kt := killTimes{moved: before.perNode[victim.id]}
	if kt.moved == 0 {
		t.Fatalf("%s hosts no bridge before the kill (placement %v): nothing to move", victim.id, before.perNode)
	}
	kill := time.Now()
	victim.kill9()
	kt.detect = c.waitMemberGone(victim, survivors, time.Minute).Sub(kill)
	var after placementCheck
	for _, n := range survivors {
		after = c.waitPlaced(n, bridges, survivors, 2*time.Minute)
	}
	kt.placed = time.Since(kill)
	for id, r := range before.byBridge {
		if r.Node != victim.id {
			continue
		}
		if nr := after.byBridge[id]; nr.Epoch <= r.Epoch {
			t.Errorf("bridge %s moved from %s (epoch %d) to %s with epoch %d, want a higher epoch", id, r.Node, r.Epoch, nr.Node, nr.Epoch)
		}
	}
	last := pool.waitAnswered(pool.round("probe"), 2*time.Minute, "a message to every bridge after the kill of "+victim.id)
	kt.rehome = last.Sub(kill)
	c.waitHostedTotal(survivors[0], bridges, survivors, time.Minute)
	return kt
}

// waitRejoined restarts victim with its id and ports and waits until it is
// a member again and hosts some of the bridges, each bridge once; it
// returns when the restart began and the hosted counts.
func (c *bridgeCluster) waitRejoined(bridges []clusterBridge, victim *clusterNode) (time.Time, map[string]int) {
	t := c.t
	t.Helper()
	began := time.Now()
	victim.restart()
	nodes := c.live()
	c.waitMembers(nodes, time.Minute)
	var why string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		why = ""
		for _, n := range nodes {
			pc, err := checkPlacement(n, bridges, nodes)
			switch {
			case err != nil:
				why = err.Error()
			case len(pc.problems) > 0:
				why = strings.Join(firstN(pc.problems, 3), "; ")
			case pc.perNode[victim.id] == 0:
				why = fmt.Sprintf("%s sees no bridge on %s: %v", n.id, victim.id, pc.perNode)
			}
			if why != "" {
				break
			}
		}
		if why == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not take bridges back within 2m of its restart: %s", victim.id, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
	hosted := c.waitHostedTotal(nodes[0], bridges, nodes, time.Minute)
	if hosted[victim.id] == 0 {
		t.Fatalf("%s is in the placement but hosts no identity: %v", victim.id, hosted)
	}
	return began, hosted
}

// TestClusterKill9 kills one of 3 nodes with SIGKILL while Go XMTP senders
// keep messaging all 60 bridges, once with the etcd provider and once with
// the automanaged one. It logs the detection time (kill -> the member gone
// from the survivors' view) and the rehome time (kill -> every bridge
// placed on a survivor and answering a fresh message). Every message sent
// during the whole test reaches its bridge's target at least once and gets
// exactly one XMTP reply.
//
// With etcd the test then restarts the killed node with the same id and
// ports, which is the restart-rebalance proof: the node rejoins, takes a
// share of the bridges back (each bridge still on exactly one node) while
// the senders keep sending, and nothing is lost or answered twice.
func TestClusterKill9(t *testing.T) {
	t.Parallel()
	for _, provider := range []string{"etcd", "automanaged"} {
		t.Run(provider, func(t *testing.T) {
			t.Parallel()
			runKill9(t, provider, provider == "etcd")
		})
	}
}

func runKill9(t *testing.T, provider string, restart bool) {
	c := newBridgeCluster(t, clusterOpts{provider: provider, nodes: 3})
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	bridges := c.createBridges(tg, 60)
	c.waitPlaced(c.nodes[0], bridges, c.nodes, time.Minute)
	c.waitHostedTotal(c.nodes[0], bridges, c.nodes, time.Minute)
	pool := newXMTPPool(t, c, bridges, 6)
	pool.waitAnswered(pool.round("warm"), 2*time.Minute, "a first message to every bridge")
	warm := pool.sentCount()
	pool.startContinuous(250 * time.Millisecond)
	// The kill lands mid-stream: every sender has sent a few messages.
	testkit.WaitFor(t, time.Minute, func() bool { return pool.sentCount() >= warm+3*len(pool.senders) }, "the continuous senders under way")

	victim := c.nodes[2]
	sentBefore := pool.sentCount()
	kt := c.killAndRehome(pool, bridges, victim)
	t.Logf("%s: kill -9 of %s (%d of %d bridges, %d messages sent before): detection %s, placement %s, rehome %s",
		provider, victim.id, kt.moved, len(bridges), sentBefore, kt.detect.Round(time.Millisecond),
		kt.placed.Round(time.Millisecond), kt.rehome.Round(time.Millisecond))
	// The dead node never released its leases: the survivors took them
	// over once they expired, and say so.
	if n := takeovers(t, except(c.live(), victim)); n < 1 {
		t.Errorf("%s: the survivors count %v lease takeovers after the kill -9 of %s, want at least 1", provider, n, victim.id)
	}

	if restart {
		began, hosted := c.waitRejoined(bridges, victim)
		settled := time.Since(began)
		last := pool.waitAnswered(pool.round("rejoined"), 2*time.Minute, "a message to every bridge after the rejoin")
		t.Logf("%s: %s restarted and rejoined; hosting %v settled %s after the restart, every bridge answering %s after it",
			provider, victim.id, hosted, settled.Round(time.Millisecond), last.Sub(began).Round(time.Millisecond))
	}
	pool.stop()
	pool.checkNothingLost(tg, 2*time.Minute)
}

// TestClusterDrainAndSIGTERM drains one of 3 etcd nodes through another
// node while Go XMTP senders keep sending: the drain answers once the
// node stopped its identities and left, after which it hosts none, its
// /readyz is red and the placement shows no bridge on it; SIGTERM then
// ends it with status 0. A second node is stopped with SIGTERM alone, a
// graceful stop without a drain call: it exits 0 and the last node takes
// everything over. No message is lost or answered twice.
//
// Both hand-overs are graceful: the leaving node releases every lease, so
// no survivor counts a lease takeover, and every bridge answers on its new
// node well within the lease TTL (30s here), which a lease that had to
// expire first could not.
func TestClusterDrainAndSIGTERM(t *testing.T) {
	t.Parallel()
	const ttl = 30 * time.Second
	c := newBridgeCluster(t, clusterOpts{provider: "etcd", nodes: 3, tune: map[string]string{"BRIDGE_LEASE_TTL": ttl.String()}})
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	bridges := c.createBridges(tg, 30)
	c.waitPlaced(c.nodes[0], bridges, c.nodes, time.Minute)
	c.waitHostedTotal(c.nodes[0], bridges, c.nodes, time.Minute)
	pool := newXMTPPool(t, c, bridges, 5)
	pool.waitAnswered(pool.round("warm"), 2*time.Minute, "a first message to every bridge")
	pool.startContinuous(250 * time.Millisecond)

	if status, out := drain(t, c.nodes[0], "no-such-node"); status != 404 {
		t.Fatalf("drain of an unknown node: status %d, want 404: %v", status, out)
	}

	drained, via := c.nodes[2], c.nodes[0]
	before := c.waitPlaced(via, bridges, c.nodes, time.Minute)
	if before.perNode[drained.id] == 0 {
		t.Fatalf("%s hosts no bridge before the drain (placement %v)", drained.id, before.perNode)
	}
	began := time.Now()
	status, out := drain(t, via, drained.id)
	if status != 200 || str(out, "node") != drained.id || str(out, "status") != "drained" {
		t.Fatalf("drain %s through %s: status %d %v, want 200 with node %s and status drained", drained.id, via.id, status, out, drained.id)
	}
	if n, ok := out["identities"].(float64); !ok || n < 1 {
		t.Fatalf("drain %s: identities %v, want the number it stopped (it held %d)", drained.id, out["identities"], before.perNode[drained.id])
	}
	t.Logf("drain of %s (%d bridges) answered in %s: %v", drained.id, before.perNode[drained.id], time.Since(began).Round(time.Millisecond), out)
	if h := drained.hosted(); h != 0 {
		t.Fatalf("%s hosts %d identities after its drain answered, want 0", drained.id, h)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return readyStatus(drained.api) == 503 }, "%s /readyz red after the drain", drained.id)
	others := except(c.nodes, drained)
	c.waitMemberGone(drained, others, 30*time.Second)
	for _, n := range c.nodes {
		c.waitPlaced(n, bridges, others, time.Minute)
	}
	c.waitHostedTotal(via, bridges, others, time.Minute)
	if h := drained.hosted(); h != 0 {
		t.Fatalf("%s took identities again after its drain: hosts %d", drained.id, h)
	}
	rehomed := pool.waitAnswered(pool.round("drained"), 2*time.Minute, "a message to every bridge after the drain").Sub(began)
	t.Logf("every bridge answered %s after the drain of %s began", rehomed.Round(time.Millisecond), drained.id)
	checkGraceful(t, "the drain of "+drained.id, others, rehomed, ttl)
	if code := drained.sigterm(time.Minute); code != 0 {
		t.Fatalf("%s exited with %d after SIGTERM, want 0", drained.id, code)
	}

	stopped, last := c.nodes[1], c.nodes[0]
	if h := stopped.hosted(); h < 1 {
		t.Fatalf("%s hosts %d identities before its SIGTERM, want some", stopped.id, h)
	}
	began = time.Now()
	if code := stopped.sigterm(time.Minute); code != 0 {
		t.Fatalf("%s exited with %d after SIGTERM, want 0", stopped.id, code)
	}
	t.Logf("%s stopped on SIGTERM in %s", stopped.id, time.Since(began).Round(time.Millisecond))
	c.waitMemberGone(stopped, []*clusterNode{last}, 30*time.Second)
	c.waitPlaced(last, bridges, []*clusterNode{last}, time.Minute)
	c.waitHostedTotal(last, bridges, []*clusterNode{last}, time.Minute)
	rehomed = pool.waitAnswered(pool.round("alone"), 2*time.Minute, "a message to every bridge on the last node").Sub(began)
	t.Logf("every bridge answered on %s alone %s after the SIGTERM of %s", last.id, rehomed.Round(time.Millisecond), stopped.id)
	checkGraceful(t, "the SIGTERM of "+stopped.id, []*clusterNode{last}, rehomed, ttl)
	pool.stop()
	pool.checkNothingLost(tg, 2*time.Minute)
}

// takeovers adds up bridge_cluster_lease_takeovers_total over nodes: the
// leases they took over after the lease expired unreleased.
func takeovers(t testing.TB, nodes []*clusterNode) float64 {
	t.Helper()
	sum := 0.0
	for _, n := range nodes {
		v, ok := n.metricSum("bridge_cluster_lease_takeovers_total")
		if !ok {
			t.Fatalf("%s has no bridge_cluster_lease_takeovers_total on /metrics", n.id)
		}
		sum += v
	}
	return sum
}

// checkGraceful checks a graceful hand-over (a drain or a SIGTERM): the
// nodes that took the identities over count no lease takeover, since the
// leaving node released every lease, and the identities answered on their
// new nodes in rehome, under half the lease TTL. A lease that is renewed
// every third of its TTL and then left to expire still has at least two
// thirds of it to run.
func checkGraceful(t testing.TB, what string, takers []*clusterNode, rehome, ttl time.Duration) {
	t.Helper()
	if n := takeovers(t, takers); n != 0 {
		t.Errorf("after %s, %v counted %v lease takeovers, want 0: a graceful hand-over releases every lease", what, nodeIDs(takers), n)
	}
	if rehome >= ttl/2 {
		t.Errorf("after %s, every bridge answered only %s later, want under half the lease TTL of %s: were the leases released?", what, rehome.Round(time.Millisecond), ttl)
	}
}
