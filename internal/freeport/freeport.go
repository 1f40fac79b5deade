// Package freeport hands tests loopback ports for the servers and
// processes they start.
//
// A port is found by listening on port 0 and closing the listener, so it
// is only known to have been free a moment ago. The kernel may hand the
// same port to the next such listener, and a test that starts several
// servers in parallel would then give two of them one port. Addr never
// returns a port twice in one process.
package freeport

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

var (
	mu     sync.Mutex
	issued = map[int]bool{}
)

// Port returns a loopback TCP port that was free a moment ago and that
// this process has not handed out before.
func Port(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		mu.Lock()
		seen := issued[port]
		issued[port] = true
		mu.Unlock()
		if !seen {
			return port
		}
	}
	t.Fatalf("find a free port: 100 tries gave ports already handed out")
	return 0
}

// Addr returns 127.0.0.1:Port(t).
func Addr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(t)))
}
