package persistence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestTombstoneKeepsKeysSealedAndAnswersBounded deletes a bridge with
// tombstones on and checks that the key bundle and conversations move to
// the tombstone still sealed (and open with the same additional data),
// that each conversation is claimed once, that a tombstone answers at most
// MaxTombstoneReplies conversations, and that an expired tombstone is
// deleted with its keys and answers nothing.
func TestTombstoneKeepsKeysSealedAndAnswersBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	s.SetTombstoneFor(time.Hour)
	a, _ := newAccount(t, s, "alice")
	bundle := []byte("the-private-bundle-of-the-bridge")
	b, _ := newBridge(t, s, a.ID, bundle)
	if err := s.SaveConversation(ctx, Conversation{BridgeID: b.ID, Topic: "/xmtp/0/m-kept/proto", PeerAddress: randomAddress(t),
		CreatedNs: 5, KeyMaterial: []byte("conversation-key-material")}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBridge(ctx, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KeyBundle(ctx, b.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the bridge's own key after the delete: %v", err)
	}
	live, err := s.LiveTombstones(ctx)
	if err != nil || len(live) != 1 || live[0].Address != b.Address || len(live[0].Topics) != 1 {
		t.Fatalf("live tombstones: %+v %v", live, err)
	}
	if got, err := s.TombstoneKey(ctx, b.ID); err != nil || !bytes.Equal(got, bundle) {
		t.Fatalf("tombstone key: %q %v", got, err)
	}
	if c, err := s.TombstoneConversation(ctx, b.ID, "/xmtp/0/m-kept/proto"); err != nil || string(c.KeyMaterial) != "conversation-key-material" {
		t.Fatalf("tombstone conversation: %+v %v", c, err)
	}
	var raw []byte
	if err := s.pool.QueryRow(ctx, `SELECT key_ciphertext FROM bridge_tombstones`).Scan(&raw); err != nil || bytes.Contains(raw, bundle) {
		t.Fatalf("the tombstone holds the key in clear (%v)", err)
	}

	if first, err := s.ClaimTombstoneReply(ctx, b.ID, "/xmtp/0/m-kept/proto"); err != nil || !first {
		t.Fatalf("first claim: %v %v", first, err)
	}
	if again, err := s.ClaimTombstoneReply(ctx, b.ID, "/xmtp/0/m-kept/proto"); err != nil || again {
		t.Fatalf("second claim of the same conversation: %v %v", again, err)
	}
	// A hostile sender opening conversation after conversation gets at
	// most MaxTombstoneReplies answers, and the table stays that small.
	granted := 1
	for i := 0; i < MaxTombstoneReplies+20; i++ {
		ok, err := s.ClaimTombstoneReply(ctx, b.ID, fmt.Sprintf("/xmtp/0/m-%d/proto", i))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			granted++
		}
	}
	var rows int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM tombstone_replies`).Scan(&rows); err != nil || granted != MaxTombstoneReplies || rows != MaxTombstoneReplies {
		t.Fatalf("%d claims granted, %d rows (%v); want %d", granted, rows, err, MaxTombstoneReplies)
	}

	if _, err := s.pool.Exec(ctx, `UPDATE bridge_tombstones SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.ClaimTombstoneReply(ctx, b.ID, "/xmtp/0/m-late/proto"); err != nil || ok {
		t.Fatalf("a claim on an expired tombstone: %v %v", ok, err)
	}
	if live, err := s.LiveTombstones(ctx); err != nil || len(live) != 0 {
		t.Fatalf("expired tombstones listed: %+v %v", live, err)
	}
	if n, err := s.PurgeTombstones(ctx); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM bridge_tombstones) + (SELECT count(*) FROM tombstone_conversations)
		+ (SELECT count(*) FROM tombstone_replies)`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d tombstone rows after the purge (%v)", rows, err)
	}

	// Without tombstones, a delete leaves nothing.
	s.SetTombstoneFor(0)
	b2, _ := newBridge(t, s, a.ID, bundle)
	if err := s.DeleteBridge(ctx, a.ID, b2.ID); err != nil {
		t.Fatal(err)
	}
	if live, err := s.LiveTombstones(ctx); err != nil || len(live) != 0 {
		t.Fatalf("a tombstone without BRIDGE_TOMBSTONE_FOR: %+v %v", live, err)
	}
}
