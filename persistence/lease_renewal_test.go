package persistence

import (
	"context"
	"testing"
	"time"
)

func TestRenewLeasesRenewsHeldLeasesAndLeavesOutTheLost(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	acct, _ := newAccount(t, s, "leases")

	var held []Lease
	for i := 0; i < 3; i++ {
		b, _ := newBridge(t, s, acct.ID, []byte("bundle"))
		l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
	// The second lease is released (so fenced), the third taken over by
	// another owner after it expired.
	if err := s.ReleaseLease(ctx, held[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE identity_leases SET expires_at = now() - interval '1 second' WHERE identity = $1`, held[2].Identity); err != nil {
		t.Fatal(err)
	}
	other, err := s.AcquireLease(ctx, held[2].Identity, "node-2/b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	renewed, err := s.RenewLeases(ctx, held, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(renewed) != 1 {
		t.Fatalf("renewed %d leases, want only the one still held: %+v", len(renewed), renewed)
	}
	got, ok := renewed[held[0].Identity]
	if !ok || got.Epoch != held[0].Epoch || got.Owner != held[0].Owner || !got.ExpiresAt.After(held[0].ExpiresAt.Add(30*time.Minute)) {
		t.Fatalf("held lease not renewed for an hour with its epoch: %+v (was %+v)", got, held[0])
	}
	if now, err := s.LeaseOf(ctx, held[2].Identity); err != nil || now.Owner != "node-2/b" || now.Epoch != other.Epoch || !now.ExpiresAt.Equal(other.ExpiresAt) {
		t.Fatalf("renewal by the stale owner touched the new owner's lease: %+v %v", now, err)
	}
	if err := s.CheckLease(ctx, held[1]); err == nil {
		t.Fatal("a released lease came back to life")
	}
	if renewed, err := s.RenewLeases(ctx, nil, time.Hour); err != nil || len(renewed) != 0 {
		t.Fatalf("renewing nothing: %v %v", renewed, err)
	}
}
