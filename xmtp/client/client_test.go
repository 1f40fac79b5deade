package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
	"github.com/xmtpbridge/bridge/xmtp/node"
	"github.com/xmtpbridge/bridge/xmtp/node/nodetest"
)

// startNode runs a local XMTP node with authn on over a fresh database.
func startNode(t testing.TB) *node.Node {
	t.Helper()
	db := pgtest.NewDatabase(t, pgtest.Template{Name: "xmtpclient", Migrate: node.Migrate})
	return nodetest.Start(t, node.Config{DatabaseURL: db, Authn: true})
}

func newClient(t testing.TB, n *node.Node) *Client {
	t.Helper()
	ctx := testkit.Context(t, 45*time.Second)
	conn, err := api.Dial(ctx, n.GRPCAddr())
	if err != nil {
		t.Fatalf("dial node: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	b, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Bundle: b, API: conn})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start client: %v", err)
	}
	return c
}

// next waits for the next inbound message.
func next(t *testing.T, ctx context.Context, ch <-chan *conversation.Message) *conversation.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("inbound stream closed")
		}
		return m
	case <-ctx.Done():
		t.Fatal("timed out waiting for an inbound message")
	}
	return nil
}

func TestTwoClientsConverseBothWays(t *testing.T) {
	n := startNode(t)
	alice, bob := newClient(t, n), newClient(t, n)
	ctx := testkit.Context(t, 45*time.Second)

	bobIn, err := bob.Inbound(ctx)
	if err != nil {
		t.Fatal(err)
	}
	aliceIn, err := alice.Inbound(ctx)
	if err != nil {
		t.Fatal(err)
	}

	for _, convID := range []string{"", "thread-7"} {
		sent, err := alice.Send(ctx, bob.Address(), content.Text("hello bob "+convID), convID)
		if err != nil {
			t.Fatalf("alice sends: %v", err)
		}
		m := next(t, ctx, bobIn)
		if s, _ := m.Content.Text(); s != "hello bob "+convID || m.Sender != alice.Address() || m.ID != sent.ID || m.Topic != sent.Topic {
			t.Fatalf("bob got %+v (%q)", m, s)
		}
		if _, err := bob.Reply(ctx, m.Topic, content.Text("hello alice "+convID)); err != nil {
			t.Fatalf("bob replies: %v", err)
		}
		r := next(t, ctx, aliceIn)
		if s, _ := r.Content.Text(); s != "hello alice "+convID || r.Sender != bob.Address() || r.Topic != sent.Topic {
			t.Fatalf("alice got %+v (%q)", r, s)
		}
	}

	// Both sides list both conversations and read their history.
	convs, err := bob.Conversations(ctx)
	if err != nil || len(convs) != 2 {
		t.Fatalf("bob's conversations: %d, %v", len(convs), err)
	}
	msgs, err := alice.Messages(ctx, convs[0].Topic)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("history: %d, %v", len(msgs), err)
	}
	// A second send reuses the conversation.
	again, err := alice.Send(ctx, bob.Address(), content.Text("again"), "")
	if err != nil || again.Topic != convs[0].Topic && again.Topic != convs[1].Topic {
		t.Fatalf("second send: %+v %v", again, err)
	}
	if m := next(t, ctx, bobIn); m.Topic != again.Topic {
		t.Fatalf("second message on %s", m.Topic)
	}
}

func TestSendToUnknownPeer(t *testing.T) {
	n := startNode(t)
	alice := newClient(t, n)
	stranger, _ := keys.Generate()
	_, err := alice.Send(testkit.Context(t, 45*time.Second), stranger.Address(), content.Text("anyone?"), "")
	if !errors.Is(err, ErrPeerNotOnNetwork) {
		t.Fatalf("send to stranger: %v", err)
	}
	if _, err := alice.Reply(testkit.Context(t, 45*time.Second), keys.ConversationTopic("00"), content.Text("x")); !errors.Is(err, ErrUnknownConversation) {
		t.Fatalf("reply to unknown topic: %v", err)
	}
}

func TestInboundClosesWithContext(t *testing.T) {
	n := startNode(t)
	alice := newClient(t, n)
	ctx, cancel := context.WithCancel(testkit.Context(t, 45*time.Second))
	ch, err := alice.Inbound(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := testkit.Context(t, 45*time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline.Done():
			t.Fatal("inbound stream did not close after its context ended")
		}
	}
}
