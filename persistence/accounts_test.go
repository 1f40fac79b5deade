package persistence

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
)

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, key := newAccount(t, s, "alice")

	got, k, err := s.AccountByAPIKey(ctx, key)
	if err != nil {
		t.Fatalf("account by api key: %v", err)
	}
	if got.ID != a.ID || k.AccountID != a.ID || k.LastUsedAt == nil {
		t.Fatalf("got account %+v key %+v, want account %s with last use set", got, k, a.ID)
	}
	if len(k.Prefix) < 8 || k.Prefix != key[:len(k.Prefix)] {
		t.Fatalf("prefix %q is not the start of the key", k.Prefix)
	}
	if _, _, err := s.AccountByAPIKey(ctx, key+"x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("wrong key: got %v, want ErrNotFound", err)
	}

	k2, key2, err := s.CreateAPIKey(ctx, a.ID, "second")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIKey(ctx, a.ID, k2.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, _, err := s.AccountByAPIKey(ctx, key2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked key: got %v, want ErrNotFound", err)
	}
	if err := s.RevokeAPIKey(ctx, a.ID, k2.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke: got %v, want ErrNotFound", err)
	}
	gone := "00000000-0000-4000-8000-000000000001"
	revoked, err := s.RevokedAPIKeys(ctx, []string{k.ID, k2.ID, gone, "not-an-id"})
	if err != nil {
		t.Fatalf("revoked api keys: %v", err)
	}
	want := []string{gone, k2.ID}
	slices.Sort(revoked)
	slices.Sort(want)
	if !slices.Equal(revoked, want) {
		t.Fatalf("revoked api keys %v, want the revoked and the unknown one %v", revoked, want)
	}
	b, _ := newAccount(t, s, "bob")
	if err := s.RevokeAPIKey(ctx, b.ID, k.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke another account's key: got %v, want ErrNotFound", err)
	}
	keys, err := s.ListAPIKeys(ctx, a.ID)
	if err != nil || len(keys) != 2 {
		t.Fatalf("list keys: %d keys, err %v; want 2", len(keys), err)
	}

	// The key itself is never stored: only its hash.
	var raw []byte
	if err := s.pool.QueryRow(ctx, "SELECT key_hash FROM api_keys WHERE id = $1", k.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, HashToken(key)) {
		t.Fatal("stored key hash is not the SHA-256 of the key")
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM api_keys WHERE position($1::bytea in key_hash) > 0 OR prefix = $2",
		[]byte(key), key).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the api key appears in its row (count %d, err %v)", n, err)
	}

	sys1, err := s.EnsureSystemAccount(ctx, "relaycc")
	if err != nil {
		t.Fatal(err)
	}
	sys2, err := s.EnsureSystemAccount(ctx, "relaycc")
	if err != nil || sys1.ID != sys2.ID || sys2.SystemName != "relaycc" {
		t.Fatalf("system account not stable: %+v %+v %v", sys1, sys2, err)
	}
}
