package http

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xmtpbridge/bridge/actors"
	"github.com/xmtpbridge/bridge/persistence"
)

// withLiveTTL is withLive with a claim TTL of its own: the hub checks the
// keys of its sockets on its timer only every third of it.
func withLiveTTL(t testing.TB, node string, ttl time.Duration) func(*Options) {
	return func(o *Options) {
		hub, err := actors.NewLiveHub(actors.LiveConfig{
			Store: o.Store, NodeID: node, Registerer: o.Registry, Logger: slog.New(slog.DiscardHandler),
			ClaimTTL: ttl,
		})
		if err != nil {
			t.Fatal(err)
		}
		hub.Start()
		t.Cleanup(hub.Stop)
		o.Live = testLiveHub{hub}
		o.LiveOptions = liveTestOptions
	}
}

// closedWith reads until the socket ends and returns its close status and
// reason.
func (lc *liveClient) closedWith(timeout time.Duration) (websocket.StatusCode, string) {
	lc.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := lc.read(time.Until(deadline))
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			lc.t.Fatalf("the socket ended with %v, want a close frame", err)
		}
		return ce.Code, ce.Reason
	}
}

// Revoking an API key closes the live sockets opened with it on every
// node, with 4003 and a reason, and leaves the sockets of other keys up.
// The two nodes are two servers with a live hub each over one database:
// the revocation reaches the other one through Postgres NOTIFY, well
// before its timer would check the keys (every 20 s here). A revocation
// whose announcement was missed (written straight to the table) is found
// by the timer.
func TestLiveSocketsOfARevokedKeyCloseOnEveryNode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withLiveTTL(t, "node-a", time.Minute))
	base := h.startReal()
	sib := h.sibling()
	sib.srv.opts.Live = nil
	withLiveTTL(t, "node-b", time.Minute)(&sib.srv.opts)
	baseB := sib.startReal()

	key := h.signup("alice")
	m := h.expect("POST", "/v1/api-keys", key, map[string]any{"name": "consumer"}, 201, "")
	second, secondID := str(m, "apiKey"), m["apiKeyInfo"].(map[string]any)["id"].(string)
	b := h.expect("POST", "/v1/bridges", key, map[string]any{"name": "live", "delivery": "live", "forward": map[string]any{"url": publicURL}}, 201, "")["bridge"].(map[string]any)
	id := str(b, "id")

	onA := dialLive(t, base, id, second, "")
	onB := dialLive(t, baseB, id, second, "")
	kept := dialLive(t, baseB, id, key, "")
	waitForCond(t, 10*time.Second, "three consumers connected", func() bool {
		return gaugeValue(t, h.reg, "bridge_live_consumers") == 1 && gaugeValue(t, sib.reg, "bridge_live_consumers") == 2
	})

	start := time.Now()
	h.expect("DELETE", "/v1/api-keys/"+secondID, key, nil, 200, "")
	for name, lc := range map[string]*liveClient{"node A": onA, "node B": onB} {
		code, reason := lc.closedWith(10 * time.Second)
		if code != CloseKeyRevoked || !strings.Contains(reason, "revoked") {
			t.Fatalf("the socket on %s closed with %d %q, want %d and a reason naming the revocation", name, code, reason, CloseKeyRevoked)
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the sockets closed %s after the revocation: the announcement did not reach them", took)
	}
	if n := counterWith(t, h.reg, "bridge_live_closed_total", "revoked"); n != 1 {
		t.Fatalf("node A counted %v sockets closed for a revoked key, want 1", n)
	}
	if n := counterWith(t, sib.reg, "bridge_live_closed_total", "revoked"); n != 1 {
		t.Fatalf("node B counted %v sockets closed for a revoked key, want 1", n)
	}
	if _, status, err := tryDialLive(base, id, second, ""); err == nil || status != 401 {
		t.Fatalf("dial with the revoked key: status %d, error %v, want 401", status, err)
	}

	// The socket of the other key is still up and still gets messages.
	feed := newLiveFeed(t, h.store, id)
	want := feed.add("after the revocation")
	if got := kept.message(); got.Params["id"] != want {
		t.Fatalf("the other key's socket got %v, want %s", got.Params, want)
	}
	if r := kept.call("ack", map[string]any{"id": want}); r.Error != nil {
		t.Fatalf("ack on the other key's socket: %+v", r.Error)
	}

	// A revocation with no announcement: the hubs' timer finds it.
	third := str(h.expect("POST", "/v1/api-keys", key, map[string]any{"name": "quiet"}, 201, ""), "apiKey")
	sib2 := h.sibling()
	sib2.srv.opts.Live = nil
	withLiveTTL(t, "node-c", 3*time.Second)(&sib2.srv.opts)
	baseC := sib2.startReal()
	quiet := dialLive(t, baseC, id, third, "")
	waitForCond(t, 10*time.Second, "the quiet key's consumer connected", func() bool {
		return gaugeValue(t, sib2.reg, "bridge_live_consumers") == 1
	})
	if _, err := h.store.Pool().Exec(context.Background(), `UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1`, persistence.HashToken(third)); err != nil {
		t.Fatal(err)
	}
	if code, _ := quiet.closedWith(10 * time.Second); code != CloseKeyRevoked {
		t.Fatalf("the quiet key's socket closed with %d, want %d", code, CloseKeyRevoked)
	}
}
