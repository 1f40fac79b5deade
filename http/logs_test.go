package http

import (
	"strings"
	"testing"
)

func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key := h.signup("alice")
	b, whsec := h.createBridge(key)
	rot := h.expect("POST", "/v1/bridges/"+str(b, "id")+"/webhook-secret/rotate", key, nil, 200, "")
	sig := h.expect("POST", "/signup", "", map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": publicURL}}, 200, "")
	hook := str(sig, "hookToken")
	h.do("POST", "/hook", "", map[string]any{"sendFromBridgeAddress": str(sig, "ethAddress"), "targetAddress": str(b, "address"), "message": "hi", "token": hook})
	h.do("GET", "/v1/admin/bridges", testAdminToken, nil)
	h.do("GET", "/v1/admin/bridges", "wrong-admin", nil)
	h.do("POST", "/v1/accounts", "", map[string]any{"name": "x", "signupKey": "guess"})
	logs := h.logs.String()
	if !strings.Contains(logs, "bridge created") {
		t.Fatalf("expected logs, got %q", logs)
	}
	for name, secret := range map[string]string{
		"api key": key, "webhook secret": whsec, "rotated secret": str(rot, "webhookSecret"), "hook token": hook,
		"signup key": testSignupKey, "admin token": testAdminToken,
	} {
		if secret == "" || strings.Contains(logs, secret) {
			t.Errorf("%s %q appears in the logs (or is empty)", name, secret)
		}
	}
}
