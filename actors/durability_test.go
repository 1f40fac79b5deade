package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// TestNewConversationsMidBurst: many senders, each starting its first
// conversation while traffic flows; not one message is missed.
func TestNewConversationsMidBurst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, func(f *persistence.ForwardConfig) { f.ReplyMode = persistence.ReplyNone })
	tg.SetSecret(secret)
	e.runtime("n1", nil)
	const senders, each = 24, 5
	clients := make([]*client.Client, senders)
	for i := range clients {
		clients[i] = e.sender()
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Later senders start later, so their first conversation
			// opens while the others' traffic flows.
			time.Sleep(time.Duration(i) * 15 * time.Millisecond)
			for j := 0; j < each; j++ {
				if _, err := c.SendText(context.Background(), b.Address, fmt.Sprintf("s%d-m%d", i, j)); err != nil {
					t.Errorf("send: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	testkit.WaitFor(t, 30*time.Second, func() bool {
		for i := 0; i < senders; i++ {
			for j := 0; j < each; j++ {
				if !tg.Has(fmt.Sprintf("s%d-m%d", i, j)) {
					return false
				}
			}
		}
		return true
	}, "every message")
}

// TestRestartMidTraffic: the runtime stops in the middle of a burst and a
// new runtime (another node id) starts on the same database. Every message
// reaches the target at least once, repeats carry the same webhook-id, and
// every message gets exactly one reply.
func TestRestartMidTraffic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	rt1, _ := e.runtime("n1", nil)
	const senders, each = 10, 30
	clients := make([]*client.Client, senders)
	for i := range clients {
		clients[i] = e.sender()
	}
	var wg sync.WaitGroup
	half := make(chan struct{})
	var once sync.Once
	var sent sync.WaitGroup
	sent.Add(senders * each / 2)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				if _, err := c.SendText(context.Background(), b.Address, fmt.Sprintf("s%d-m%d", i, j)); err != nil {
					t.Errorf("send: %v", err)
				}
				if j < each/2 {
					sent.Done()
				}
			}
		}()
	}
	go func() {
		sent.Wait()
		once.Do(func() { close(half) })
	}()
	<-half
	var first Status
	testkit.WaitFor(t, 30*time.Second, func() bool {
		var ok bool
		first, ok = rt1.Status(b.ID)
		return ok
	}, "the bridge active on the first runtime")
	if first.Node != "n1" || first.Epoch != 1 {
		t.Fatalf("status on first runtime = %+v; want node n1, epoch 1", first)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt1.Stop(ctx); err != nil {
		t.Fatalf("stop first runtime: %v", err)
	}
	rt2, _ := e.runtime("n2", nil)
	wg.Wait()
	// The hand-over is one change of hands: the next epoch, exactly.
	if st, ok := rt2.Status(b.ID); !ok || st.Node != "n2" || st.Epoch != first.Epoch+1 {
		t.Fatalf("status on second runtime = %+v, %v; want node n2, epoch %d", st, ok, first.Epoch+1)
	}
	testkit.WaitFor(t, 60*time.Second, func() bool {
		for i := 0; i < senders; i++ {
			for j := 0; j < each; j++ {
				if !tg.Has(fmt.Sprintf("s%d-m%d", i, j)) {
					return false
				}
			}
		}
		return true
	}, "every message")
	testkit.WaitFor(t, 60*time.Second, func() bool {
		for _, c := range clients {
			if len(messagesFrom(t, c, b.Address)) < each {
				return false
			}
		}
		return true
	}, "every reply")
	for i, c := range clients {
		got := messagesFrom(t, c, b.Address)
		seen := map[string]int{}
		for _, r := range got {
			seen[r]++
		}
		for j := 0; j < each; j++ {
			if n := seen[fmt.Sprintf("echo: s%d-m%d", i, j)]; n != 1 {
				t.Fatalf("sender %d message %d got %d replies", i, j, n)
			}
		}
		if len(got) != each {
			t.Fatalf("sender %d got %d replies, want %d", i, len(got), each)
		}
	}
	if ids := tg.IDs(); len(ids) != senders*each {
		t.Fatalf("distinct webhook-ids = %d, want %d", len(ids), senders*each)
	}
}

// TestOutboxRepublishIsIdempotent: publishing an outbox reply again, as
// recovery does, stores nothing new, because the envelope is the same.
func TestOutboxRepublishIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	e.runtime("n1", nil)
	c := e.sender()
	sent, err := c.SendText(context.Background(), b.Address, "once")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) == 1 }, "reply")
	ctx := context.Background()
	ds, _, err := e.store.ListDeliveries(ctx, e.account.ID, b.ID, "", persistence.Page{})
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries = %d, %v", len(ds), err)
	}
	// The reply is recorded as sent just after its publish returned, so
	// the sender can see it a moment before the row says so.
	var replies []persistence.Reply
	testkit.WaitFor(t, 10*time.Second, func() bool {
		replies, err = e.store.RepliesOf(ctx, ds[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(replies) == 1 && replies[0].Status == persistence.ReplySent
	}, "the reply recorded as sent")
	env := &messagev1.Envelope{}
	if err := proto.Unmarshal(replies[0].Envelope, env); err != nil {
		t.Fatal(err)
	}
	bundle := mustBundle(t, e, b.ID)
	if err := e.xmtp.Publish(ctx, keys.NewAuthorizer(bundle), env); err != nil {
		t.Fatalf("publish again: %v", err)
	}
	var n int
	if err := e.xmtp.QueryAll(ctx, sent.Topic, 0, 0, func(*messagev1.Envelope) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("envelopes on the topic = %d, want 2 (message and one reply)", n)
	}
	if got := messagesFrom(t, c, b.Address); len(got) != 1 {
		t.Fatalf("replies seen = %v", got)
	}
}

func mustBundle(t *testing.T, e *env, bridgeID string) *keys.PrivateKeyBundle {
	t.Helper()
	raw, err := e.store.KeyBundle(context.Background(), bridgeID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.UnmarshalPrivateKeyBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStaleActivationStops: an activation whose lease another owner took
// stops itself, is counted, and no longer shows as hosted.
func TestStaleActivationStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	rt, reg := e.runtime("n1", func(c *Config) { c.LeaseTTL = 3 * time.Second })
	ctx := context.Background()
	if _, err := e.store.Pool().Exec(ctx, `UPDATE identity_leases SET expires_at = now() - interval '1 second' WHERE identity = $1`, b.ID); err != nil {
		t.Fatal(err)
	}
	l, err := e.store.AcquireLease(ctx, b.ID, "intruder", time.Minute)
	if err != nil {
		t.Fatalf("take lease: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		_, ok := rt.Status(b.ID)
		return !ok
	}, "stale activation to stop")
	if got := counterValue(t, reg, "bridge_actor_stale_activations_total", nil); got != 1 {
		t.Fatalf("stale activations = %v, want 1", got)
	}
	cur, err := e.store.LeaseOf(ctx, b.ID)
	if err != nil || cur.Owner != "intruder" || cur.Epoch != l.Epoch {
		t.Fatalf("lease after stale stop = %+v, %v", cur, err)
	}
}

// TestCanary: a message from the canary identity goes to the canary URL,
// never to the target, and its answer comes back as a reply.
func TestCanary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	canarySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "data": "canary-ack " + body.Message.Content})
	}))
	t.Cleanup(canarySrv.Close)
	probe := e.sender()
	_, reg := e.runtime("n1", func(c *Config) {
		c.CanaryAddress = probe.Address()
		c.CanaryURL = canarySrv.URL
	})
	if _, err := probe.SendText(context.Background(), b.Address, "nonce-1"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		got := messagesFrom(t, probe, b.Address)
		return len(got) == 1 && got[0] == "canary-ack nonce-1"
	}, "canary reply")
	if len(tg.Contents()) != 0 {
		t.Fatalf("canary message reached the target: %v", tg.Contents())
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return counterValue(t, reg, "bridge_actor_messages_out_total", map[string]string{"handler": "canary"}) == 1
	}, "canary messages out = 1")
}
