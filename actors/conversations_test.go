package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// Many starts at once, eight for each of three new peers: each peer gets
// one conversation, reported created once and stored once, and every
// start with that peer returns it. Starts with different peers run side
// by side; the ones with the same peer wait for the first.
func TestStartMakesOneConversationPerPeer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	br, cs := bridgeConversations(t, e)
	peers := []string{e.sender().Address(), e.sender().Address(), e.sender().Address()}
	type result struct {
		conv    *conversation.Conversation
		created bool
		err     error
	}
	results := make([][]result, len(peers))
	var wg sync.WaitGroup
	for p, peer := range peers {
		results[p] = make([]result, 8)
		for i := range results[p] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conv, created, err := cs.start(ctx, peer, time.Now())
				results[p][i] = result{conv, created, err}
			}()
		}
	}
	wg.Wait()
	for p, rs := range results {
		created := 0
		for _, r := range rs {
			if r.err != nil {
				t.Fatalf("start with %s: %v", peers[p], r.err)
			}
			if r.conv != rs[0].conv {
				t.Fatalf("starts with %s returned two conversations, %s and %s", peers[p], rs[0].conv.Topic, r.conv.Topic)
			}
			if r.created {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("the conversation with %s was reported created %d times, want once", peers[p], created)
		}
		if got := cs.withPeer(keys.ChecksumAddress(peers[p])); got != rs[0].conv {
			t.Fatalf("withPeer(%s) is %v, want the started conversation", peers[p], got)
		}
	}
	stored, err := e.store.Conversations(ctx, br.ID)
	if err != nil || len(stored) != len(peers) {
		t.Fatalf("%d conversations stored (%v), want %d", len(stored), err, len(peers))
	}
}

// TestContactIsPublishedOncePerNetwork: an identity publishes its contact
// bundle once on a network, and again when the node is pointed at another
// network, which the store has no record of giving it.
func TestContactIsPublishedOncePerNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	br, cs := bridgeConversations(t, e)
	contacts := func() int {
		t.Helper()
		n := 0
		if err := e.xmtp.QueryAll(ctx, keys.ContactTopic(br.Address), 0, 0, func(*messagev1.Envelope) error {
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// publish is what an activation does: read the recorded digest, then
	// publish unless it names this bundle on this network.
	publish := func(network string) {
		t.Helper()
		st, err := e.store.ActivationState(ctx, br.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.publishContact(ctx, st.ContactDigest, network, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	before := contacts()
	publish("xmtp-a:5556")
	first := contacts()
	if first <= before {
		t.Fatalf("%d contact envelopes after the first publication, %d before", first, before)
	}
	publish("xmtp-a:5556")
	if n := contacts(); n != first {
		t.Fatalf("%d contact envelopes after publishing on the same network again, want %d", n, first)
	}
	publish("xmtp-b:5556")
	if n := contacts(); n <= first {
		t.Fatalf("%d contact envelopes after the node moved to another network, want more than %d", n, first)
	}
}

// bridgeConversations makes a bridge and the conversations of its
// identity, as its activation would.
func bridgeConversations(t *testing.T, e *env) (persistence.Bridge, *conversations) {
	t.Helper()
	br, _ := e.bridge("http://127.0.0.1:1/", persistence.FormatJSON, nil)
	raw, err := e.store.KeyBundle(context.Background(), br.ID)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := keys.UnmarshalPrivateKeyBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	return br, newConversations(br.ID, bundle, e.xmtp, e.store)
}
