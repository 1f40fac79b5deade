// Package storetest opens the store of a test: a persistence.Store over a
// test database (from pgtest), sealed with a random master key.
//
// It is the part of the test kit (internal/testkit) that needs the
// persistence package. It is not pgtest, because persistence's own tests
// import pgtest, and pgtest importing persistence would be a cycle.
package storetest

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

// Sealer returns a sealer with a fresh random master key of ID "test".
func Sealer(t testing.TB) *persistence.Sealer {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatalf("make a master key: %v", err)
	}
	s, err := persistence.NewSealer(persistence.MasterKey{ID: "test", Key: key})
	if err != nil {
		t.Fatalf("new sealer: %v", err)
	}
	return s
}

// Open opens a store over the migrated database db, sealed with sealer,
// and closes it when the test ends. Each call opens its own connection
// pool, as another node of a cluster has.
func Open(t testing.TB, db string, sealer *persistence.Sealer) *persistence.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := persistence.Open(ctx, db, sealer)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}
