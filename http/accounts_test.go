package http

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/xmtpbridge/bridge/internal/testkit"
)

// clearOfSignupWindowEdge waits, when a new signup window starts within
// the next two seconds, until it has started, so that a test's signups
// all count in one window.
func clearOfSignupWindowEdge() {
	if left := signupWindow - time.Duration(time.Now().UnixNano())%signupWindow; left < 2*time.Second {
		time.Sleep(left + 50*time.Millisecond)
	}
}

func TestAccountSignup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.SignupRatePerMinute = 4 })
	clearOfSignupWindowEdge()
	m := h.expect("POST", "/v1/accounts", "", map[string]any{"name": "alice", "signupKey": testSignupKey}, 201, "")
	key := str(m, "apiKey")
	acct := m["account"].(map[string]any)
	got := h.expect("GET", "/v1/account", key, nil, 200, "")
	if got["account"].(map[string]any)["id"] != acct["id"] {
		t.Fatalf("GET /v1/account = %v, want %v", got, acct)
	}

	h.expect("POST", "/v1/accounts", "", map[string]any{"name": "eve", "signupKey": "wrong"}, 401, CodeUnauthorized)
	h.expect("POST", "/v1/accounts", "", map[string]any{"name": "eve"}, 401, CodeUnauthorized)
	h.expect("POST", "/v1/accounts", "", map[string]any{"name": " ", "signupKey": testSignupKey}, 400, CodeInvalidField)
	// The limit is 4 per minute, counting refused requests, and 4 were made.
	h.expect("POST", "/v1/accounts", "", map[string]any{"name": "bob", "signupKey": testSignupKey}, 429, CodeRateLimited)

	open := newHarness(t, func(o *Options) { o.SignupOpen = true; o.SignupKey = "" })
	open.expect("POST", "/v1/accounts", "", map[string]any{"name": "carol"}, 201, "")
	closed := newHarness(t, func(o *Options) { o.SignupKey = "" })
	closed.expect("POST", "/v1/accounts", "", map[string]any{"name": "carol", "signupKey": ""}, 403, CodeSignupClosed)
}

func TestAPIKeyAuthentication(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key := h.signup("alice")
	for _, path := range []string{"/v1/account", "/v1/bridges", "/v1/api-keys"} {
		h.expect("GET", path, "", nil, 401, CodeUnauthorized)
		h.expect("GET", path, key+"x", nil, 401, CodeUnauthorized)
		h.expect("GET", path, "xbk_"+strings.Repeat("A", 43), nil, 401, CodeUnauthorized)
	}

	m := h.expect("POST", "/v1/api-keys", key, map[string]any{"name": "ci"}, 201, "")
	second := str(m, "apiKey")
	secondID := m["apiKeyInfo"].(map[string]any)["id"].(string)
	h.expect("GET", "/v1/account", second, nil, 200, "")
	h.expect("POST", "/v1/api-keys", key, map[string]any{"name": strings.Repeat("n", 201)}, 400, CodeInvalidField)
	list := h.expect("GET", "/v1/api-keys", key, nil, 200, "")
	if n := len(list["apiKeys"].([]any)); n != 2 {
		t.Fatalf("%d api keys listed, want 2", n)
	}
	for _, k := range list["apiKeys"].([]any) {
		for field, v := range k.(map[string]any) {
			if s, ok := v.(string); ok && (s == key || s == second) {
				t.Fatalf("api key list shows the secret in %s", field)
			}
		}
	}
	h.expect("DELETE", "/v1/api-keys/"+secondID, key, nil, 200, "")
	h.expect("GET", "/v1/account", second, nil, 401, CodeUnauthorized)
	h.expect("DELETE", "/v1/api-keys/"+secondID, key, nil, 404, CodeNotFound)

	// Another tenant cannot revoke this account's key.
	other := h.signup("bob")
	firstID := list["apiKeys"].([]any)[0].(map[string]any)["id"].(string)
	h.expect("DELETE", "/v1/api-keys/"+firstID, other, nil, 404, CodeNotFound)
	h.expect("GET", "/v1/account", key, nil, 200, "")
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key := h.signup("alice")
	h.createBridge(key)
	for _, path := range []string{"/v1/admin/accounts", "/v1/admin/bridges"} {
		h.expect("GET", path, "", nil, 401, CodeUnauthorized)
		h.expect("GET", path, "wrong", nil, 401, CodeUnauthorized)
		h.expect("GET", path, key, nil, 401, CodeUnauthorized)
	}
	accts := h.expect("GET", "/v1/admin/accounts", testAdminToken, nil, 200, "")
	if n := len(accts["accounts"].([]any)); n != 1 {
		t.Fatalf("%d accounts", n)
	}
	br := h.expect("GET", "/v1/admin/bridges", testAdminToken, nil, 200, "")
	if n := len(br["bridges"].([]any)); n != 1 || br["node"] != "node-test" {
		t.Fatalf("admin bridges: %v", br)
	}
	h.expect("GET", "/v1/admin/bridges?cursor=bad", testAdminToken, nil, 400, CodeInvalidCursor)
	off := newHarness(t, func(o *Options) { o.AdminToken = "" })
	off.expect("GET", "/v1/admin/accounts", "", nil, 404, CodeAdminDisabled)
	off.expect("GET", "/v1/admin/accounts", testAdminToken, nil, 404, CodeAdminDisabled)
}

// TestSignupLimitHoldsAcrossNodes runs two servers on one store, as two
// nodes of a cluster share Postgres: the limit counts the signups of a
// client on both.
func TestSignupLimitHoldsAcrossNodes(t *testing.T) {
	t.Parallel()
	a := newHarness(t, func(o *Options) { o.SignupRatePerMinute = 3 })
	opts := a.srv.opts
	opts.Registry = prometheus.NewRegistry()
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.NodeID = "node-b"
	other, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	b := &harness{t: t, srv: other, store: a.store, reg: opts.Registry, logs: &testkit.Buffer{}}
	clearOfSignupWindowEdge()
	a.expect("POST", "/v1/accounts", "", map[string]any{"name": "a1", "signupKey": testSignupKey}, 201, "")
	b.expect("POST", "/v1/accounts", "", map[string]any{"name": "b1", "signupKey": testSignupKey}, 201, "")
	a.expect("POST", "/v1/accounts", "", map[string]any{"name": "a2", "signupKey": testSignupKey}, 201, "")
	b.expect("POST", "/v1/accounts", "", map[string]any{"name": "b2", "signupKey": testSignupKey}, 429, CodeRateLimited)
	// relaycc /signup shares the limit and answers it with 429 too.
	a.expect("POST", "/signup", "", map[string]any{"signupKey": testSignupKey}, 429, CodeRateLimited)
}
