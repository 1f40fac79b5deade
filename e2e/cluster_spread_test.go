package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/persistence"
)

// TestClusterSpread runs 3 nodes over etcd and creates 300 bridges over
// REST, each through the next node in turn. Every bridge gets a live lease
// and runs on exactly one node: the placement views of all three nodes
// agree, list each bridge once on an existing member, match the leases in
// Postgres (one live lease per bridge, owned by that member) and the
// hosted-identities gauges, and every node hosts a fair share. Then every
// identity answers: one XMTP message to each bridge gets exactly one reply,
// and each node's XMTP subscription covers exactly its bridges' topics.
func TestClusterSpread(t *testing.T) {
	t.Parallel()
	const total = 300
	// One account holds them all, over the default bridge quota.
	c := newBridgeCluster(t, clusterOpts{provider: "etcd", nodes: 3, tune: map[string]string{"BRIDGE_MAX_BRIDGES_PER_ACCOUNT": "300"}})
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	began := time.Now()
	bridges := c.createBridges(tg, total)
	t.Logf("created %d bridges through %v in %s", total, nodeIDs(c.nodes), time.Since(began).Round(time.Millisecond))
	c.waitPlaced(c.nodes[0], bridges, c.nodes, 2*time.Minute)
	t.Logf("all %d bridges placed %s after the first create", total, time.Since(began).Round(time.Millisecond))
	hosted := c.waitHostedTotal(c.nodes[0], bridges, c.nodes, time.Minute)
	c.checkSpread(bridges)

	pool := newXMTPPool(t, c, bridges, 10)
	texts := pool.round("spread")
	sentAt := time.Now()
	pool.waitAnswered(texts, 3*time.Minute, fmt.Sprintf("one message to each of %d bridges", total))
	t.Logf("%d bridges answered %s after the last publish", total, time.Since(sentAt).Round(time.Millisecond))
	pool.checkNothingLost(tg, 2*time.Minute)

	// Messaging them changed nothing: still each bridge once.
	after := c.waitHostedTotal(c.nodes[0], bridges, c.nodes, time.Minute)
	c.checkSpread(bridges)
	for _, n := range c.nodes {
		if after[n.id] != hosted[n.id] {
			t.Errorf("%s hosted %d bridges before the messages and %d after, with no topology change", n.id, hosted[n.id], after[n.id])
		}
	}
	// Ingress follows placement: each node's one subscription carries
	// exactly the invite topic and the one conversation topic of each
	// bridge it hosts, and no other.
	for _, n := range c.nodes {
		topics, ok := n.metricSum("bridge_ingress_topics")
		if !ok {
			t.Fatalf("%s exports no bridge_ingress_topics", n.id)
		}
		if int(topics) != 2*after[n.id] {
			t.Errorf("%s subscribes to %v topics, want %d for its %d bridges", n.id, topics, 2*after[n.id], after[n.id])
		}
	}
	var spread []string
	for _, n := range c.nodes {
		spread = append(spread, fmt.Sprintf("%s=%d", n.id, hosted[n.id]))
	}
	t.Logf("spread of %d bridges: %s", total, strings.Join(spread, " "))
}

// checkSpread checks, for a settled cluster, that every node's placement
// view lists each bridge once on a member that exists, that the views
// agree on node, owner and epoch, that Postgres holds one live lease per
// bridge owned by that member with that epoch, and that each node hosts at
// least a tenth of the bridges.
func (c *bridgeCluster) checkSpread(bridges []clusterBridge) {
	t := c.t
	t.Helper()
	nodes := c.live()
	members := map[string]string{} // memberKey -> node id
	v, err := nodes[0].members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range v.Members {
		members[memberKey(m.ID)] = m.Node
	}
	var first placementCheck
	for i, n := range nodes {
		pc, err := checkPlacement(n, bridges, nodes)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pc.problems {
			t.Errorf("%s", p)
		}
		if i == 0 {
			first = pc
			continue
		}
		for id, r := range pc.byBridge {
			f := first.byBridge[id]
			if r.Node != f.Node || r.Owner != f.Owner || r.Epoch != f.Epoch {
				t.Errorf("bridge %s: %s says %s/%s epoch %d, %s says %s/%s epoch %d",
					id, n.id, r.Node, r.Owner, r.Epoch, nodes[0].id, f.Node, f.Owner, f.Epoch)
			}
		}
	}
	leases := c.leases()
	var problems []string
	for _, b := range bridges {
		r := first.byBridge[b.ID]
		if !strings.EqualFold(r.Address, b.Address) {
			problems = append(problems, fmt.Sprintf("bridge %s: placement address %s, want %s", b.ID, r.Address, b.Address))
		}
		l, ok := leases[b.ID]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("bridge %s has no lease row", b.ID))
			continue
		case !l.Live:
			problems = append(problems, fmt.Sprintf("bridge %s: its lease (owner %s, epoch %d) expired", b.ID, l.Owner, l.Epoch))
		case l.Owner != r.Owner || l.Epoch != r.Epoch:
			problems = append(problems, fmt.Sprintf("bridge %s: lease %s epoch %d in Postgres, placement says %s epoch %d", b.ID, l.Owner, l.Epoch, r.Owner, r.Epoch))
		}
		member, node := memberOfOwner(l.Owner)
		if on, ok := members[memberKey(member)]; !ok {
			problems = append(problems, fmt.Sprintf("bridge %s: lease owner %s is not a current member (members %v)", b.ID, l.Owner, v.Members))
		} else if on != r.Node || node != r.Node {
			problems = append(problems, fmt.Sprintf("bridge %s: lease owner %s is member of node %s, placement says %s", b.ID, l.Owner, on, r.Node))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d problems with the leases of %d bridges:\n%s", len(problems), len(bridges), strings.Join(firstN(problems, 10), "\n"))
	}
	for _, n := range nodes {
		if got := first.perNode[n.id]; got*10 < len(bridges) {
			t.Errorf("%s hosts %d of %d bridges, less than a tenth (placement %v)", n.id, got, len(bridges), first.perNode)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
