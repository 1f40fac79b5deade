package actors

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

func count(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// XMTP users subscribe and unsubscribe by message and get a confirmation;
// a broadcast reaches each subscriber once, and one that is not on the
// network is a failure with its reason. Turned off, the words are
// ordinary messages for the webhook.
func TestSubscribersGetEachBroadcastOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	rt, _ := e.runtime("n1", nil)
	ctx := context.Background()
	s1, s2, s3 := e.sender(), e.sender(), e.sender()
	if _, err := s1.SendText(ctx, b.Address, "/subscribe"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.SendText(ctx, b.Address, " /SUBSCRIBE "); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.SendText(ctx, b.Address, "/subscribe"); err != nil {
		t.Fatal(err)
	}
	subscribed := "You are subscribed. Send /unsubscribe to stop."
	testkit.WaitFor(t, 60*time.Second, func() bool {
		return count(messagesFrom(t, s1, b.Address), subscribed) == 1 && count(messagesFrom(t, s2, b.Address), subscribed) == 1 &&
			count(messagesFrom(t, s3, b.Address), subscribed) == 1
	}, "three confirmations")
	if _, err := s3.SendText(ctx, b.Address, "/unsubscribe"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 60*time.Second, func() bool {
		return count(messagesFrom(t, s3, b.Address), "You are unsubscribed. Send /subscribe to subscribe again.") == 1
	}, "unsubscribe confirmation")
	list, _, err := e.store.ListSubscribers(ctx, e.account.ID, b.ID, persistence.Page{})
	if err != nil || len(list) != 2 {
		t.Fatalf("subscribers: %+v %v", list, err)
	}
	if tg.Has("/subscribe") || tg.Has(" /SUBSCRIBE ") || tg.Has("/unsubscribe") {
		t.Fatal("a subscribe command went to the webhook")
	}
	// A subscriber whose address has no XMTP identity.
	ghost, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Pool().Exec(ctx, `INSERT INTO subscribers (bridge_id, address) VALUES ($1, $2)`, b.ID, ghost.Address()); err != nil {
		t.Fatal(err)
	}

	bc, err := e.store.CreateBroadcast(ctx, e.account.ID, b.ID, "news")
	if err != nil || bc.Recipients != 3 {
		t.Fatalf("broadcast: %+v %v", bc, err)
	}
	rt.Nudge(b.ID)
	testkit.WaitFor(t, 60*time.Second, func() bool {
		st, err := e.store.BroadcastStatus(ctx, e.account.ID, b.ID, bc.ID)
		return err == nil && st.Sent == 2 && st.Failed == 1 && st.Pending == 0
	}, "the broadcast's status")
	st, _ := e.store.BroadcastStatus(ctx, e.account.ID, b.ID, bc.ID)
	if len(st.Failures) != 1 || st.Failures[0].Address != ghost.Address() || !strings.Contains(st.Failures[0].Reason, "not on the XMTP network") {
		t.Fatalf("failures: %+v", st.Failures)
	}
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return count(messagesFrom(t, s1, b.Address), "news") == 1 && count(messagesFrom(t, s2, b.Address), "news") == 1
	}, "news to both subscribers")
	if n := count(messagesFrom(t, s3, b.Address), "news"); n != 0 {
		t.Fatalf("the unsubscribed user got %d copies", n)
	}

	// Off: the word is a message like any other.
	if _, err := e.store.UpdateBridge(ctx, e.account.ID, b.ID, func(x *persistence.Bridge) error {
		x.Subscriptions.Enabled = false
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rt.forgetBridge(b.ID)
	if _, err := s3.SendText(ctx, b.Address, "/subscribe"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 60*time.Second, func() bool { return tg.Has("/subscribe") }, "the word forwarded")
	if list, _, _ := e.store.ListSubscribers(ctx, e.account.ID, b.ID, persistence.Page{}); len(list) != 3 {
		t.Fatalf("%d subscribers after subscriptions were turned off, want the 3 before", len(list))
	}
}
