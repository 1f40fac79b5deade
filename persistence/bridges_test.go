package persistence

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	alice, _ := newAccount(t, s, "alice")
	bob, _ := newAccount(t, s, "bob")
	ab, _ := newBridge(t, s, alice.ID, []byte("alice-bundle"))

	if _, err := s.GetBridge(ctx, bob.ID, ab.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob gets alice's bridge: %v", err)
	}
	if _, err := s.UpdateBridge(ctx, bob.ID, ab.ID, func(b *Bridge) error { b.Name = "stolen"; return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob updates alice's bridge: %v", err)
	}
	if err := s.DeleteBridge(ctx, bob.ID, ab.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob deletes alice's bridge: %v", err)
	}
	if _, err := s.RotateWebhookSecret(ctx, bob.ID, ab.ID, time.Hour); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob rotates alice's secret: %v", err)
	}
	if _, _, err := s.ListDeliveries(ctx, bob.ID, ab.ID, "", Page{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob lists alice's deliveries: %v", err)
	}
	list, _, err := s.ListBridges(ctx, bob.ID, Page{})
	if err != nil || len(list) != 0 {
		t.Errorf("bob's list shows %d bridges (err %v)", len(list), err)
	}
	got, err := s.GetBridge(ctx, alice.ID, ab.ID)
	if err != nil || got.Name != "b" {
		t.Fatalf("alice's bridge changed: %+v %v", got, err)
	}
}

func TestBridgeLifecycleAndErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")

	var ids []string
	for i := 0; i < 5; i++ {
		b, _ := newBridge(t, s, a.ID, []byte("bundle"))
		ids = append(ids, b.ID)
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		list, next, err := s.ListBridges(ctx, a.ID, Page{After: cursor, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range list {
			seen = append(seen, b.ID)
		}
		if next == "" {
			if pages != 2 {
				t.Fatalf("got %d pages, want 3", pages+1)
			}
			break
		}
		cursor = next
	}
	if len(seen) != 5 {
		t.Fatalf("pagination returned %v, want %v", seen, ids)
	}
	for i := range ids {
		if seen[i] != ids[i] {
			t.Fatalf("pagination order %v, want creation order %v", seen, ids)
		}
	}
	if _, _, err := s.ListBridges(ctx, a.ID, Page{After: "nope"}); !errors.Is(err, ErrInvalidCursor) {
		t.Fatalf("bad cursor: %v", err)
	}

	first, _ := s.GetBridge(ctx, a.ID, ids[0])
	if _, _, err := s.CreateBridge(ctx, NewBridge{AccountID: a.ID, Address: first.Address, KeyBundle: []byte("x"), Forward: testForward()}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate address: %v", err)
	}
	bad := testForward()
	bad.Timeout = 0
	if _, _, err := s.CreateBridge(ctx, NewBridge{AccountID: a.ID, Address: randomAddress(t), KeyBundle: []byte("x"), Forward: bad}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero timeout: %v", err)
	}
	if _, _, err := s.CreateBridge(ctx, NewBridge{AccountID: newID(), Address: randomAddress(t), KeyBundle: []byte("x"), Forward: testForward()}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	if _, err := s.GetBridge(ctx, a.ID, "not-a-uuid"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("malformed id: %v", err)
	}

	updated, err := s.UpdateBridge(ctx, a.ID, ids[0], func(b *Bridge) error {
		b.Name = "renamed"
		b.Status = StatusDisabled
		b.Forward.URL = "https://example.org/new"
		b.Forward.AllowSenders = []string{"0x00000000000000000000000000000000000000aa"}
		return nil
	})
	if err != nil || updated.Name != "renamed" || updated.Status != StatusDisabled || updated.Forward.URL != "https://example.org/new" || len(updated.Forward.AllowSenders) != 1 {
		t.Fatalf("update: %+v %v", updated, err)
	}
	stop := errors.New("stop")
	if _, err := s.UpdateBridge(ctx, a.ID, ids[0], func(*Bridge) error { return stop }); err != stop {
		t.Fatalf("update aborted by change: %v", err)
	}
	if _, err := s.UpdateBridge(ctx, a.ID, ids[0], func(b *Bridge) error { b.Status = "bogus"; return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bogus status: %v", err)
	}

	if err := s.DeleteBridge(ctx, a.ID, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetBridge(ctx, a.ID, ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted bridge still there: %v", err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM webhook_secrets WHERE bridge_id = $1", ids[0]).Scan(&n); err != nil || n != 0 {
		t.Fatalf("delete left %d webhook secrets (err %v)", n, err)
	}
}

func TestWebhookSecretRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, secrets := newBridge(t, s, a.ID, []byte("bundle"))

	fresh, err := s.RotateWebhookSecret(ctx, a.ID, b.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := s.WebhookSecrets(ctx, b.ID)
	if err != nil || len(ws) != 2 || ws[0].Secret != fresh || ws[1].Secret != secrets.WebhookSecret || ws[0].ExpiresAt != nil || ws[1].ExpiresAt == nil {
		t.Fatalf("after rotation with grace: %+v %v", ws, err)
	}
	newest, err := s.RotateWebhookSecret(ctx, a.ID, b.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws, err = s.WebhookSecrets(ctx, b.ID)
	if err != nil || len(ws) != 2 || ws[0].Secret != newest || ws[1].Secret != secrets.WebhookSecret {
		t.Fatalf("after rotation without grace, want the newest and the one still in grace: %+v %v", ws, err)
	}
}
