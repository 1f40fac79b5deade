package actors

import (
	"context"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
)

// TestTakeoverCountsWhenTheActivationFailsAfterTheLease: a lease that
// expired unreleased (its holder crashed) and is taken by an activation
// that then fails to read the identity's state is counted as a takeover
// then. The failed activation releases the lease, so the activation that
// succeeds later takes a released lease and sees no takeover: counted
// only at the end, the crash would go unseen.
func TestTakeoverCountsWhenTheActivationFailsAfterTheLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL+"/hook/b", persistence.FormatRelaycc, nil)
	tg.SetHookSecret("b", secret)
	ctx := context.Background()
	// A holder that crashed: its lease runs out and is never released.
	if _, err := e.store.AcquireLease(ctx, b.ID, "crashed.m0/x", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	// The identity's state cannot be read until the table is back.
	if _, err := e.store.Pool().Exec(ctx, `ALTER TABLE contact_publications RENAME TO contact_publications_away`); err != nil {
		t.Fatal(err)
	}
	rt, reg := e.runtime("n1", nil)
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return counterValue(t, reg, "bridge_actor_activations_total", map[string]string{"result": "error"}) >= 1
	}, "an activation of %s that fails on its state read", b.ID)
	if _, err := e.store.Pool().Exec(ctx, `ALTER TABLE contact_publications_away RENAME TO contact_publications`); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 60*time.Second, func() bool {
		st, ok := rt.Status(b.ID)
		return ok && st.Epoch >= 2
	}, "bridge %s active once its state can be read", b.ID)
	if got := counterValue(t, reg, "bridge_cluster_lease_takeovers_total", nil); got != 1 {
		t.Fatalf("lease takeovers = %v, want 1: the crashed holder's lease was taken over once", got)
	}
}
