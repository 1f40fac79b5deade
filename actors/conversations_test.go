package actors

import (
	"context"
	"sync"
	"testing"
	"time"

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
	br, _ := e.bridge("http://127.0.0.1:1/", persistence.FormatJSON, nil)
	raw, err := e.store.KeyBundle(ctx, br.ID)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := keys.UnmarshalPrivateKeyBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	cs := newConversations(br.ID, bundle, e.xmtp, e.store)
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
