package persistence

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

// digest is a cursor digest: 32 bytes, as envelope digests are.
func digest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

// TestSaveCursorsInOneBatch: a batch moves the cursors of two identities,
// keeps the newer of two moves of one topic, never moves a cursor back,
// and refuses the moves of a stale lease (and only those).
func TestSaveCursorsInOneBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b1, _ := newBridge(t, s, a.ID, []byte("bundle-1"))
	b2, _ := newBridge(t, s, a.ID, []byte("bundle-2"))
	b3, _ := newBridge(t, s, a.ID, []byte("bundle-3"))
	l1, err := s.AcquireLease(ctx, b1.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := s.AcquireLease(ctx, b2.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := s.AcquireLease(ctx, b3.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCursor(ctx, l1, b1.ID, "t-back", 50, digest("d50")); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLease(ctx, stale); err != nil {
		t.Fatal(err)
	}
	errs := s.SaveCursors(ctx, []CursorMove{
		{Lease: l1, BridgeID: b1.ID, Topic: "t-1", TimestampNs: 10, Digest: digest("d10")},
		{Lease: l2, BridgeID: b2.ID, Topic: "t-2", TimestampNs: 7, Digest: digest("d7")},
		{Lease: l1, BridgeID: b1.ID, Topic: "t-1", TimestampNs: 30, Digest: digest("d30")},
		{Lease: l1, BridgeID: b1.ID, Topic: "t-1", TimestampNs: 20, Digest: digest("d20")},
		{Lease: stale, BridgeID: b3.ID, Topic: "t-3", TimestampNs: 5, Digest: digest("d5")},
		{Lease: l1, BridgeID: b1.ID, Topic: "t-back", TimestampNs: 40, Digest: digest("d40")},
		{Lease: l1, BridgeID: "not-an-id", Topic: "t-x", TimestampNs: 1, Digest: digest("x")},
	})
	for i, want := range []error{nil, nil, nil, nil, ErrFenced, nil, ErrNotFound} {
		if want == nil && errs[i] != nil || want != nil && !errors.Is(errs[i], want) {
			t.Errorf("move %d: %v, want %v", i, errs[i], want)
		}
	}
	c1, err := s.Cursors(ctx, b1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c := c1["t-1"]; c.LastTimestampNs != 30 || string(c.LastDigest) != string(digest("d30")) {
		t.Errorf("t-1 at %d %x, want the newest move, 30", c.LastTimestampNs, c.LastDigest)
	}
	if c := c1["t-back"]; c.LastTimestampNs != 50 || string(c.LastDigest) != string(digest("d50")) {
		t.Errorf("t-back at %d %x, want it kept at 50", c.LastTimestampNs, c.LastDigest)
	}
	if c2, err := s.Cursors(ctx, b2.ID); err != nil || c2["t-2"].LastTimestampNs != 7 {
		t.Errorf("b2's cursors %+v, %v; want t-2 at 7", c2, err)
	}
	if c3, err := s.Cursors(ctx, b3.ID); err != nil || len(c3) != 0 {
		t.Errorf("the stale lease moved cursors: %+v, %v", c3, err)
	}
}
