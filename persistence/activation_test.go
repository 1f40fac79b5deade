package persistence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
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

// TestActivationStatesAnswersAsOneAtATime: ActivationStates reads, for
// each of many bridges in one round trip, what ActivationState reads for
// it alone: bridges with and without conversations, cursors and a
// published contact, a disabled one, a deleted one, a malformed id and an
// id named twice, in the order asked.
func TestActivationStatesAnswersAsOneAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	var ids []string
	for i := range 4 {
		b, _ := newBridge(t, s, a.ID, []byte{'b', byte(i)})
		ids = append(ids, b.ID)
	}
	for i, id := range ids[:2] {
		for k := range 2 + i {
			topic := fmt.Sprintf("/xmtp/0/m-%d-%d/proto", i, k)
			if err := s.SaveConversation(ctx, Conversation{BridgeID: id, Topic: topic, PeerAddress: randomAddress(t),
				CreatedNs: int64(10 - k), KeyMaterial: []byte(topic)}); err != nil {
				t.Fatal(err)
			}
			l, err := s.AcquireLease(ctx, id, "me", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SaveCursor(ctx, l, id, topic, int64(40+k), bytes.Repeat([]byte{byte(k + 1)}, 32)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetContactPublished(ctx, id, bytes.Repeat([]byte{byte(i + 7)}, 32)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetBridgeStatus(ctx, ids[2], StatusDisabled); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBridge(ctx, a.ID, ids[3]); err != nil {
		t.Fatal(err)
	}
	ask := []string{ids[1], "not-an-id", ids[0], ids[3], ids[2], strings.ToUpper(ids[1]), ids[0]}
	got := s.ActivationStates(ctx, ask)
	if len(got) != len(ask) {
		t.Fatalf("%d answers to %d bridges", len(got), len(ask))
	}
	for i, id := range ask {
		want, err := s.ActivationState(ctx, id)
		if !errors.Is(got[i].Err, ErrNotFound) && errors.Is(err, ErrNotFound) || (err == nil) != (got[i].Err == nil) {
			t.Errorf("bridge %d (%s): alone %v, with others %v", i, id, err, got[i].Err)
			continue
		}
		if !reflect.DeepEqual(want, got[i].State) {
			t.Errorf("bridge %d (%s): alone %+v\nwith others %+v", i, id, want, got[i].State)
		}
	}
	if len(got[0].State.Conversations) != 3 || len(got[0].State.Cursors) != 3 {
		t.Fatalf("the bridge with three conversations: %+v", got[0].State)
	}
}

// TestSetContactsPublishedRecordsAsOneAtATime: SetContactsPublished leaves
// each bridge's digest and answers each record as SetContactPublished
// does alone: a new record, one replacing an earlier digest, a bridge
// named twice (its last digest kept), a deleted bridge and a malformed id.
func TestSetContactsPublishedRecordsAsOneAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	var ids []string
	for i := range 3 {
		b, _ := newBridge(t, s, a.ID, []byte{'b', byte(i)})
		ids = append(ids, b.ID)
	}
	if err := s.SetContactPublished(ctx, ids[1], bytes.Repeat([]byte{1}, 32)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBridge(ctx, a.ID, ids[2]); err != nil {
		t.Fatal(err)
	}
	digest := func(n byte) []byte { return bytes.Repeat([]byte{n}, 32) }
	ps := []ContactPublished{{ids[0], digest(5)}, {ids[1], digest(6)}, {ids[2], digest(7)}, {"not-an-id", digest(8)},
		{strings.ToUpper(ids[0]), digest(9)}}
	errs := s.SetContactsPublished(ctx, ps)
	if len(errs) != len(ps) {
		t.Fatalf("%d answers to %d records", len(errs), len(ps))
	}
	for i, p := range ps {
		alone := s.SetContactPublished(ctx, p.BridgeID, p.Digest)
		if errors.Is(alone, ErrNotFound) != errors.Is(errs[i], ErrNotFound) || (alone == nil) != (errs[i] == nil) {
			t.Errorf("record %d (%s): alone %v, with others %v", i, p.BridgeID, alone, errs[i])
		}
	}
	// The records alone wrote the same digests again; the batch's are
	// read after it, before them, here.
	s2 := s.SetContactsPublished(ctx, []ContactPublished{{ids[1], digest(3)}, {ids[0], digest(4)}, {ids[0], digest(2)}})
	for i, err := range s2 {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	for i, want := range [][]byte{digest(2), digest(3)} {
		st, err := s.ActivationState(ctx, ids[i])
		if err != nil || !bytes.Equal(st.ContactDigest, want) {
			t.Errorf("bridge %d: digest %x, %v; want %x", i, st.ContactDigest, err, want)
		}
	}
}
