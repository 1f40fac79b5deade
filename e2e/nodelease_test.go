package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// nodeLeaseRow is an identity's lease with the node lease it lives under,
// read straight from Postgres.
type nodeLeaseRow struct {
	Epoch       int64
	Incarnation int64
	Node        string
	Live        bool
	NodeExpires time.Time
}

func readNodeLease(ctx context.Context, conn *pgx.Conn, bridgeID string) (nodeLeaseRow, error) {
	var r nodeLeaseRow
	err := conn.QueryRow(ctx, `SELECT l.epoch, n.id, n.node,
			NOT l.released AND l.expires_at > now() AND n.expires_at > now(), n.expires_at
		FROM identity_leases l JOIN node_leases n ON n.id = l.node_lease WHERE l.identity = $1`, bridgeID).
		Scan(&r.Epoch, &r.Incarnation, &r.Node, &r.Live, &r.NodeExpires)
	if err == pgx.ErrNoRows {
		return nodeLeaseRow{}, nil
	}
	return r, err
}

// TestKill9RestartTakesOverUnderANewIncarnation kills the node with
// SIGKILL and starts it again with the same node id: the restarted
// process takes a new node lease (a new incarnation), the killed one's is
// never renewed again, and the identity's lease moves to the new
// incarnation with the next epoch, counted as a takeover; the bridge then
// answers every message exactly once.
func TestKill9RestartTakesOverUnderANewIncarnation(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	tg := webhooktest.NewTarget(t, "json")
	id, addr := echoBridge(t, c, tg)
	var first nodeLeaseRow
	pgtest.Poll(t, c.db, time.Minute, func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		var err error
		first, err = readNodeLease(ctx, conn, id)
		return first.Live, err
	}, "the bridge's lease live under a node lease")
	if first.Node != "e2e-node-1" {
		t.Fatalf("node lease of node %q, want e2e-node-1", first.Node)
	}
	if err := c.node.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if code := c.node.wait(10 * time.Second); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("node exit status %d, want death by SIGKILL", code)
	}
	killed := time.Now()
	c.startNode()
	var second nodeLeaseRow
	pgtest.Poll(t, c.db, time.Minute, func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		var err error
		second, err = readNodeLease(ctx, conn, id)
		return second.Live && second.Incarnation != first.Incarnation, err
	}, "the bridge's lease live under the restarted node's lease")
	t.Logf("incarnation %d, epoch %d before the kill; incarnation %d, epoch %d %s after it",
		first.Incarnation, first.Epoch, second.Incarnation, second.Epoch, time.Since(killed).Round(time.Millisecond))
	if second.Incarnation <= first.Incarnation || second.Node != first.Node || second.Epoch != first.Epoch+1 {
		t.Fatalf("after the restart: %+v, before: %+v; want a newer incarnation of the same node and the next epoch", second, first)
	}
	ctx := testkit.Context(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var oldExpires time.Time
	var oldLive bool
	if err := conn.QueryRow(ctx, `SELECT expires_at, expires_at > now() FROM node_leases WHERE id = $1`, first.Incarnation).
		Scan(&oldExpires, &oldLive); err != nil {
		t.Fatal(err)
	}
	if oldLive || oldExpires.After(killed.Add(10*time.Second)) {
		t.Fatalf("the killed process's node lease expires at %v (live %v), killed at %v: renewed after the kill", oldExpires, oldLive, killed)
	}
	if v, ok := metricSum(c.api, "bridge_cluster_lease_takeovers_total"); !ok || v < 1 {
		t.Errorf("bridge_cluster_lease_takeovers_total after a kill -9 and a restart: %v (present %v), want at least 1", v, ok)
	}
	b := newBurst(t, c.xmtpGRPC, addr, 3, 10)
	b.start()
	b.wait(2 * time.Minute)
	b.checkNothingLost(tg, c.db)
}
