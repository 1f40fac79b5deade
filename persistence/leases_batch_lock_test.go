package persistence

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"
)

// TestBatchIsNotHeldUpByALiveHoldersLock: a live holder's transaction that
// holds its lease row in share mode (as a send does) does not hold up a
// batch that names that identity: the batch answers ErrLeaseHeld for it
// and takes the others at once, without waiting for the holder to commit.
func TestBatchIsNotHeldUpByALiveHoldersLock(t *testing.T) {
	s, ids, _ := nodeLeaseFixture(t, 2)
	sort.Strings(ids)
	ctx := context.Background()
	other := startNodeLease(t, s, "node-a", "node-a.m1")
	held, err := s.AcquireLeaseOn(ctx, other, ids[0], "node-a.m1/x")
	if err != nil {
		t.Fatal(err)
	}
	mine := startNodeLease(t, s, "node-b", "node-b.m2")
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := checkLease(ctx, tx, held); err != nil {
		t.Fatal(err)
	}
	// The holder's transaction stays open until the batch has answered;
	// a batch that waited for it would run into its deadline.
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got := s.AcquireLeasesOn(bctx, mine, []LeaseRequest{{ids[0], "node-b.m2/x"}, {ids[1], "node-b.m2/y"}})
	if !errors.Is(got[0].Err, ErrLeaseHeld) {
		t.Fatalf("the live lease: %+v, want ErrLeaseHeld", got[0])
	}
	if got[1].Err != nil {
		t.Fatalf("the free identity: %v", got[1].Err)
	}
}
