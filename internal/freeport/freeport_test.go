package freeport

import (
	"net"
	"testing"
)

// TestPortsAreNeverHandedOutTwice asks for many ports, closing each
// probe listener the way callers do, and checks that each is new and can
// be listened on.
func TestPortsAreNeverHandedOutTwice(t *testing.T) {
	seen := map[string]bool{}
	for range 300 {
		addr := Addr(t)
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		l.Close()
	}
}
