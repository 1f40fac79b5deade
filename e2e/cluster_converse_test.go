package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
)

// TestClusterBridgesConverse: two reply-mode bridges hosted by two
// different node processes message each other over REST, 100 messages
// each way, and so do two bridges hosted by the same node, which share
// their conversation's topic in that node's ingress. Every one of the 400
// reaches the other bridge's target. Each endpoint answers, so each bridge
// would reply to every message and to every reply, for ever; the reply
// loop limit holds each bridge to its limit of replies to the other's
// replies, the exchange stops, and the nodes count what they held back.
func TestClusterBridgesConverse(t *testing.T) {
	t.Parallel()
	const limit, n = 5, 100
	c := newBridgeCluster(t, clusterOpts{provider: "automanaged", nodes: 2, name: "converse-cluster",
		// One account sends 400 messages at once: past the default send rate.
		tune: map[string]string{"BRIDGE_REPLY_LOOP_LIMIT": fmt.Sprint(limit), "BRIDGE_SEND_RATE": "1000", "BRIDGE_SEND_BURST": "2000"}})
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	// Of 8 bridges on 2 nodes, two share a node; usually each node has one.
	var pairs [][2]clusterBridge
	for try := 0; len(pairs) < 2; try++ {
		if try == 3 {
			t.Fatal("no two bridges placed on different nodes in three batches")
		}
		// Each batch is a new account; only its bridges are sent as.
		bridges := c.createBridges(tg, 8)
		pc := c.waitPlaced(c.nodes[0], bridges, c.nodes, time.Minute)
		byNode := map[string][]clusterBridge{}
		for _, br := range bridges {
			node := pc.byBridge[br.ID].Node
			byNode[node] = append(byNode[node], br)
		}
		pairs = nil
		first, second := byNode[c.nodes[0].id], byNode[c.nodes[1].id]
		if len(first) > 0 && len(second) > 0 {
			pairs = append(pairs, [2]clusterBridge{first[0], second[0]})
		}
		if len(first) < 2 {
			first = second
		}
		pairs = append(pairs, [2]clusterBridge{first[0], first[1]})
	}
	began := time.Now()
	type dir struct {
		from, to clusterBridge
		prefix   string
	}
	var dirs []dir
	for k, p := range pairs {
		where := []string{"across nodes", "on one node"}[k]
		dirs = append(dirs, dir{p[0], p[1], where + " a->b"}, dir{p[1], p[0], where + " b->a"})
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(dirs)*n)
	for k, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				// Through either node: a send reaches the owner through
				// the cluster.
				via := c.nodes[(i+k)%2]
				res := postMessage(c, via, d.from.ID, d.to.Address, fmt.Sprintf("%s %d", d.prefix, i), time.Minute)
				if res.err != nil || res.status != 202 {
					errs <- fmt.Errorf("send %s %d through %s: status %d, error %v: %s", d.prefix, i, via.id, res.status, res.err, testkit.Tail(string(res.body), 300))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	arrived := func() (int, []string) {
		byText := tg.ByContent()
		got := 0
		var missing []string
		for _, d := range dirs {
			for i := range n {
				text := fmt.Sprintf("%s %d", d.prefix, i)
				if h, ok := byText[text]; ok && h.Slugs[d.to.slug] {
					got++
				} else if len(missing) < 5 {
					missing = append(missing, text)
				}
			}
		}
		return got, missing
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, missing := arrived()
		if got == len(dirs)*n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages reached the other bridge's target; missing, e.g., %v", got, len(dirs)*n, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("all %d messages arrived %s after the first send", len(dirs)*n, time.Since(began).Round(time.Millisecond))

	suppressed := func() float64 {
		var sum float64
		for _, node := range c.nodes {
			v, _ := node.metricSum("bridge_forward_loop_suppressed_total")
			sum += v
		}
		return sum
	}
	echoes := func() int {
		k := 0
		for text, h := range tg.ByContent() {
			if strings.HasPrefix(text, "echo: ") {
				k += h.Requests
			}
		}
		return k
	}
	// Every REST send is answered (no bridge marked it as its reply), and
	// while the sends go on each one starts its conversation's count
	// afresh. Once they stop, each bridge answers at most limit more of the
	// other's replies a minute and holds the rest back: the exchange stops.
	testkit.WaitFor(t, 60*time.Second, func() bool { return suppressed() >= float64(len(pairs)) },
		"the loop limit to hold replies back in each conversation")
	last, still := echoes(), time.Now()
	testkit.WaitFor(t, 90*time.Second, func() bool {
		if now := echoes(); now != last {
			last, still = now, time.Now()
		}
		return time.Since(still) > 5*time.Second
	}, "the replies between the bridges to stop")
	if answered := len(dirs) * n; last < answered {
		t.Errorf("the targets got %d automatic replies, want at least one to each of the %d sends", last, answered)
	}
	t.Logf("%d automatic replies reached the targets, %v held back", last, suppressed())
}
