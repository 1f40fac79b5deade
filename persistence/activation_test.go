package persistence

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// TestActivationState: one round trip reads what KeyBundle, Conversations
// and Cursors read, and the digest SetContactPublished recorded last,
// which is nil until one is recorded and gone with the bridge.
func TestActivationState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("the bundle"))
	st, err := s.ActivationState(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.KeyBundle, []byte("the bundle")) || st.Address != b.Address || len(st.Conversations) != 0 ||
		len(st.Cursors) != 0 || st.ContactDigest != nil || st.Status != b.Status {
		t.Fatalf("state of a new bridge: %+v", st)
	}
	if err := s.SetBridgeStatus(ctx, b.ID, StatusDisabled); err != nil {
		t.Fatal(err)
	}
	if st, err = s.ActivationState(ctx, b.ID); err != nil || st.Status != StatusDisabled {
		t.Fatalf("status of a disabled bridge: %q, %v", st.Status, err)
	}

	peer := randomAddress(t)
	if err := s.SaveConversation(ctx, Conversation{BridgeID: b.ID, Topic: "/xmtp/0/m-1/proto", PeerAddress: peer,
		CreatedNs: 5, KeyMaterial: []byte("secret")}); err != nil {
		t.Fatal(err)
	}
	l, err := s.AcquireLease(ctx, b.ID, "me", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCursor(ctx, l, b.ID, "/xmtp/0/m-1/proto", 42, bytes.Repeat([]byte{1}, 32)); err != nil {
		t.Fatal(err)
	}
	digest := bytes.Repeat([]byte{7}, 32)
	if err := s.SetContactPublished(ctx, b.ID, digest); err != nil {
		t.Fatal(err)
	}
	if err := s.SetContactPublished(ctx, b.ID, bytes.Repeat([]byte{8}, 32)); err != nil {
		t.Fatal(err)
	}
	st, err = s.ActivationState(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Conversations) != 1 || !bytes.Equal(st.Conversations[0].KeyMaterial, []byte("secret")) ||
		st.Conversations[0].PeerAddress != peer {
		t.Fatalf("conversations %+v", st.Conversations)
	}
	if c, ok := st.Cursors["/xmtp/0/m-1/proto"]; !ok || c.LastTimestampNs != 42 {
		t.Fatalf("cursors %+v", st.Cursors)
	}
	if !bytes.Equal(st.ContactDigest, bytes.Repeat([]byte{8}, 32)) {
		t.Fatalf("contact digest %x, want the last one recorded", st.ContactDigest)
	}

	if err := s.DeleteBridge(ctx, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ActivationState(ctx, b.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("state of a deleted bridge: %v, want ErrNotFound", err)
	}
	if _, err := s.ActivationState(ctx, "not-an-id"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("state of a malformed id: %v, want ErrNotFound", err)
	}
}
