package actors

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
)

// TestConfigurationChangeIsAnEvent: the grain keeps its copy of the
// bridge's configuration, with no polling, and a change written to the
// store by anyone (here straight into the store, not through the API's
// ActivateRequest) reaches it through bridge_changed within a second: the
// next message goes to the new URL, a sender taken off the allow-list is
// no longer forwarded. After the listener's connection is cut, it listens
// again and changes still arrive.
func TestConfigurationChangeIsAnEvent(t *testing.T) {
	e := newEnv(t)
	first := webhooktest.NewTarget(t, persistence.FormatJSON)
	second := webhooktest.NewTarget(t, persistence.FormatJSON)
	br, secret := e.bridge(first.URL, persistence.FormatJSON, nil)
	first.SetSecret(secret)
	second.SetSecret(secret)
	// No sweep would come in the test's time: only the event can tell
	// the grain.
	rt, _ := e.runtime("n1", func(c *Config) { c.SweepInterval = time.Hour })
	testkit.WaitFor(t, 10*time.Second, rt.events.listening, "the runtime listening")
	c := e.sender()
	ctx := context.Background()
	if _, err := c.SendText(ctx, br.Address, "before"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return first.Has("before") }, "the first message at the first URL")
	if cached, ok := rt.cachedBridge(br.ID); !ok || cached.Forward.URL != first.URL {
		t.Fatalf("configuration not kept after use: %v %+v", ok, cached.Forward)
	}

	change := func(edit func(*persistence.Bridge)) time.Time {
		t.Helper()
		if _, err := e.store.UpdateBridge(ctx, e.account.ID, br.ID, func(b *persistence.Bridge) error {
			edit(b)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}
	// The copy goes within a second; the next read is the new one.
	changed := change(func(b *persistence.Bridge) { b.Forward.URL = second.URL })
	testkit.WaitFor(t, time.Second, func() bool {
		b, ok := rt.cachedBridge(br.ID)
		return !ok || b.Forward.URL == second.URL
	}, "the cached configuration dropped")
	t.Logf("configuration change seen after %s", time.Since(changed).Round(time.Millisecond))
	if _, err := c.SendText(ctx, br.Address, "after"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return second.Has("after") }, "the next message at the new URL")
	if first.Has("after") {
		t.Fatal("a message after the change went to the old URL")
	}

	// The listener's connection is cut: it listens again, and the next
	// change arrives as well.
	conn, err := pgx.Connect(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var cut int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE '%bridge_changed%' AND pid <> pg_backend_pid()`).Scan(&cut); err != nil {
		t.Fatal(err)
	}
	if cut != 1 {
		t.Fatalf("terminated %d listening connections, want 1", cut)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { _, ok := rt.cachedBridge(br.ID); return !ok }, "every copy dropped")
	testkit.WaitFor(t, 10*time.Second, rt.events.listening, "the runtime listening again")
	if _, err := c.SendText(ctx, br.Address, "again"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return second.Has("again") }, "a message after the reconnection")
	other := e.sender()
	change(func(b *persistence.Bridge) { b.Forward.AllowSenders = []string{other.Address()} })
	testkit.WaitFor(t, time.Second, func() bool {
		b, ok := rt.cachedBridge(br.ID)
		return !ok || len(b.Forward.AllowSenders) == 1
	}, "the allow-list change seen")
	if _, err := c.SendText(ctx, br.Address, "not allowed"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.SendText(ctx, br.Address, "allowed"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return second.Has("allowed") }, "the allowed sender's message")
	if second.Has("not allowed") {
		t.Fatal("a sender off the allow-list was forwarded")
	}
}
