package http

import (
	"testing"
)

// TestAdminListsAndMovesRelayccBridges checks that the admin sees the
// bridges made by relaycc /signup (?account=relaycc) and can move one into
// an ordinary account, whose API key then manages it; that a system
// account, an unknown account or bridge, a full quota and anyone without
// the admin token are refused.
func TestAdminListsAndMovesRelayccBridges(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.MaxBridgesPerAccount = 2 })
	signed := h.expect("POST", "/signup", "", map[string]any{"key": testSignupKey,
		"forwardHandler": map[string]any{"httpUrl": publicURL, "isBot": true}}, 200, "")
	addr := str(signed, "ethAddress")
	key := h.signup("alice")
	own, _ := h.createBridge(key)

	relay := h.expect("GET", "/v1/admin/bridges?account=relaycc", testAdminToken, nil, 200, "")["bridges"].([]any)
	if len(relay) != 1 || str(relay[0].(map[string]any), "address") != addr {
		t.Fatalf("relaycc bridges: %v", relay)
	}
	bridge := relay[0].(map[string]any)
	id, relayAccount := str(bridge, "id"), str(bridge, "accountId")
	if n := len(h.expect("GET", "/v1/admin/bridges?account="+str(own, "accountId"), testAdminToken, nil, 200, "")["bridges"].([]any)); n != 1 {
		t.Fatalf("alice's bridges as the admin sees them: %d", n)
	}
	// alice's key does not see it yet.
	h.expect("GET", "/v1/bridges/"+id, key, nil, 404, CodeNotFound)

	move := "/v1/admin/bridges/" + id + "/move"
	body := map[string]any{"accountId": str(own, "accountId")}
	h.expect("POST", move, "", body, 401, CodeUnauthorized)
	h.expect("POST", move, key, body, 401, CodeUnauthorized)
	h.expect("POST", move, testAdminToken, map[string]any{"accountId": relayAccount}, 400, CodeInvalidField)
	h.expect("POST", move, testAdminToken, map[string]any{"accountId": "00000000-0000-0000-0000-000000000000"}, 404, CodeNotFound)
	h.expect("POST", move, testAdminToken, map[string]any{}, 400, CodeInvalidField)
	h.expect("POST", move, testAdminToken, map[string]any{"accountId": str(own, "accountId"), "owner": "x"}, 400, CodeUnknownField)
	h.expect("POST", "/v1/admin/bridges/not-a-uuid/move", testAdminToken, body, 404, CodeNotFound)

	moved := h.expect("POST", move, testAdminToken, body, 200, "")
	if got := str(moved["bridge"].(map[string]any), "accountId"); got != str(own, "accountId") {
		t.Fatalf("moved bridge belongs to %s", got)
	}
	got := h.expect("GET", "/v1/bridges/"+id, key, nil, 200, "")
	if str(got["bridge"].(map[string]any), "address") != addr {
		t.Fatalf("alice sees %v", got)
	}
	if n := len(h.expect("GET", "/v1/admin/bridges?account=relaycc", testAdminToken, nil, 200, "")["bridges"].([]any)); n != 0 {
		t.Fatalf("%d relaycc bridges after the move", n)
	}
	// The quota of the target holds: alice has 2 of 2 now.
	second := h.expect("POST", "/signup", "", map[string]any{"key": testSignupKey,
		"forwardHandler": map[string]any{"httpUrl": publicURL}}, 200, "")
	relay = h.expect("GET", "/v1/admin/bridges?account=relaycc", testAdminToken, nil, 200, "")["bridges"].([]any)
	if len(relay) != 1 || str(relay[0].(map[string]any), "address") != str(second, "ethAddress") {
		t.Fatalf("relaycc bridges: %v", relay)
	}
	h.expect("POST", "/v1/admin/bridges/"+str(relay[0].(map[string]any), "id")+"/move", testAdminToken, body, 429, CodeQuotaExceeded)
}
