package http

import (
	"testing"
)

// TestBridgeQuotaPerAccount is finding 6 of issue 10 (1,000 bridges in 6 s):
// an account gets its quota of bridges, counted in Postgres across two
// servers, and the next one is 429 quota_exceeded with Retry-After; other
// accounts and relaycc signups are not affected, and a delete frees a
// place.
func TestBridgeQuotaPerAccount(t *testing.T) {
	t.Parallel()
	const quota = 3
	a := newHarness(t, func(o *Options) { o.MaxBridgesPerAccount = quota })
	b := a.sibling()
	key := a.signup("alice")
	var ids []string
	for i := 0; i < quota; i++ {
		m := []*harness{a, b}[i%2].expect("POST", "/v1/bridges", key, map[string]any{"forward": map[string]any{"url": publicURL}}, 201, "")
		ids = append(ids, str(m["bridge"].(map[string]any), "id"))
	}
	for _, h := range []*harness{a, b} {
		status, hdr, m := h.doWithHeaders("POST", "/v1/bridges", key, map[string]any{"forward": map[string]any{"url": publicURL}})
		if status != 429 || m["code"] != CodeQuotaExceeded || hdr.Get("Retry-After") == "" {
			t.Fatalf("bridge %d on %s: %d %v Retry-After %q, want 429 quota_exceeded", quota+1, h.srv.opts.NodeID, status, m, hdr.Get("Retry-After"))
		}
	}
	if n := len(a.expect("GET", "/v1/bridges", key, nil, 200, "")["bridges"].([]any)); n != quota {
		t.Fatalf("the account holds %d bridges, want %d", n, quota)
	}
	a.createBridge(a.signup("bob"))
	a.relayccBridge()
	a.expect("DELETE", "/v1/bridges/"+ids[0], key, nil, 200, "")
	b.expect("POST", "/v1/bridges", key, map[string]any{"forward": map[string]any{"url": publicURL}}, 201, "")
	if got := counterValue(t, a.reg, "bridge_http_quota_refusals_total", "quota", "bridges"); got != 1 {
		t.Fatalf("bridge quota refusals on node a: %v, want 1", got)
	}
}

// TestSendRatePerAccount is the other half of finding 6 (500 sends in
// 5.6 s): a burst of sends from one account, spread over two servers, gets
// its burst through to the sender and then 429 rate_limited with
// Retry-After: 1; each relaycc bridge has a bucket of its own.
func TestSendRatePerAccount(t *testing.T) {
	t.Parallel()
	const burst = 4
	a := newHarness(t, func(o *Options) { o.SendRatePerSecond = 1; o.SendBurst = burst })
	b := a.sibling()
	key := a.signup("alice")
	br, _ := a.createBridge(key)
	path := "/v1/bridges/" + str(br, "id") + "/messages"
	send := map[string]any{"to": "0x00000000000000000000000000000000000000aa", "content": "hi"}
	// A node without a runtime answers a send that passed the limit with
	// 503 sending_unavailable.
	passed, limited := 0, 0
	for i := 0; i < 3*burst; i++ {
		status, hdr, m := []*harness{a, b}[i%2].doWithHeaders("POST", path, key, send)
		switch {
		case status == 503 && m["code"] == CodeSendingDisabled:
			passed++
		case status == 429 && m["code"] == CodeRateLimited && hdr.Get("Retry-After") == "1":
			limited++
		default:
			t.Fatalf("send %d: %d %v Retry-After %q", i, status, m, hdr.Get("Retry-After"))
		}
	}
	// At one send a second, the refill during the loop is a send or two.
	if passed < burst || passed > burst+2 || limited < 3*burst-passed {
		t.Fatalf("%d sends passed and %d were limited, want the burst of %d to pass", passed, limited, burst)
	}
	// Another account has its own bucket.
	other := a.signup("bob")
	ob, _ := a.createBridge(other)
	a.expect("POST", "/v1/bridges/"+str(ob, "id")+"/messages", other, send, 503, CodeSendingDisabled)

	// relaycc bridges all belong to one account, so each bridge has its
	// own bucket: draining one leaves the other's.
	addr1, tok1 := a.relayccBridge()
	addr2, tok2 := a.relayccBridge()
	limitedHook := false
	for i := 0; i < 3*burst && !limitedHook; i++ {
		status, _, m := a.doWithHeaders("POST", "/hook", "", hookBody(addr1, tok1))
		limitedHook = status == 429 && m["code"] == CodeRateLimited
	}
	if !limitedHook {
		t.Fatal("a relaycc bridge's sends were never limited")
	}
	b.expect("POST", "/hook", "", hookBody(addr2, tok2), 503, CodeSendingDisabled)
	if got := counterValue(t, a.reg, "bridge_http_quota_refusals_total", "quota", "sends"); got < 1 {
		t.Fatalf("send refusals counted %v on node a", got)
	}
}
