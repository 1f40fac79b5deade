package node

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// maxCachedTokens bounds the auth tokens the node remembers as verified. A
// publisher reuses its token for most of an hour, so a few thousand cover
// every active publisher of a busy node; only tokens that verified are
// kept, so a hostile client cannot fill the cache with garbage.
const maxCachedTokens = 4096

// tokenCache remembers auth tokens that verified, by the SHA-256 of their
// text, until they expire: a publish with a known token costs a hash
// instead of two signature recoveries. It is safe for concurrent use.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]cachedToken
	scanned int // entries evict looked at, for its test
}

type cachedToken struct {
	wallet  string
	expires time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[sha256.Size]byte]cachedToken)}
}

// verify returns the wallet of token, from the cache while the token is
// still valid at now, else by verifying it.
func (c *tokenCache) verify(token string, now time.Time) (string, error) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok && !now.Before(e.expires) {
		delete(c.entries, key)
		ok = false
	}
	c.mu.Unlock()
	if ok {
		return e.wallet, nil
	}
	wallet, expires, err := keys.VerifyAuthTokenExpiry(token, now)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[key] = cachedToken{wallet: wallet, expires: expires}
	c.mu.Unlock()
	return wallet, nil
}

// evict makes room: it drops every expired token and, while more than
// seven eighths of the bound are left, arbitrary ones (the map's random
// order). c.mu is held. Dropping an eighth at a time keeps the scan of
// the whole cache to once per max/8 new tokens: while a node hosts
// identities by the thousand, each publishing its contact with a token
// of its own, the cache is full of tokens that have not expired.
func (c *tokenCache) evict(now time.Time) {
	keep := c.max - max(c.max/8, 1)
	for k, e := range c.entries {
		c.scanned++
		if !now.Before(e.expires) || len(c.entries) > keep {
			delete(c.entries, k)
		}
	}
}

// len is the number of remembered tokens.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
