package persistence

import (
	"context"
	"errors"
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

func TestRecordDeliveryIsFencedByTheLease(t *testing.T) {
	s, b := fencingFixture(t)
	ctx := context.Background()
	l1, err := s.AcquireLease(ctx, b, "node-a.m1/x", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	nd := NewDelivery{BridgeID: b, MessageID: "m-1", Topic: "/xmtp/0/m-t/proto", SenderAddress: "0x0000000000000000000000000000000000000001",
		SentNs: 1, Payload: []byte("p"), Lease: &l1}
	if _, created, err := s.RecordDelivery(ctx, nd); err != nil || !created {
		t.Fatalf("record with the current lease: created=%v err=%v", created, err)
	}
	// Another owner takes the lease over once it expired.
	if err := s.ReleaseLease(ctx, l1); err != nil {
		t.Fatal(err)
	}
	l2, err := s.AcquireLease(ctx, b, "node-b.m2/y", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if l2.TookOver {
		t.Fatal("a released lease counted as a takeover")
	}
	nd.MessageID = "m-2"
	if _, _, err := s.RecordDelivery(ctx, nd); !errors.Is(err, ErrFenced) {
		t.Fatalf("record with a stale lease: %v, want ErrFenced", err)
	}
	// The message already recorded is returned even to the stale owner,
	// which then cannot attempt it (attempts check the lease).
	nd.MessageID = "m-1"
	if _, created, err := s.RecordDelivery(ctx, nd); err != nil || created {
		t.Fatalf("existing delivery: created=%v err=%v", created, err)
	}
	nd.MessageID, nd.Lease = "m-2", &l2
	if _, created, err := s.RecordDelivery(ctx, nd); err != nil || !created {
		t.Fatalf("record with the new lease: created=%v err=%v", created, err)
	}
}

func TestAcquireLeaseReportsTakeovers(t *testing.T) {
	s, b := fencingFixture(t)
	ctx := context.Background()
	if _, err := s.AcquireLease(ctx, b, "node-a.m1/x", time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the holder "crashed": its lease runs out unreleased
	l, err := s.AcquireLease(ctx, b, "node-b.m2/y", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !l.TookOver || l.Epoch != 2 {
		t.Fatalf("takeover of an expired lease: %+v", l)
	}
	renewed, err := s.AcquireLease(ctx, b, "node-b.m2/y", time.Minute)
	if err != nil || renewed.TookOver || renewed.Epoch != 2 {
		t.Fatalf("the holder taking its own lease again: %+v %v", renewed, err)
	}
}

// fencingFixture is a store with one bridge; it returns the bridge id.
func fencingFixture(t *testing.T) (*Store, string) {
	t.Helper()
	s, _ := newTestStore(t)
	acct, _ := newAccount(t, s, "fencing")
	b, _ := newBridge(t, s, acct.ID, []byte("bundle"))
	return s, b.ID
}
