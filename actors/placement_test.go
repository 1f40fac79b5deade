package actors

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// TestPlacementFollowsBridgeChanges: with no full placement pass in the
// test's time (ReconcileInterval an hour), the bridge_changed events alone
// place a bridge created while the node runs and stop one disabled, within
// a few seconds, with nobody asking the runtime to activate or deactivate
// it. The contact bundle is published by the first activation and not by
// the next, which finds it recorded in the store.
func TestPlacementFollowsBridgeChanges(t *testing.T) {
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	rt, _ := e.runtime("n1", func(c *Config) { c.ReconcileInterval = time.Hour })
	testkit.WaitFor(t, 10*time.Second, rt.events.listening, "the runtime listening")

	br, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	hosts := func() bool { return slices.Contains(rt.Hosted(), br.ID) }
	testkit.WaitFor(t, 5*time.Second, hosts, "the new bridge hosted")

	ctx := context.Background()
	contacts := func() int {
		t.Helper()
		n := 0
		if err := e.xmtp.QueryAll(ctx, keys.ContactTopic(br.Address), 0, 0, func(*messagev1.Envelope) error {
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	published := contacts()
	if published == 0 {
		t.Fatal("the activation published no contact")
	}

	if err := e.store.SetBridgeStatus(ctx, br.ID, persistence.StatusDisabled); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return !hosts() }, "the disabled bridge stopped")
	if err := e.store.SetBridgeStatus(ctx, br.ID, persistence.StatusActive); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, hosts, "the enabled bridge hosted again")
	if n := contacts(); n != published {
		t.Fatalf("%d contact envelopes after the second activation, want the first one's %d", n, published)
	}
}

// TestAFailingActivationIsRetriedAlone: a bridge whose identity cannot
// activate (its sealed key bundle was damaged) is tried again each second
// on its own, by passes over the bridges named since the last one; it
// does not make the node read and hash every bridge each second. The
// other bridges are placed as usual.
func TestAFailingActivationIsRetriedAlone(t *testing.T) {
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	bad, _ := e.bridge(tg.URL, persistence.FormatJSON, nil)
	good, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	ctx := context.Background()
	if _, err := e.store.Pool().Exec(ctx, `UPDATE bridges SET key_ciphertext = decode(repeat('00', 64), 'hex') WHERE id = $1`, bad.ID); err != nil {
		t.Fatal(err)
	}
	rt, reg := e.runtime("n1", func(c *Config) { c.ReconcileInterval = time.Hour })
	testkit.WaitFor(t, 10*time.Second, rt.events.listening, "the runtime listening")
	testkit.WaitFor(t, 10*time.Second, func() bool { return slices.Contains(rt.Hosted(), good.ID) }, "the good bridge hosted")
	passes := func(kind string) float64 {
		return counterValue(t, reg, "bridge_cluster_placement_passes_total", map[string]string{"kind": kind})
	}
	// Let the start-up settle: the first full pass, and the one the
	// event listener asks for when it goes live.
	time.Sleep(1500 * time.Millisecond)
	full0, changed0 := passes("full"), passes("changed")
	time.Sleep(4 * time.Second)
	full, changed := passes("full")-full0, passes("changed")-changed0
	t.Logf("in 4 s: %v full passes, %v passes over the changed bridges", full, changed)
	if changed < 2 {
		t.Fatalf("the failing bridge was tried %v times in 4 s, want about once a second", changed)
	}
	if full > 1 {
		t.Fatalf("%v full passes in 4 s: one failing bridge made the node read every bridge again", full)
	}
	if slices.Contains(rt.Hosted(), bad.ID) {
		t.Fatal("the bridge with a damaged key bundle is hosted")
	}
	if !slices.Contains(rt.Hosted(), good.ID) {
		t.Fatal("the good bridge is no longer hosted")
	}
}

// TestActivatingADisabledBridgeReleasesItsLease: an activation that finds
// its bridge disabled (after placement chose it) fails with ErrDisabled,
// hosts nothing and leaves its lease released for anyone to take.
func TestActivatingADisabledBridgeReleasesItsLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	br, _ := e.bridge(tg.URL, persistence.FormatJSON, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.store.SetBridgeStatus(ctx, br.ID, persistence.StatusDisabled); err != nil {
		t.Fatal(err)
	}
	rt, _ := e.runtime("node-a", nil)
	if err := rt.Activate(ctx, br.ID); !errors.Is(err, ErrDisabled) {
		t.Fatalf("activate a disabled bridge: %v, want ErrDisabled", err)
	}
	if slices.Contains(rt.Hosted(), br.ID) {
		t.Fatal("the disabled bridge is hosted")
	}
	if _, err := e.store.AcquireLease(ctx, br.ID, "someone-else", time.Minute); err != nil {
		t.Fatalf("take the disabled bridge's lease: %v", err)
	}
}
