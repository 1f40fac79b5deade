package persistence

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestSetContactsPublishedOfABridgeDeletedMidBatch: a bridge deleted while
// a batch of records is under way (after the batch's snapshot saw it, so
// its foreign key fails) is ErrNotFound for its own record alone; the
// other records of the batch are written.
func TestSetContactsPublishedOfABridgeDeletedMidBatch(t *testing.T) {
	ctx := context.Background()
	s, db := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	kept, _ := newBridge(t, s, a.ID, []byte("kept"))
	gone, _ := newBridge(t, s, a.ID, []byte("gone"))
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `DELETE FROM bridges WHERE id = $1`, gone.ID); err != nil {
		t.Fatal(err)
	}
	digest := bytes.Repeat([]byte{7}, 32)
	done := make(chan []error, 1)
	go func() {
		done <- s.SetContactsPublished(ctx, []ContactPublished{{kept.ID, digest}, {gone.ID, digest}})
	}()
	waitBlocked(t, db, "INSERT INTO contact_publications")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	errs := <-done
	if errs[0] != nil {
		t.Fatalf("the record of the bridge that stays: %v", errs[0])
	}
	if !errors.Is(errs[1], ErrNotFound) {
		t.Fatalf("the record of the deleted bridge: %v, want ErrNotFound", errs[1])
	}
	st, err := s.ActivationState(ctx, kept.ID)
	if err != nil || !bytes.Equal(st.ContactDigest, digest) {
		t.Fatalf("digest %x, %v; want %x", st.ContactDigest, err, digest)
	}
}
