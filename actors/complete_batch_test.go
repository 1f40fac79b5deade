package actors

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/persistence/storetest"
)

// TestRepliesOfABatchWhoseRowsWereLostArePublishedAtOnce: the node's store
// reaches Postgres through a loopback proxy that breaks the connection of
// the first batch of completions after the statement committed, while its
// rows are read. The batch's deliveries are completed again one at a time,
// which finds them succeeded; their replies, already in the outbox, are
// still published at once, not when the periodic sweep (a minute here)
// comes round. Every message gets exactly one reply.
func TestRepliesOfABatchWhoseRowsWereLostArePublishedAtOnce(t *testing.T) {
	e := newEnv(t)
	const n = 8
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	// The target answers once all n messages are in, so their
	// completions reach the node's batcher together.
	var (
		mu      sync.Mutex
		arrived = -1 // the first message makes it 0
		all     = make(chan struct{})
	)
	tg.SetStatus(func(string) int {
		mu.Lock()
		if arrived++; arrived == 0 {
			mu.Unlock()
			return 200 // the first message
		} else if arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
		}
		return 200
	})
	cut, url := pgtest.NewCutter(t, e.db, "AS i(l_identity, l_owner, l_epoch, delivery_id, status_code")
	store := storetest.Open(t, url, e.sealer)
	rt, _ := e.runtime("n1", func(c *Config) {
		c.Store = store
		c.SweepInterval = time.Minute
	})
	c := e.sender()
	ctx := context.Background()
	// A first message, answered at once, completes alone; by the time
	// its reply is back and the activation is a second old, the
	// scheduler's pass after the activation (passSoon) has gone by, and
	// the next one is a minute away.
	if _, err := c.SendText(ctx, b.Address, "first"); err != nil {
		t.Fatalf("send: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		got := messagesFrom(t, c, b.Address)
		return len(got) == 1 && got[0] == "echo: first"
	}, "a reply to the first message")
	testkit.WaitFor(t, 5*time.Second, func() bool {
		st, ok := rt.Status(b.ID)
		return ok && time.Since(st.Since) > time.Second
	}, "the activation's first scheduler pass to go by")
	cut.Arm()
	want := map[string]bool{"echo: first": true}
	for i := range n {
		m := fmt.Sprintf("m%d", i)
		want["echo: "+m] = true
		if _, err := c.SendText(ctx, b.Address, m); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return arrived >= n
	}, "the target to get all %d messages", n)
	answered := time.Now()
	testkit.WaitFor(t, 15*time.Second, func() bool {
		got := messagesFrom(t, c, b.Address)
		for _, m := range got {
			if !want[m] {
				t.Fatalf("unexpected reply %q", m)
			}
		}
		return len(got) >= n+1
	}, "a reply to every message long before the sweep")
	t.Logf("all replies %s after the target answered", time.Since(answered).Round(time.Millisecond))
	if cut.Cuts() != 1 {
		t.Fatalf("the proxy cut %d batches of completions, want 1: the completions did not meet in a batch", cut.Cuts())
	}
	if got := messagesFrom(t, c, b.Address); len(got) != n+1 {
		t.Fatalf("%d replies for %d messages: %v", len(got), n+1, got)
	}
}
