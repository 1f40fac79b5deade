package actors

import (
	"context"
	"fmt"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// TestReplyLoopStopsAtLimit: two reply-mode bridges whose endpoints always
// answer, one of which messages the other, bounce replies until each has
// sent the limit; then the reply is held back, counted, and the exchange
// stops growing.
func TestReplyLoopStopsAtLimit(t *testing.T) {
	t.Parallel()
	const limit = 5
	e := newEnv(t)
	at, bt := webhooktest.NewTarget(t, persistence.FormatJSON), webhooktest.NewTarget(t, persistence.FormatJSON)
	a, asecret := e.bridge(at.URL, persistence.FormatJSON, nil)
	b, bsecret := e.bridge(bt.URL, persistence.FormatJSON, nil)
	at.SetSecret(asecret)
	bt.SetSecret(bsecret)
	rt, reg := e.runtime("node-a", func(c *Config) { c.ReplyLoopLimit = limit })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rt.Send(ctx, a.ID, b.Address, content.Text("ping")); err != nil {
		t.Fatalf("send: %v", err)
	}
	testkit.WaitFor(t, 45*time.Second, func() bool {
		return counterValue(t, reg, "bridge_forward_loop_suppressed_total", nil) >= 1
	}, "the loop guard holding a reply back")
	// The exchange has stopped: the counts stay put for several sweeps.
	stable := func() (int, int) { return len(at.Contents()), len(bt.Contents()) }
	na, nb := stable()
	for range 10 {
		time.Sleep(4 * 200 * time.Millisecond) // four sweep intervals
		if ma, mb := stable(); ma != na || mb != nb {
			na, nb = ma, mb
		}
	}
	// b answered the ping, which no bridge marked as a reply, and then
	// a's limit replies; a answered limit of b's replies and held the
	// next back. So b got the ping and a's limit replies, and a got b's
	// limit+1.
	if na != limit+1 || nb != limit+1 {
		t.Errorf("a's target got %d messages, b's %d; want %d and %d", na, nb, limit+1, limit+1)
	}
	// The conversation's topic holds the ping and the 2*limit+1 replies
	// (a reply published twice is one envelope).
	var topic string
	for _, c := range rt.activation(a.ID).convs.all() {
		topic = c.Topic
	}
	envs := 0
	if err := e.xmtp.QueryAll(ctx, topic, 0, 0, func(*messagev1.Envelope) error { envs++; return nil }); err != nil {
		t.Fatalf("query topic: %v", err)
	}
	if envs != 2+2*limit {
		t.Errorf("the conversation holds %d messages, want the ping and %d replies", envs, 2*limit+1)
	}
	if got := counterValue(t, reg, "bridge_forward_loop_suppressed_total", nil); got != 1 {
		t.Errorf("suppressed = %v, want 1", got)
	}
	// The held-back delivery is complete: nothing is retried or lost.
	testkit.WaitFor(t, 10*time.Second, func() bool {
		ds, _, err := e.store.ListDeliveries(ctx, e.account.ID, b.ID, "", persistence.Page{Limit: 100})
		if err != nil {
			t.Fatalf("list deliveries: %v", err)
		}
		for _, d := range ds {
			if d.Status != persistence.DeliverySucceeded {
				return false
			}
		}
		return len(ds) == limit+1
	}, "every delivery of b succeeded")
}

// TestPeopleAreAnsweredPastTheLimit: messages that no bridge marked as
// its reply (a person, any client) are always answered, however many
// arrive in a minute; the limit is for replies to replies.
func TestPeopleAreAnsweredPastTheLimit(t *testing.T) {
	t.Parallel()
	const limit = 3
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	_, reg := e.runtime("node-a", func(c *Config) { c.ReplyLoopLimit = limit })
	c := e.sender()
	const n = 4 * limit
	for i := range n {
		if _, err := c.SendText(context.Background(), b.Address, fmt.Sprintf("person %d", i)); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	testkit.WaitFor(t, 60*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) >= n },
		"%d replies to one person in one conversation", n)
	if got := counterValue(t, reg, "bridge_forward_loop_suppressed_total", nil); got != 0 {
		t.Errorf("suppressed = %v, want 0: a person's messages are never limited", got)
	}
}

// TestLoopGuardWindow checks the sliding window and the guard's bound.
func TestLoopGuardWindow(t *testing.T) {
	g := newLoopGuard(3, time.Minute)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if !g.allow("b", "t", t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("reply %d refused under the limit", i)
		}
	}
	if g.allow("b", "t", t0.Add(10*time.Second)) {
		t.Fatal("fourth reply within a minute allowed")
	}
	if !g.allow("other", "t", t0.Add(10*time.Second)) || !g.allow("b", "u", t0.Add(10*time.Second)) {
		t.Fatal("another bridge or conversation was limited")
	}
	// Half a window into the next bucket, half of the last one's three
	// still count: 1.5 < 3 allows one more, then two.
	if !g.allow("b", "t", t0.Add(90*time.Second)) {
		t.Fatal("reply refused after the window moved on")
	}
	if !g.allow("b", "t", t0.Add(91*time.Second)) || g.allow("b", "t", t0.Add(92*time.Second)) {
		t.Fatal("sliding estimate wrong")
	}
	if !g.allow("b", "t", t0.Add(10*time.Minute)) {
		t.Fatal("reply refused after a long pause")
	}
	// Many conversations: the guard forgets rather than grows.
	for i := range loopGuardEntries + 1000 {
		g.allow("b", fmt.Sprintf("topic-%d", i), t0.Add(20*time.Minute))
	}
	if n := g.size(); n > loopGuardEntries {
		t.Fatalf("guard holds %d entries, bound %d", n, loopGuardEntries)
	}
	if off := newLoopGuard(0, time.Minute); !off.allow("b", "t", t0) || off.size() != 0 {
		t.Fatal("a zero limit limits")
	}
}
