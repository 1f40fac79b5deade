package e2e

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
)

// BenchmarkClusterRehome measures, for the etcd and the automanaged
// provider, how long a 3-node cluster with 30 bridges takes to bring back
// the identities of a node killed with SIGKILL: five kills per provider,
// each of the next node in turn, which is restarted and has taken its
// share back before the next kill. It reports the median and the maximum
// rehome time (kill -> every bridge placed on a survivor and answering a
// message sent after that) and, separately, the median detection time of
// the membership provider (kill -> the member gone from every survivor's
// view). One benchmark iteration does all five runs.
func BenchmarkClusterRehome(b *testing.B) {
	for _, provider := range []string{"etcd", "automanaged"} {
		b.Run(provider, func(b *testing.B) {
			c := newBridgeCluster(b, clusterOpts{provider: provider, nodes: 3, tune: map[string]string{"BRIDGE_LOG_LEVEL": "warn"}})
			tg := webhooktest.NewTarget(b, persistence.FormatJSON)
			bridges := c.createBridges(tg, 30)
			c.waitPlaced(c.nodes[0], bridges, c.nodes, time.Minute)
			c.waitHostedTotal(c.nodes[0], bridges, c.nodes, time.Minute)
			pool := newXMTPPool(b, c, bridges, 3)
			pool.waitAnswered(pool.round("warm"), 2*time.Minute, "a first message to every bridge")
			b.ResetTimer()
			var rehome, detect []float64
			for run := range 5 {
				victim := c.nodes[run%len(c.nodes)]
				kt := c.killAndRehome(pool, bridges, victim)
				rehome = append(rehome, kt.rehome.Seconds())
				detect = append(detect, kt.detect.Seconds())
				b.Logf("%s run %d: kill -9 of %s (%d bridges): detection %.2fs, placement %.2fs, rehome %.2fs",
					provider, run+1, victim.id, kt.moved, kt.detect.Seconds(), kt.placed.Seconds(), kt.rehome.Seconds())
				b.StopTimer()
				c.waitRejoined(bridges, victim)
				pool.waitAnswered(pool.round("rejoined"), 2*time.Minute, "a message to every bridge after the rejoin")
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(rehome)
			slices.Sort(detect)
			b.ReportMetric(rehome[len(rehome)/2], "rehome-median-s")
			b.ReportMetric(rehome[len(rehome)-1], "rehome-max-s")
			b.ReportMetric(detect[len(detect)/2], "detect-median-s")
			b.ReportMetric(0, "ns/op")
			pool.checkNothingLost(tg, 2*time.Minute)
		})
	}
}

// BenchmarkRESTSend measures POST /v1/bridges/{id}/messages throughput,
// in messages per second with 8 concurrent callers spread over 4 bridges:
// "cluster-routed" sends each bridge's messages through a node of a 3-node
// etcd cluster that does not host it, so every call crosses the cluster;
// "single-node" sends through the node of a one-node cluster, which hosts
// every bridge. Both clusters run in the same benchmark run, so the ratio
// of the two figures is the cost of routing.
func BenchmarkRESTSend(b *testing.B) {
	// The send rate limit is lifted: the benchmark measures the path, not
	// the quota.
	quiet := map[string]string{"BRIDGE_LOG_LEVEL": "warn", "BRIDGE_SEND_RATE": "1000000", "BRIDGE_SEND_BURST": "1000000"}
	multi := newBridgeCluster(b, clusterOpts{provider: "etcd", nodes: 3, tune: quiet})
	single := newBridgeCluster(b, clusterOpts{provider: "automanaged", nodes: 1, tune: quiet})
	type route struct {
		bridge string
		via    *clusterNode
	}
	setup := func(c *bridgeCluster, routed bool) ([]route, string) {
		tg := webhooktest.NewTarget(b, persistence.FormatJSON)
		bridges := c.createBridges(tg, 4)
		pc := c.waitPlaced(c.nodes[0], bridges, c.nodes, time.Minute)
		c.waitHostedTotal(c.nodes[0], bridges, c.nodes, time.Minute)
		var routes []route
		for i, br := range bridges {
			via := c.nodes[0]
			if routed {
				others := []*clusterNode{}
				for _, n := range c.nodes {
					if n.id != pc.byBridge[br.ID].Node {
						others = append(others, n)
					}
				}
				via = others[i%len(others)]
			}
			routes = append(routes, route{bridge: br.ID, via: via})
		}
		return routes, newRecipient(b, c.x.xmtpGRPC).cl.Address()
	}
	run := func(b *testing.B, c *bridgeCluster, routes []route, to string) {
		var next atomic.Int64
		var failed atomic.Value
		var wg sync.WaitGroup
		b.ResetTimer()
		began := time.Now()
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k := next.Add(1) - 1
					if k >= int64(b.N) {
						return
					}
					r := routes[(int(k)+w)%len(routes)]
					res := postMessage(c, r.via, r.bridge, to, fmt.Sprintf("bench %d", k), time.Minute)
					if res.err != nil || res.status != 202 {
						failed.Store(fmt.Sprintf("send through %s: status %d, error %v: %s", r.via.id, res.status, res.err, testkit.Tail(string(res.body), 200)))
						return
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(began)
		b.StopTimer()
		if msg, ok := failed.Load().(string); ok {
			b.Fatal(msg)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	}
	routedRoutes, routedTo := setup(multi, true)
	singleRoutes, singleTo := setup(single, false)
	b.Run("cluster-routed", func(b *testing.B) { run(b, multi, routedRoutes, routedTo) })
	b.Run("single-node", func(b *testing.B) { run(b, single, singleRoutes, singleTo) })
}
