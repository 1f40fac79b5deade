package testkit

import (
	"testing"

	"github.com/xmtpbridge/bridge/internal/freeport"
)

// ClosedAddr returns a loopback host:port where nothing listens, for a
// test of what happens when a connection is refused. Its port was free a
// moment ago and is never handed out by freeport again in this process,
// so no server of the test takes it.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	return freeport.Addr(t)
}
