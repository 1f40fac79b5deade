package actors

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// TestChildPanicAndPoison: a forward child that panics once is restarted
// (metric +1) and the message still goes through; a message that makes it
// panic every time is quarantined as a dead letter; another bridge's
// traffic flows throughout.
func TestChildPanicAndPoison(t *testing.T) {
	e := newEnv(t)
	tg1 := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	tg2 := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b1, s1 := e.bridge(tg1.URL, persistence.FormatRelaycc, nil)
	b2, s2 := e.bridge(tg2.URL, persistence.FormatRelaycc, nil)
	tg1.SetSecret(s1)
	tg2.SetSecret(s2)
	var panickedOnce atomic.Bool
	_, reg := e.runtime("n1", func(c *Config) {
		c.PoisonThreshold = 3
		c.OnForward = func(d persistence.Delivery) {
			if d.BridgeID != b1.ID {
				return
			}
			_, text, _, _ := decodePayload(d.Payload)
			if text == "panic once" && panickedOnce.CompareAndSwap(false, true) {
				panic("injected failure")
			}
			if text == "poison" {
				panic("poison message")
			}
		}
	})
	c := e.sender()
	other := e.sender()
	ctx := context.Background()
	if _, err := c.SendText(ctx, b1.Address, "panic once"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return tg1.Has("panic once") }, "message after restart")
	if got := counterValue(t, reg, "bridge_actor_restarts_total", map[string]string{"handler": "forward"}); got < 1 {
		t.Fatalf("restarts = %v, want >= 1", got)
	}
	if _, err := c.SendText(ctx, b1.Address, "poison"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := other.SendText(ctx, b2.Address, "other "+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.SendText(ctx, b1.Address, "after poison"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		qs, err := e.store.QuarantinedMessages(ctx, b1.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if strings.Contains(q.Reason, "poison message") {
				return true
			}
		}
		return false
	}, "quarantine")
	testkit.WaitFor(t, 20*time.Second, func() bool { return tg1.Has("after poison") }, "message after poison")
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(tg2.Contents()) == 5 }, "other bridge's traffic")
	if tg1.Has("poison") {
		t.Fatal("poison message reached the target")
	}
	// The strategy counts a quarantine once the callback that stored it
	// has returned.
	testkit.WaitFor(t, 10*time.Second, func() error {
		if q := counterValue(t, reg, "bridge_actor_quarantined_total", nil); q != 1 {
			return fmt.Errorf("%v quarantines counted, want 1", q)
		}
		return nil
	}, "quarantine metric")
	dead, _, err := e.store.ListDeliveries(ctx, e.account.ID, b1.ID, persistence.DeliveryDead, persistence.Page{})
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters = %d (%v), want the poison message", len(dead), err)
	}
	if _, text, _, _ := decodePayload(dead[0].Payload); text != "poison" {
		t.Fatalf("dead letter = %q", text)
	}
}

// TestReverse: a reverse command from the API identity is sent on as the
// bridge and reaches a Go client; a command from anyone else is forwarded
// as an ordinary message; Send over the runtime reaches the client too.
func TestReverse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	apiID := e.sender()
	recipient := e.sender()
	stranger := e.sender()
	rt, reg := e.runtime("n1", func(c *Config) { c.APIAddress = apiID.Address() })
	ctx := context.Background()
	cmd := `{"targetAddress":"` + recipient.Address() + `","message":"from the api"}`
	if _, err := apiID.SendText(ctx, b.Address, cmd); err != nil {
		t.Fatal(err)
	}
	fake := `{"targetAddress":"` + recipient.Address() + `","message":"forged"}`
	if _, err := stranger.SendText(ctx, b.Address, fake); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		got := messagesFrom(t, recipient, b.Address)
		return len(got) == 1 && got[0] == "from the api"
	}, "reverse message")
	testkit.WaitFor(t, 20*time.Second, func() bool { return tg.Has(fake) }, "stranger's command forwarded")
	if tg.Has(cmd) {
		t.Fatal("the API identity's command was forwarded to the target")
	}
	id, err := rt.Send(ctx, b.ID, recipient.Address(), content.Text("over rest"))
	if err != nil || id == "" {
		t.Fatalf("send = %q, %v", id, err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		got := messagesFrom(t, recipient, b.Address)
		return len(got) == 2 && got[1] == "over rest"
	}, "rest message")
	if got := messagesFrom(t, recipient, b.Address); strings.Contains(joined(got), "forged") {
		t.Fatalf("forged command was sent: %v", got)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return counterValue(t, reg, "bridge_actor_messages_out_total", map[string]string{"handler": "reverse"}) == 2
	}, "reverse messages out = 2")
}
