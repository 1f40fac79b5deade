package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// canarySent reads bridge_canary_sent_total of every node of nodes.
func canarySent(t testing.TB, nodes []*clusterNode) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, n := range nodes {
		v, ok := n.metricSum("bridge_canary_sent_total")
		if !ok {
			t.Fatalf("%s has no bridge_canary_sent_total on /metrics", n.id)
		}
		out[n.id] = v
	}
	return out
}

// canaryWindow watches the canaries of nodes until the cluster sent
// rounds rounds to every bridge, and returns the node that sent them. It
// fails unless exactly one node sent canaries meanwhile and every bridge
// got at most one canary per interval.
func (c *bridgeCluster) canaryWindow(nodes []*clusterNode, bridges []clusterBridge, interval time.Duration, rounds int) *clusterNode {
	t := c.t
	t.Helper()
	before := canarySent(t, nodes)
	from := time.Now()
	var after map[string]float64
	want := float64(rounds * len(bridges))
	testkit.WaitFor(t, time.Minute, func() bool {
		after = canarySent(t, nodes)
		total := 0.0
		for id, v := range after {
			total += v - before[id]
		}
		return total >= want
	}, "%d canary rounds", rounds)
	to := time.Now()
	var senders []*clusterNode
	for _, n := range nodes {
		if after[n.id] > before[n.id] {
			senders = append(senders, n)
		}
	}
	if len(senders) != 1 {
		t.Fatalf("%v sent canaries between %s and %s (before %v, after %v), want exactly one prober in the cluster",
			nodeIDs(senders), from.Format(time.TimeOnly), to.Format(time.TimeOnly), before, after)
	}
	// Every bridge got one canary per round: no more than the window
	// holds intervals, and one more for a round at its edge.
	most := int(to.Sub(from)/interval) + 1
	counts := c.canariesSent(bridges, from, to)
	for _, b := range bridges {
		if counts[b.ID] > most {
			t.Errorf("bridge %s got %d canaries in %s, want at most %d with one per %s", b.ID, counts[b.ID], to.Sub(from).Round(time.Millisecond), most, interval)
		}
	}
	return senders[0]
}

// canariesSent counts, per bridge, the canaries sent between from and to,
// from canary_results.
func (c *bridgeCluster) canariesSent(bridges []clusterBridge, from, to time.Time) map[string]int {
	out := map[string]int{}
	pgtest.Poll(c.t, c.x.db, 30*time.Second, func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		rows, err := conn.Query(ctx, `SELECT bridge_id::text, count(*) FROM canary_results WHERE sent_at >= $1 AND sent_at <= $2 GROUP BY bridge_id`, from, to)
		if err != nil {
			return false, err
		}
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				return false, err
			}
			out[id] = n
		}
		return rows.Err() == nil, rows.Err()
	}, "the canary results")
	return out
}

// waitCanariesAnswered waits until every bridge answered a canary sent
// after since.
func (c *bridgeCluster) waitCanariesAnswered(bridges []clusterBridge, since time.Time, timeout time.Duration) {
	c.t.Helper()
	pgtest.Poll(c.t, c.x.db, timeout, func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(DISTINCT bridge_id) FROM canary_results WHERE sent_at > $1 AND received_at IS NOT NULL`, since).Scan(&n)
		return err == nil && n == len(bridges), err
	}, "a canary answered by every bridge")
}

// TestClusterOneCanaryProber runs the canary prober on each of three etcd
// nodes, every second: only one of them sends, and each bridge gets one
// canary per interval, which its canary handler answers. When the node
// that sends is killed with SIGKILL, another node's prober takes the
// prober's lease over once it expired, and again only that one sends.
func TestClusterOneCanaryProber(t *testing.T) {
	t.Parallel()
	const interval = time.Second
	c := newBridgeCluster(t, clusterOpts{provider: "etcd", nodes: 3, name: "canary-cluster",
		tune: map[string]string{"BRIDGE_CANARY_INTERVAL": interval.String()}})
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	bridges := c.createBridges(tg, 4)
	c.waitPlaced(c.nodes[0], bridges, c.nodes, time.Minute)
	c.waitCanariesAnswered(bridges, time.Now(), time.Minute)

	holder := c.canaryWindow(c.nodes, bridges, interval, 4)
	t.Logf("%s sends the canaries", holder.id)
	killed := time.Now()
	holder.kill9()
	survivors := except(c.nodes, holder)
	next := c.canaryWindow(survivors, bridges, interval, 4)
	c.waitCanariesAnswered(bridges, killed, time.Minute)
	t.Logf("%s took the prober over and every bridge answered a canary within %s of the kill of %s",
		next.id, time.Since(killed).Round(time.Millisecond), holder.id)
}
