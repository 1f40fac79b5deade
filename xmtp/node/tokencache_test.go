package node

import (
	"errors"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// TestTokenCache: a verified token is remembered until it expires and no
// longer; tokens that fail verification are never remembered; the cache
// never holds more than its bound, however many valid tokens arrive.
func TestTokenCache(t *testing.T) {
	c := newTokenCache(8)
	me, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := me.AuthToken(now)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		w, err := c.verify(tok, now.Add(time.Minute))
		if err != nil || w != me.Address() {
			t.Fatalf("verify: %q, %v", w, err)
		}
	}
	if c.len() != 1 {
		t.Fatalf("cached %d tokens, want 1", c.len())
	}
	// Past its lifetime the remembered token is refused like any other.
	if _, err := c.verify(tok, now.Add(keys.TokenLifetime+time.Second)); !errors.Is(err, keys.ErrTokenExpired) {
		t.Fatalf("expired cached token: %v", err)
	}
	if c.len() != 0 {
		t.Fatalf("an expired token stays cached")
	}
	// A hostile client's garbage and expired tokens leave nothing behind.
	old, _ := me.AuthToken(now.Add(-2 * time.Hour))
	for _, bad := range []string{"", "bm90IGEgdG9rZW4=", old, tok + "x"} {
		if _, err := c.verify(bad, now); err == nil {
			t.Fatalf("token %q verified", bad)
		}
	}
	if c.len() != 0 {
		t.Fatalf("bad tokens cached: %d", c.len())
	}
	// Many valid tokens: the cache stays bounded and every one still
	// verifies to its own wallet.
	for range 20 {
		k, err := keys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		kt, _ := k.AuthToken(now)
		if w, err := c.verify(kt, now); err != nil || w != k.Address() {
			t.Fatalf("verify: %q, %v", w, err)
		}
		if c.len() > 8 {
			t.Fatalf("cache holds %d tokens, bound 8", c.len())
		}
	}
}

// TestTokenCacheEvictsInSteps: a cache full of tokens that have not
// expired, as while a node hosts identities that each publish their
// contact with a new token, scans its entries once per eighth of its bound
// of new tokens, not once per token.
func TestTokenCacheEvictsInSteps(t *testing.T) {
	const bound = 64
	c := newTokenCache(bound)
	now := time.Now()
	for i := range 4 * bound {
		k, err := keys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		kt, err := k.AuthToken(now)
		if err != nil {
			t.Fatal(err)
		}
		if w, err := c.verify(kt, now); err != nil || w != k.Address() {
			t.Fatalf("verify: %q, %v", w, err)
		}
		if c.len() > bound {
			t.Fatalf("cache holds %d tokens, bound %d", c.len(), bound)
		}
		if i >= bound && c.len() < bound-bound/8 {
			t.Fatalf("cache holds %d tokens after %d: it dropped more than an eighth", c.len(), i+1)
		}
	}
	// 3*bound tokens came to a full cache: 24 evictions of a full scan.
	if limit := 3 * bound * 8; c.scanned > limit {
		t.Fatalf("evictions looked at %d entries for %d new tokens; want at most %d", c.scanned, 3*bound, limit)
	}
}

// BenchmarkAuthenticate is the node's check of a publisher's token: a
// token it has seen costs a hash, a new one two signature recoveries.
func BenchmarkAuthenticate(b *testing.B) {
	me, err := keys.Generate()
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := me.AuthToken(time.Now())
	b.Run("cached", func(b *testing.B) {
		c := newTokenCache(maxCachedTokens)
		for b.Loop() {
			if _, err := c.verify(tok, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			if _, err := keys.VerifyAuthToken(tok, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
