package persistence

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestBatchErrorOfOneIdentityFailsOnlyThatIdentity: a request the store
// rejects (an owner too long for its column) fails alone; the others in
// its batch are answered as they would be alone.
func TestBatchErrorOfOneIdentityFailsOnlyThatIdentity(t *testing.T) {
	s, ids, _ := nodeLeaseFixture(t, 3)
	ctx := context.Background()
	mine, err := s.StartNodeLease(ctx, "node-b", "node-b.m2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := s.AcquireLeasesOn(ctx, mine, []LeaseRequest{
		{ids[0], "node-b.m2/x"}, {ids[1], strings.Repeat("o", 300)}, {ids[2], "node-b.m2/z"}})
	if got[1].Err == nil {
		t.Fatalf("an owner of 300 characters took the lease: %+v", got[1])
	}
	for _, k := range []int{0, 2} {
		if got[k].Err != nil || got[k].Lease.Epoch != 1 {
			t.Fatalf("request %d beside a rejected one: %+v", k, got[k])
		}
		if l, err := s.LeaseOf(ctx, ids[k]); err != nil || l.Owner != got[k].Lease.Owner {
			t.Fatalf("lease of request %d is %+v (%v)", k, l, err)
		}
	}
}
