package actors

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// forgeInvitation acts as an attacker wallet: it seals a valid invitation
// to addr that names topic with a random key of its own, and publishes it
// to addr's invite topic.
func forgeInvitation(t *testing.T, e *env, addr, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	attacker, err := keys.Generate()
	if err != nil {
		t.Fatalf("generate attacker keys: %v", err)
	}
	c, err := client.New(client.Config{Bundle: attacker, API: e.xmtp})
	if err != nil {
		t.Fatalf("new attacker client: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start attacker client: %v", err)
	}
	victim, err := c.Contact(ctx, addr)
	if err != nil {
		t.Fatalf("attacker reads contact of %s: %v", addr, err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	inv := &mc.InvitationV1{Topic: topic, Encryption: &mc.InvitationV1_Aes256GcmHkdfSha256{
		Aes256GcmHkdfSha256: &mc.InvitationV1_Aes256GcmHkdfsha256{KeyMaterial: key},
	}}
	envs, _, err := conversation.SealInvitation(attacker, victim, inv, time.Now())
	if err != nil {
		t.Fatalf("seal forged invitation: %v", err)
	}
	if err := e.xmtp.Publish(ctx, keys.NewAuthorizer(attacker), envs[0]); err != nil {
		t.Fatalf("publish forged invitation: %v", err)
	}
}

// topicWith returns the topic of c's conversation with peer.
func topicWith(t *testing.T, c *client.Client, peer string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	convs, err := c.Conversations(ctx)
	if err != nil {
		t.Fatalf("list conversations: %v", err)
	}
	for _, conv := range convs {
		if conv.Peer == peer {
			return conv.Topic
		}
	}
	t.Fatalf("no conversation with %s", peer)
	return ""
}

func quarantineRows(t *testing.T, e *env, bridgeID string) int {
	t.Helper()
	var n int
	if err := e.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM quarantined_messages WHERE bridge_id = $1`, bridgeID).Scan(&n); err != nil {
		t.Fatalf("count quarantine rows: %v", err)
	}
	return n
}

// TestForgedInvitationCannotHijackTopic reproduces the topic hijack: an
// attacker reads a victim bridge's conversation topic and sends another
// bridge of the same node a validly sealed invitation naming it, with a key
// of its own. The invitation is refused and counted, the victim keeps
// receiving and answering every message, and the invited bridge replays
// nothing into quarantine. The same forgery naming a topic of two clients
// elsewhere is refused because its key opens none of the topic's messages.
func TestForgedInvitationCannotHijackTopic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	vt, xt := webhooktest.NewTarget(t, persistence.FormatJSON), webhooktest.NewTarget(t, persistence.FormatJSON)
	victim, vsecret := e.bridge(vt.URL, persistence.FormatJSON, nil)
	invited, xsecret := e.bridge(xt.URL, persistence.FormatJSON, nil)
	vt.SetSecret(vsecret)
	xt.SetSecret(xsecret)
	_, reg := e.runtime("node-a", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	p := e.sender()
	send := func(prefix string, n int) {
		for i := range n {
			if _, err := p.SendText(ctx, victim.Address, fmt.Sprintf("%s-%d", prefix, i)); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
	}
	send("before", 20)
	testkit.WaitFor(t, 60*time.Second, func() bool { return len(vt.Contents()) >= 20 }, "the first burst at the victim's target")
	topic := topicWith(t, p, victim.Address)

	forgeInvitation(t, e, invited.Address, topic)
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return counterValue(t, reg, "bridge_ingress_invitations_rejected_total", map[string]string{"reason": refusedTopicInUse}) == 1
	}, "the forged invitation refused as topic_in_use")

	// A topic of two clients the node does not host: the forged key opens
	// none of its messages.
	q := e.sender()
	for i := range 5 {
		if _, err := p.SendText(ctx, q.Address(), fmt.Sprintf("to q %d", i)); err != nil {
			t.Fatalf("send to q: %v", err)
		}
	}
	forgeInvitation(t, e, invited.Address, topicWith(t, p, q.Address()))
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return counterValue(t, reg, "bridge_ingress_invitations_rejected_total", map[string]string{"reason": refusedForeignKey}) == 1
	}, "the second forged invitation refused as foreign_key")

	send("after", 50)
	testkit.WaitFor(t, 90*time.Second, func() bool {
		return len(vt.Contents()) >= 70 && len(messagesFrom(t, p, victim.Address)) >= 70
	}, "every message at the victim's target and every reply")
	got := map[string]bool{}
	for _, c := range vt.Contents() {
		got[c] = true
	}
	replies := map[string]bool{}
	for _, r := range messagesFrom(t, p, victim.Address) {
		replies[r] = true
	}
	for _, prefix := range []string{"before", "after"} {
		n := 20
		if prefix == "after" {
			n = 50
		}
		for i := range n {
			m := fmt.Sprintf("%s-%d", prefix, i)
			if !got[m] {
				t.Errorf("victim's target never got %q", m)
			}
			if !replies["echo: "+m] {
				t.Errorf("victim never replied to %q", m)
			}
		}
	}
	if n := len(xt.Contents()); n != 0 {
		t.Errorf("the invited bridge forwarded %d messages of topics it is no party to", n)
	}
	if n := quarantineRows(t, e, invited.ID); n > replayQuarantineBudget {
		t.Errorf("the invited bridge wrote %d quarantine rows, want at most %d", n, replayQuarantineBudget)
	}
	convs, err := e.store.Conversations(ctx, invited.ID)
	if err != nil {
		t.Fatalf("conversations: %v", err)
	}
	if len(convs) != 0 {
		t.Errorf("the invited bridge stored %d conversations from forged invitations", len(convs))
	}
}

// TestTwoBridgesOnOneNodeConverse: two bridges of one node share their
// conversation's topic; 100 REST-path sends each way all arrive at the
// other bridge's target.
func TestTwoBridgesOnOneNodeConverse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at, bt := webhooktest.NewTarget(t, persistence.FormatJSON), webhooktest.NewTarget(t, persistence.FormatJSON)
	noReply := func(f *persistence.ForwardConfig) { f.ReplyMode = persistence.ReplyNone }
	a, asecret := e.bridge(at.URL, persistence.FormatJSON, noReply)
	b, bsecret := e.bridge(bt.URL, persistence.FormatJSON, noReply)
	at.SetSecret(asecret)
	bt.SetSecret(bsecret)
	rt, reg := e.runtime("node-a", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, dir := range []struct{ from, to, prefix string }{{a.ID, b.Address, "a->b"}, {b.ID, a.Address, "b->a"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if _, err := rt.Send(ctx, dir.from, dir.to, content.Text(fmt.Sprintf("%s %d", dir.prefix, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("send: %v", err)
	}
	has := func(tg *webhooktest.Target, prefix string) int {
		seen := map[string]bool{}
		for _, c := range tg.Contents() {
			seen[c] = true
		}
		k := 0
		for i := range n {
			if seen[fmt.Sprintf("%s %d", prefix, i)] {
				k++
			}
		}
		return k
	}
	testkit.WaitFor(t, 90*time.Second, func() bool {
		return has(bt, "a->b") == n && has(at, "b->a") == n
	}, "all 200 messages at the other bridge's target")
	if got := counterValue(t, reg, "bridge_ingress_topics", nil); got != 3 {
		t.Errorf("bridge_ingress_topics = %v, want 3 (two invite topics and the one shared conversation topic)", got)
	}
	if got := counterValue(t, reg, "bridge_actor_envelopes_rejected_total", nil); got != 0 {
		t.Errorf("%v envelopes rejected on a shared topic both bridges open", got)
	}
	for _, id := range []string{a.ID, b.ID} {
		if n := quarantineRows(t, e, id); n != 0 {
			t.Errorf("bridge %s quarantined %d envelopes", id, n)
		}
	}

	topic := ""
	for _, c := range rt.activation(a.ID).convs.all() {
		topic = c.Topic
	}
	if got := rt.ingress.holders(topic); got != 2 {
		t.Errorf("the shared topic has %d holders, want 2", got)
	}
	// One holder leaving keeps the topic for the other. A disabled
	// bridge stays stopped.
	if err := e.store.SetBridgeStatus(ctx, a.ID, persistence.StatusDisabled); err != nil {
		t.Fatalf("disable a: %v", err)
	}
	if err := rt.Deactivate(ctx, a.ID); err != nil {
		t.Fatalf("deactivate a: %v", err)
	}
	if got := counterValue(t, reg, "bridge_ingress_topics", nil); got != 2 {
		t.Errorf("bridge_ingress_topics after a left = %v, want 2", got)
	}
	p := e.sender()
	if _, err := p.SendText(ctx, b.Address, "still here"); err != nil {
		t.Fatalf("send: %v", err)
	}
	testkit.WaitFor(t, 30*time.Second, func() bool { return bt.Has("still here") }, "b still receiving after a left")
	if got := rt.ingress.holders(topic); got != 1 {
		t.Errorf("the shared topic has %d holders after a left, want 1", got)
	}
	// The last holder leaving takes every topic out of the subscription.
	if err := e.store.SetBridgeStatus(ctx, b.ID, persistence.StatusDisabled); err != nil {
		t.Fatalf("disable b: %v", err)
	}
	if err := rt.Deactivate(ctx, b.ID); err != nil {
		t.Fatalf("deactivate b: %v", err)
	}
	if got := counterValue(t, reg, "bridge_ingress_topics", nil); got != 0 {
		t.Errorf("bridge_ingress_topics after both left = %v, want 0", got)
	}
}

// TestStaleForeignConversationIsNoFault: a bridge that holds another
// bridge's topic with a wrong key (a forged conversation stored before
// invitations were checked) cannot open that topic's messages. That is
// counted as not_party, never quarantined, and the real party receives
// everything.
func TestStaleForeignConversationIsNoFault(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	vt, xt := webhooktest.NewTarget(t, persistence.FormatJSON), webhooktest.NewTarget(t, persistence.FormatJSON)
	victim, vsecret := e.bridge(vt.URL, persistence.FormatJSON, nil)
	invited, xsecret := e.bridge(xt.URL, persistence.FormatJSON, nil)
	vt.SetSecret(vsecret)
	xt.SetSecret(xsecret)
	rt, reg := e.runtime("node-a", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := e.sender()
	if _, err := p.SendText(ctx, victim.Address, "first"); err != nil {
		t.Fatalf("send: %v", err)
	}
	testkit.WaitFor(t, 30*time.Second, func() bool { return vt.Has("first") }, "the first message at the victim")
	topic := topicWith(t, p, victim.Address)

	// Disabled while its conversation is planted, so no reconcile round
	// starts it in between.
	if err := e.store.SetBridgeStatus(ctx, invited.ID, persistence.StatusDisabled); err != nil {
		t.Fatalf("disable: %v", err)
	}
	if err := rt.Deactivate(ctx, invited.ID); err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	raw, err := proto.Marshal(&mc.InvitationV1{Topic: topic, Encryption: &mc.InvitationV1_Aes256GcmHkdfSha256{
		Aes256GcmHkdfSha256: &mc.InvitationV1_Aes256GcmHkdfsha256{KeyMaterial: key},
	}})
	if err != nil {
		t.Fatalf("encode invitation: %v", err)
	}
	if err := e.store.SaveConversation(ctx, persistence.Conversation{BridgeID: invited.ID, Topic: topic,
		PeerAddress: p.Address(), CreatedNs: time.Now().UnixNano(), KeyMaterial: raw}); err != nil {
		t.Fatalf("save forged conversation: %v", err)
	}
	if err := e.store.SetBridgeStatus(ctx, invited.ID, persistence.StatusActive); err != nil {
		t.Fatalf("enable: %v", err)
	}
	if err := rt.Activate(ctx, invited.ID); err != nil {
		t.Fatalf("activate: %v", err)
	}
	for i := range 30 {
		if _, err := p.SendText(ctx, victim.Address, fmt.Sprintf("m-%d", i)); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	testkit.WaitFor(t, 60*time.Second, func() bool {
		return len(vt.Contents()) >= 31 && len(messagesFrom(t, p, victim.Address)) >= 31
	}, "every message at the victim and its replies")
	for i := range 30 {
		if !vt.Has(fmt.Sprintf("m-%d", i)) {
			t.Errorf("victim's target never got m-%d", i)
		}
	}
	testkit.WaitFor(t, 30*time.Second, func() bool {
		// the first message in its catch-up, 30 live, and the victim's 31 replies
		return counterValue(t, reg, "bridge_actor_envelopes_rejected_total", map[string]string{"reason": notParty}) >= 62
	}, "the invited bridge counting what it cannot open")
	if n := quarantineRows(t, e, invited.ID); n != 0 {
		t.Errorf("the invited bridge quarantined %d envelopes sealed for another party", n)
	}
	if n := quarantineRows(t, e, victim.ID); n != 0 {
		t.Errorf("the victim quarantined %d envelopes", n)
	}
	if n := len(xt.Contents()); n != 0 {
		t.Errorf("the invited bridge forwarded %d messages", n)
	}
}

// TestInvitedTopicReplayQuarantinesABoundedNumber: a peer invites a
// bridge to a real conversation whose history is one message and then 300
// undecryptable envelopes. The invitation is accepted (its key opens the
// message), the message is forwarded, and the replay of the history writes
// at most replayQuarantineBudget quarantine rows; a re-activation's
// catch-up adds at most as many again.
func TestInvitedTopicReplayQuarantinesABoundedNumber(t *testing.T) {
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	br, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	rt, reg := e.runtime("node-a", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	peer, err := keys.Generate()
	if err != nil {
		t.Fatalf("generate keys: %v", err)
	}
	pc, err := client.New(client.Config{Bundle: peer, API: e.xmtp})
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	if err := pc.Start(ctx); err != nil {
		t.Fatalf("start client: %v", err)
	}
	contact, err := pc.Contact(ctx, br.Address)
	if err != nil {
		t.Fatalf("contact: %v", err)
	}
	// The history is an hour old, older than the node subscription's own
	// back-fill of a topic it starts carrying: only the replay reads it.
	now := time.Now().Add(-time.Hour)
	conv, invites, err := conversation.Invite(peer, contact, "", nil, time.Now())
	if err != nil {
		t.Fatalf("invite: %v", err)
	}
	first, err := conv.Seal(peer, content.Text("the real one"), now.Add(time.Millisecond))
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	auth := keys.NewAuthorizer(peer)
	if err := e.xmtp.Publish(ctx, auth, first); err != nil {
		t.Fatalf("publish: %v", err)
	}
	const junk = 300
	batch := make([]*messagev1.Envelope, 0, 10) // within the node's envelopes per publish
	for i := range junk {
		raw := make([]byte, 64)
		_, _ = rand.Read(raw)
		batch = append(batch, &messagev1.Envelope{ContentTopic: conv.Topic,
			TimestampNs: uint64(now.Add(time.Duration(i+2) * time.Millisecond).UnixNano()), Message: raw})
		if len(batch) == cap(batch) {
			if err := e.xmtp.Publish(ctx, auth, batch...); err != nil {
				t.Fatalf("publish junk: %v", err)
			}
			batch = batch[:0]
		}
	}
	if err := e.xmtp.Publish(ctx, auth, invites[0]); err != nil {
		t.Fatalf("publish invitation: %v", err)
	}
	testkit.WaitFor(t, 60*time.Second, func() bool {
		return tg.Has("the real one") && counterValue(t, reg, "bridge_actor_envelopes_rejected_total", nil) >= junk
	}, "the real message forwarded and the junk counted")
	if n := quarantineRows(t, e, br.ID); n > replayQuarantineBudget {
		t.Fatalf("the replay of an invited topic wrote %d quarantine rows, want at most %d", n, replayQuarantineBudget)
	}
	if got := counterValue(t, reg, "bridge_ingress_invitations_rejected_total", nil); got != 0 {
		t.Fatalf("a real invitation was refused (%v)", got)
	}

	// The catch-up of a new activation reads the topic again from a
	// little before its cursor, junk included (all but the envelope at
	// the cursor, which it skips).
	if err := rt.Deactivate(ctx, br.ID); err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	before := counterValue(t, reg, "bridge_actor_envelopes_rejected_total", nil)
	if err := rt.Activate(ctx, br.ID); err != nil {
		t.Fatalf("activate: %v", err)
	}
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return counterValue(t, reg, "bridge_actor_envelopes_rejected_total", nil) >= before+junk-1
	}, "the catch-up counting the junk again")
	if n := quarantineRows(t, e, br.ID); n > 2*replayQuarantineBudget {
		t.Fatalf("after a re-activation %d quarantine rows, want at most %d", n, 2*replayQuarantineBudget)
	}
}
