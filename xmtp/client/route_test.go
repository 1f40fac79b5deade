package client

import (
	"errors"
	"slices"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

func queryTopic(t testing.TB, conn *api.Client, topic string) []*messagev1.Envelope {
	t.Helper()
	var out []*messagev1.Envelope
	if err := conn.QueryAll(testkit.Context(t, 45*time.Second), topic, 0, 0, func(e *messagev1.Envelope) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("query %s: %v", topic, err)
	}
	return out
}

// TestHandleRoutesEnvelopes drives a Client the way a node that multiplexes
// one subscription does: envelopes come from outside and go to Handle.
func TestHandleRoutesEnvelopes(t *testing.T) {
	n := startNode(t)
	alice, bob := newClient(t, n), newClient(t, n)
	ctx := testkit.Context(t, 45*time.Second)
	sent, err := alice.Send(ctx, bob.Address(), content.Text("routed"), "r-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := bob.Topics(); len(got) != 1 || got[0] != keys.InviteTopic(bob.Address()) {
		t.Fatalf("topics before invitation: %v", got)
	}
	invs := queryTopic(t, alice.api, keys.InviteTopic(bob.Address()))
	if len(invs) != 1 {
		t.Fatalf("%d invitations", len(invs))
	}
	_, conv, err := bob.Handle(invs[0])
	if err != nil || conv == nil || conv.Topic != sent.Topic || conv.ID != "r-1" {
		t.Fatalf("handle invitation: %+v %v", conv, err)
	}
	if _, again, _ := bob.Handle(invs[0]); again != nil {
		t.Fatal("known invitation reported as new")
	}
	if !slices.Contains(bob.Topics(), sent.Topic) {
		t.Fatalf("topics after invitation: %v", bob.Topics())
	}
	msgs := queryTopic(t, alice.api, sent.Topic)
	m, _, err := bob.Handle(msgs[0])
	if err != nil || m == nil || m.ConversationID != "r-1" || m.Sender != alice.Address() {
		t.Fatalf("handle message: %+v %v", m, err)
	}
	// Alice's own message is not inbound for her.
	aliceConv, _ := alice.Conversation(ctx, bob.Address(), "r-1")
	if own, _, err := alice.Handle(msgs[0]); own != nil || err != nil || aliceConv == nil {
		t.Fatalf("own message: %+v %v", own, err)
	}
	// A tampered envelope is rejected, typed and counted.
	bad := &messagev1.Envelope{ContentTopic: sent.Topic, TimestampNs: msgs[0].TimestampNs, Message: append([]byte(nil), msgs[0].Message...)}
	bad.Message[len(bad.Message)-40] ^= 0xff
	if _, _, err := bob.Handle(bad); err == nil {
		t.Fatal("tampered envelope accepted")
	}
	if snap := bob.Rejections().Snapshot(); snap["tampered"]+snap["truncated"] != 1 {
		t.Fatalf("rejections %v", snap)
	}

	// A conversation stored as bytes and restored into a fresh client
	// still reads the messages.
	data, err := conv.MarshalInvitation()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := conversation.RestoreBytes(conv.Self, conv.Peer, conv.Created, data)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := New(Config{Bundle: bob.bundle, API: bob.api})
	if err != nil {
		t.Fatal(err)
	}
	if !fresh.AddConversation(restored) || fresh.AddConversation(restored) {
		t.Fatal("AddConversation novelty")
	}
	got, err := fresh.Messages(ctx, restored.Topic)
	if err != nil || len(got) != 1 {
		t.Fatalf("restored read: %d %v", len(got), err)
	}
	if _, err := fresh.Messages(ctx, keys.ConversationTopic("ff")); !errors.Is(err, ErrUnknownConversation) {
		t.Fatalf("unknown topic: %v", err)
	}
}

// TestHandlePassesOverItsOwnEnvelopes: an envelope the client published
// comes back on its subscription and is passed over by its bytes, without
// being opened; the same bytes a second time are opened and passed over
// as a message of its own; a message of the peer is opened.
func TestHandlePassesOverItsOwnEnvelopes(t *testing.T) {
	n := startNode(t)
	alice, bob := newClient(t, n), newClient(t, n)
	ctx := testkit.Context(t, 45*time.Second)
	sent, err := alice.Send(ctx, bob.Address(), content.Text("mine"), "")
	if err != nil {
		t.Fatal(err)
	}
	if alice.own.Len() != 1 {
		t.Fatalf("alice remembers %d envelopes after one send, want 1", alice.own.Len())
	}
	own := queryTopic(t, alice.api, sent.Topic)
	if len(own) != 1 {
		t.Fatalf("%d envelopes on the topic", len(own))
	}
	if m, conv, err := alice.Handle(own[0]); m != nil || conv != nil || err != nil {
		t.Fatalf("alice's own envelope: %+v %+v %v", m, conv, err)
	}
	if alice.own.Len() != 0 {
		t.Fatalf("alice still remembers %d envelopes after hers came back", alice.own.Len())
	}
	if m, _, err := alice.Handle(own[0]); m != nil || err != nil {
		t.Fatalf("alice's own envelope, opened: %+v %v", m, err)
	}
	invs := queryTopic(t, bob.api, keys.InviteTopic(bob.Address()))
	if _, _, err := bob.Handle(invs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Reply(ctx, sent.Topic, content.Text("yours")); err != nil {
		t.Fatal(err)
	}
	msgs := queryTopic(t, alice.api, sent.Topic)
	m, _, err := alice.Handle(msgs[len(msgs)-1])
	if err != nil || m == nil || m.Sender != bob.Address() {
		t.Fatalf("bob's reply: %+v %v", m, err)
	}
}

// BenchmarkHandleOwnEnvelope: passing over an envelope the client
// published, against opening one of the peer's.
func BenchmarkHandleOwnEnvelope(b *testing.B) {
	n := startNode(b)
	alice, bob := newClient(b, n), newClient(b, n)
	ctx := testkit.Context(b, 45*time.Second)
	sent, err := alice.Send(ctx, bob.Address(), content.Text("mine"), "")
	if err != nil {
		b.Fatal(err)
	}
	own := queryTopic(b, alice.api, sent.Topic)[0]
	b.Run("own", func(b *testing.B) {
		for range b.N {
			alice.own.Add(own.Message)
			if m, _, err := alice.Handle(own); m != nil || err != nil {
				b.Fatal(m, err)
			}
		}
	})
	b.Run("opened", func(b *testing.B) {
		for range b.N {
			if m, _, err := alice.Handle(own); m != nil || err != nil {
				b.Fatal(m, err)
			}
		}
	})
}
