package actors

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
)

// TestNodeLeaseExpiryFencesEveryIdentityOfTheNode: when the node lease
// runs out (here ended by hand, as if the node missed its renewals), every
// identity the node hosts stops as stale; the node takes a new node lease,
// a new incarnation, and hosts them all again under it, with the next
// epoch, and they forward again.
func TestNodeLeaseExpiryFencesEveryIdentityOfTheNode(t *testing.T) {
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	const n = 3
	bridges := make([]persistence.Bridge, n)
	for i := range bridges {
		slug := fmt.Sprintf("b%d", i)
		var secret string
		bridges[i], secret = e.bridge(tg.URL+"/hook/"+slug, persistence.FormatRelaycc, nil)
		tg.SetHookSecret(slug, secret)
	}
	rt, reg := e.runtime("n1", func(c *Config) { c.LeaseTTL = 3 * time.Second })
	ctx := context.Background()
	first := rt.cluster.NodeLease()
	for _, b := range bridges {
		testkit.WaitFor(t, 30*time.Second, func() bool {
			st, ok := rt.Status(b.ID)
			return ok && st.Epoch == 1
		}, "bridge %s active with epoch 1", b.ID)
		if l, err := e.store.LeaseOf(ctx, b.ID); err != nil || l.Node != first.ID {
			t.Fatalf("lease of %s = %+v, %v; want it under node lease %d", b.ID, l, err, first.ID)
		}
	}
	if _, err := e.store.Pool().Exec(ctx, `UPDATE node_leases SET expires_at = now() - interval '1 second' WHERE id = $1`, first.ID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		return counterValue(t, reg, "bridge_actor_stale_activations_total", nil) == n
	}, "every identity of the node to stop as stale")
	var second persistence.NodeLease
	testkit.WaitFor(t, 20*time.Second, func() bool {
		second = rt.cluster.NodeLease()
		return second.ID > first.ID
	}, "a new node lease after %+v ran out", first)
	if got := counterValue(t, reg, "bridge_cluster_fenced_writes_total", nil); got < n {
		t.Fatalf("fenced writes = %v, want at least %d", got, n)
	}
	for _, b := range bridges {
		testkit.WaitFor(t, 30*time.Second, func() bool {
			st, ok := rt.Status(b.ID)
			return ok && st.Epoch == 2
		}, "bridge %s active again with epoch 2", b.ID)
		if l, err := e.store.LeaseOf(ctx, b.ID); err != nil || l.Node != second.ID || l.Epoch != 2 {
			t.Fatalf("lease of %s = %+v, %v; want epoch 2 under node lease %d", b.ID, l, err, second.ID)
		}
	}
	c := e.sender()
	for i, b := range bridges {
		if _, err := c.SendText(ctx, b.Address, "after-"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return tg.Has("after-a") && tg.Has("after-b") && tg.Has("after-c")
	}, "a message to every bridge under the new node lease")
	if got := counterValue(t, reg, "bridge_actor_stale_activations_total", nil); got != n {
		t.Fatalf("stale activations = %v, want %d", got, n)
	}
}
