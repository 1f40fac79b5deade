// Package testkit is the one home of the helpers the project's tests
// share: waiting on a condition (WaitFor), a bounded context (Context), a
// log sink a test reads while a server writes (Buffer), an address where
// nothing listens (ClosedAddr), the bridge binary built once per test
// process (BuildBridge), a real etcd process (StartEtcd), the CPU time of
// a process (CPUTime) and master keys of test configurations (MasterKey,
// NewMasterKey).
//
// It imports nothing of the project but internal/freeport, so every
// package's tests can import it (internal/freeport hands out the free
// ports). Helpers that need the project's upper layers live beside what
// they need, where internal/layout lets the tests import them:
// persistence/pgtest (test databases, Poll, WaitQuiet),
// persistence/storetest (a store with a random master key) and
// actors/webhook/webhooktest (the owner's endpoint that checks webhook
// signatures).
package testkit

import (
	"crypto/rand"
	"encoding/base64"
)

// MasterKey is the base64 master key of test configurations
// (BRIDGE_MASTER_KEY); it is also the example `bridge env` shows.
const MasterKey = "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng="

// NewMasterKey returns a fresh random base64 master key, for a test whose
// nodes must not share a key with other tests.
func NewMasterKey() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read does not fail
	return base64.StdEncoding.EncodeToString(key)
}
