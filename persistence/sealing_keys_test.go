package persistence

import (
	"context"
	"errors"
	"testing"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// TestSealingKeysCatchAnotherKey checks that a store opened with another
// key under the same id is told ErrKeyMismatch before it reads anything,
// whether the database recorded the fingerprint or was sealed before the
// fingerprints existed, and that a rotation (a new current id, the old key
// among the previous ones) passes. The table never holds a key.
func TestSealingKeysCatchAnotherKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, testTemplate)
	mine, theirs := testKey(t, "k1"), testKey(t, "k1")
	s := openStore(t, url, mustSealer(t, mine))
	if err := s.CheckSealingKeys(ctx); err != nil {
		t.Fatalf("first check: %v", err)
	}
	if _, err := s.EnsureSystemIdentity(ctx, RoleAPI, func() (string, []byte, error) {
		return randomAddress(t), []byte("api bundle"), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSealingKeys(ctx); err != nil {
		t.Fatalf("second check with the same key: %v", err)
	}
	other := openStore(t, url, mustSealer(t, theirs))
	if err := other.CheckSealingKeys(ctx); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("another key under k1: %v, want ErrKeyMismatch", err)
	}
	var fp []byte
	if err := s.pool.QueryRow(ctx, `SELECT fingerprint FROM sealing_keys WHERE key_id = 'k1'`).Scan(&fp); err != nil {
		t.Fatal(err)
	}
	if len(fp) != 32 || string(fp) == string(mine.Key) {
		t.Fatalf("sealing_keys holds %d bytes, or the key itself", len(fp))
	}
	rotated := openStore(t, url, mustSealer(t, testKey(t, "k2"), mine))
	if err := rotated.CheckSealingKeys(ctx); err != nil {
		t.Fatalf("rotation to k2 with k1 previous: %v", err)
	}
	wrongPrevious := openStore(t, url, mustSealer(t, testKey(t, "k3"), theirs))
	if err := wrongPrevious.CheckSealingKeys(ctx); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("a wrong previous k1: %v, want ErrKeyMismatch", err)
	}

	// A database sealed before 0007 has no fingerprints: the check opens a
	// system identity instead.
	if _, err := s.pool.Exec(ctx, `DELETE FROM sealing_keys`); err != nil {
		t.Fatal(err)
	}
	if err := other.CheckSealingKeys(ctx); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("another key on a database without fingerprints: %v, want ErrKeyMismatch", err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM sealing_keys`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the wrong key was recorded: %d rows (%v)", n, err)
	}
	if err := s.CheckSealingKeys(ctx); err != nil {
		t.Fatalf("the right key on a database without fingerprints: %v", err)
	}
}
