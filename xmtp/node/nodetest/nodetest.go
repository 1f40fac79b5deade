// Package nodetest starts the local XMTP node for tests of other packages:
// on loopback port 0, over a database the test provides, stopped when the
// test ends.
package nodetest

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/xmtp/node"
)

// Start runs a node with cfg and returns it once it serves. Empty listen
// addresses become 127.0.0.1:0 and a nil Registerer a fresh registry; the
// database (cfg.DatabaseURL) is the caller's, usually from pgtest.
func Start(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = "127.0.0.1:0"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatalf("new xmtp node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start xmtp node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Logf("stop xmtp node: %v", err)
		}
	})
	return n
}
