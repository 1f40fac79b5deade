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

// TestInvitePrefixStartsInviteTopics: the prefix the identity checks
// before it hashes an address is the start of every invite topic.
func TestInvitePrefixStartsInviteTopics(t *testing.T) {
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if topic := keys.InviteTopic(k.Address()); !strings.HasPrefix(topic, invitePrefix) {
		t.Fatalf("invite topic %q does not start with %q", topic, invitePrefix)
	}
}

// ownCount is how many envelopes a remembers as its own.
func ownCount(a *activation) int { return a.own.Len() }

// TestOwnSentRemembersOnlyStoredReplies: a reply whose completion the
// lease refuses (another owner took the identity over while the webhook
// was answering) is never published, and the activation does not keep it
// as its own; the replies it does publish are remembered until the
// subscription brings them back, and then forgotten.
func TestOwnSentRemembersOnlyStoredReplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	entered, release := make(chan struct{}), make(chan struct{})
	tg.SetStatus(func(content string) int {
		if content == "held" {
			close(entered)
			<-release
		}
		return 200
	})
	rt, reg := e.runtime("n1", nil)
	a := rt.activation(b.ID)
	if a == nil {
		t.Fatalf("bridge %s not active after start", b.ID)
	}
	c := e.sender()
	ctx := context.Background()
	for _, m := range []string{"one", "two"} {
		if _, err := c.SendText(ctx, b.Address, m); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) == 2 }, "replies to two messages")
	testkit.WaitFor(t, 10*time.Second, func() bool { return ownCount(a) == 0 },
		"the activation to forget its replies once they came back")

	if _, err := c.SendText(ctx, b.Address, "held"); err != nil {
		t.Fatalf("send: %v", err)
	}
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the webhook never got the held message")
	}
	// Another owner takes the identity over while the webhook answers.
	if _, err := e.store.Pool().Exec(ctx, `UPDATE identity_leases SET owner = 'other/x', epoch = epoch + 1 WHERE identity = $1`, b.ID); err != nil {
		t.Fatal(err)
	}
	close(release)
	testkit.WaitFor(t, 20*time.Second, func() bool {
		return counterValue(t, reg, "bridge_actor_stale_activations_total", nil) == 1
	}, "the activation to stop as stale once its completion was refused")
	if n := ownCount(a); n != 0 {
		t.Fatalf("the fenced activation remembers %d envelopes as its own, want 0: its reply was never stored", n)
	}
	if got := messagesFrom(t, c, b.Address); len(got) != 2 {
		t.Fatalf("replies %v: the fenced completion's reply was published", got)
	}
}

// TestSentNsIsNeverNegative: a creation time past the largest signed
// nanosecond count (a header's unsigned field, chosen by the sender) is
// stored as 0, which the deliveries table accepts, not as a negative
// number it refuses on every try.
func TestSentNsIsNeverNegative(t *testing.T) {
	past := time.Unix(0, int64(^uint64(0)>>1)+0) // the largest count
	if got := sentNs(past); got != past.UnixNano() {
		t.Fatalf("sentNs(%v) = %d, want %d", past, got, past.UnixNano())
	}
	var created uint64 = 1<<63 + 5
	wrapped := time.Unix(0, int64(created))
	if got := sentNs(wrapped); got != 0 {
		t.Fatalf("a creation time of %d ns is stored as %d, want 0", created, got)
	}
}
