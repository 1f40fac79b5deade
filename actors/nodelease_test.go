package actors

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// TestNodeLeaseExpiryFencesEveryIdentityOfTheNode: when the node lease
// runs out (here ended by hand, as if the node missed its renewals), every
// identity the node hosts stops as stale; the node takes a new node lease,
// a new incarnation, and hosts them all again under it, with the next
// epoch, and they forward again. The lost node lease counts one fenced
// write, and each identity it stopped one stale activation.
func TestNodeLeaseExpiryFencesEveryIdentityOfTheNode(t *testing.T) {
	t.Parallel()
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
	// One lost node lease counts one fenced write, its refused renewal,
	// however many identities it stops: they count as stale activations.
	if got := counterValue(t, reg, "bridge_cluster_fenced_writes_total", nil); got != 1 {
		t.Fatalf("fenced writes = %v, want 1: the refused renewal of the lost node lease", got)
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

// TestNodeCutOffFromPostgresFencesItsIdentities: a node that cannot reach
// Postgres (its database refuses connections) for a whole LeaseTTL cannot
// renew its node lease in time, and every identity it hosts stops as
// stale; once Postgres is back, the renewal finds the node lease run out,
// the node takes a new one, and hosts its identities again under it.
func TestNodeCutOffFromPostgresFencesItsIdentities(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	const n = 2
	bridges := make([]persistence.Bridge, n)
	for i := range bridges {
		slug := fmt.Sprintf("b%d", i)
		var secret string
		bridges[i], secret = e.bridge(tg.URL+"/hook/"+slug, persistence.FormatRelaycc, nil)
		tg.SetHookSecret(slug, secret)
	}
	rt, reg := e.runtime("n1", func(c *Config) { c.LeaseTTL = 3 * time.Second })
	first := rt.cluster.NodeLease()
	for _, b := range bridges {
		testkit.WaitFor(t, 30*time.Second, func() bool {
			st, ok := rt.Status(b.ID)
			return ok && st.Epoch == 1
		}, "bridge %s active with epoch 1", b.ID)
	}
	cfg, err := pgx.ParseConfig(e.db)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Context(t, 2*time.Minute)
	admin, err := pgx.Connect(ctx, pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	allow := func(on bool) {
		t.Helper()
		if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS %t`, pgx.Identifier{cfg.Database}.Sanitize(), on)); err != nil {
			t.Fatal(err)
		}
	}
	allow(false)
	t.Cleanup(func() { allow(true) })
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, cfg.Database); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return counterValue(t, reg, "bridge_actor_stale_activations_total", nil) == n
	}, "every identity to stop as stale while Postgres is unreachable")
	if got := counterValue(t, reg, "bridge_actor_lease_renewal_errors_total", nil); got < 1 {
		t.Fatalf("renewal errors = %v, want at least 1", got)
	}
	// Stopping the identities for the lapse counts no fenced write: no
	// write was refused yet.
	if got := counterValue(t, reg, "bridge_cluster_fenced_writes_total", nil); got != 0 {
		t.Fatalf("fenced writes while Postgres is unreachable = %v, want 0", got)
	}
	allow(true)
	var second persistence.NodeLease
	testkit.WaitFor(t, 30*time.Second, func() bool {
		second = rt.cluster.NodeLease()
		return second.ID > first.ID
	}, "a new node lease once Postgres is back")
	// The renewal that found the node lease run out is the one fenced
	// write of the lost node lease.
	if got := counterValue(t, reg, "bridge_cluster_fenced_writes_total", nil); got != 1 {
		t.Fatalf("fenced writes = %v, want 1: the refused renewal of the lost node lease", got)
	}
	for _, b := range bridges {
		testkit.WaitFor(t, 60*time.Second, func() bool {
			st, ok := rt.Status(b.ID)
			return ok && st.Epoch == 2
		}, "bridge %s active again with epoch 2", b.ID)
		if l, err := e.store.LeaseOf(ctx, b.ID); err != nil || l.Node != second.ID {
			t.Fatalf("lease of %s = %+v, %v; want it under node lease %d", b.ID, l, err, second.ID)
		}
	}
}
