package http

import (
	"context"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xmtpbridge/bridge/persistence"
)

func TestRelayccSignup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	m := h.expect("POST", "/signup", "", map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": publicURL, "isBot": true}}, 200, "")
	if len(m) != 4 || !eip55.MatchString(str(m, "ethAddress")) || !strings.HasPrefix(str(m, "hookToken"), persistence.HookTokenPrefix) ||
		!strings.HasPrefix(str(m, "webhookSecret"), "whsec_") {
		t.Fatalf("signup response %v, want exactly ok, ethAddress, hookToken, webhookSecret", m)
	}
	b, err := h.store.BridgeByAddress(context.Background(), str(m, "ethAddress"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Forward.URL != publicURL || b.Forward.BodyFormat != persistence.FormatRelaycc || b.Forward.ReplyMode != persistence.ReplyReply {
		t.Fatalf("stored forward config %+v", b.Forward)
	}
	acct, err := h.store.GetAccount(context.Background(), b.AccountID)
	if err != nil || acct.SystemName != "relaycc" {
		t.Fatalf("bridge owner %+v %v, want the relaycc system account", acct, err)
	}
	m2 := h.expect("POST", "/signup", "", map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": publicURL}}, 200, "")
	b2, _ := h.store.BridgeByAddress(context.Background(), str(m2, "ethAddress"))
	if b2.Forward.ReplyMode != persistence.ReplyNone || b2.AccountID != b.AccountID {
		t.Fatalf("second relaycc bridge %+v", b2)
	}

	for _, tc := range []struct {
		body   any
		status int
		code   string
	}{
		{map[string]any{"key": "wrong", "forwardHandler": map[string]any{"httpUrl": publicURL}}, 401, CodeUnauthorized},
		{map[string]any{"forwardHandler": map[string]any{"httpUrl": publicURL}}, 401, CodeUnauthorized},
		{map[string]any{"key": testSignupKey}, 400, CodeInvalidField},
		{map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": "http://127.0.0.1:3000/"}}, 400, CodeUnsafeTarget},
		{map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": "http://169.254.169.254/latest/meta-data"}}, 400, CodeUnsafeTarget},
		{map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": "file:///etc/passwd"}}, 400, CodeInvalidField},
		{map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": publicURL, "isBot": "yes"}}, 400, CodeWrongType},
		{map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": publicURL, "name": "x"}}, 400, CodeUnknownField},
	} {
		h.expect("POST", "/signup", "", tc.body, tc.status, tc.code)
	}

	// With private targets allowed, a local endpoint is accepted.
	endpoint := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {}))
	defer endpoint.Close()
	dev := newHarness(t, func(o *Options) { o.AllowPrivateTargets = true })
	dev.expect("POST", "/signup", "", map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": endpoint.URL}}, 200, "")
}

func TestRelayccHookAndInstance(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.TokenFailuresPerMinute = 1000 })
	one := h.expect("POST", "/signup", "", map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": publicURL, "isBot": true}}, 200, "")
	two := h.expect("POST", "/signup", "", map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": publicURL}}, 200, "")
	addr, token := str(one, "ethAddress"), str(one, "hookToken")
	target := "0x00000000000000000000000000000000000000aa"
	hook := func(from, to, msg, tok string) map[string]any {
		return map[string]any{"sendFromBridgeAddress": from, "targetAddress": to, "message": msg, "token": tok}
	}

	// An authorised, valid request reaches the sender, which this node
	// lacks.
	m := h.expect("POST", "/hook", "", hook(addr, target, "hello", token), 503, CodeSendingDisabled)
	if len(m) != 3 || m["error"] != "sending is not available on this node: it runs no actor runtime" {
		t.Fatalf("hook without a sender: %v", m)
	}
	// Lower-case addresses name the same bridge.
	h.expect("POST", "/hook", "", hook(strings.ToLower(addr), target, "hello", token), 503, CodeSendingDisabled)

	// The signup key is no token by default; see relaycc_tokens_test.go.
	for _, tok := range []string{"wrong", "", str(two, "hookToken"), testSignupKey} {
		h.expect("POST", "/hook", "", hook(addr, target, "hello", tok), 401, CodeUnauthorized)
	}
	h.expect("POST", "/hook", "", hook(addr, "bob", "hello", token), 400, CodeInvalidField)
	h.expect("POST", "/hook", "", hook("0x1", target, "hello", token), 400, CodeInvalidField)
	h.expect("POST", "/hook", "", hook(addr, target, "", token), 400, CodeInvalidField)
	h.expect("POST", "/hook", "", hook(target, target, "hello", token), 401, CodeUnauthorized)

	// /instance reports the stored status.
	m = h.expect("POST", "/instance", "", map[string]any{"key": token, "bridgeAddress": addr}, 200, "")
	inst := m["instance"].(map[string]any)
	if inst["ethAddress"] != addr || inst["status"] != "active" || inst["forwardHandler"].(map[string]any)["isBot"] != true {
		t.Fatalf("instance: %v", m)
	}
	for _, tok := range []string{"wrong", "", str(two, "hookToken"), testSignupKey} {
		h.expect("POST", "/instance", "", map[string]any{"key": tok, "bridgeAddress": addr}, 401, CodeUnauthorized)
	}
	h.expect("POST", "/instance", "", map[string]any{"key": token, "bridgeAddress": target}, 401, CodeUnauthorized)
	h.expect("POST", "/instance", "", map[string]any{"key": token, "bridgeAddress": "nope"}, 400, CodeInvalidField)

	// A disabled bridge does not send; the answer is 409, as on /v1.
	b, err := h.store.BridgeByAddress(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.SetBridgeStatus(context.Background(), b.ID, persistence.StatusDisabled); err != nil {
		t.Fatal(err)
	}
	h.expect("POST", "/hook", "", hook(addr, target, "hello", token), 409, CodeBridgeDisabled)
	m = h.expect("POST", "/instance", "", map[string]any{"key": token, "bridgeAddress": addr}, 200, "")
	if m["instance"].(map[string]any)["status"] != "disabled" {
		t.Fatalf("instance after disable: %v", m)
	}
}

func TestRelayccCanary(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	m := h.expect("POST", "/canary", "", map[string]any{"message": map[string]any{"content": "ping 42"}}, 200, "")
	if len(m) != 2 || m["data"] != "Hello from the proxied server! Your message was: ping 42" {
		t.Fatalf("canary: %v", m)
	}
	// Forward handlers post whole messages: extra fields are fine.
	h.expect("POST", "/canary", "", map[string]any{"message": map[string]any{"content": "x", "senderAddress": "0xab", "id": "1"}, "bridge": "y"}, 200, "")
	h.expect("POST", "/canary", "", map[string]any{"message": map[string]any{}}, 400, CodeInvalidField)
	h.expect("POST", "/canary", "", map[string]any{"message": map[string]any{"content": 5}}, 400, CodeWrongType)
	h.expect("POST", "/canary", "", `{"message":`, 400, CodeInvalidJSON)
	h.expect("POST", "/canary", "", `{}`, 400, CodeInvalidField)
}
