package http

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/xmtpbridge/bridge/xmtp/keys"
)

var eip55 = regexp.MustCompile(`^0x[0-9a-fA-F]{40}$`)

func TestBridgeLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key := h.signup("alice")

	m := h.expect("POST", "/v1/bridges", key, map[string]any{
		"name": "weather",
		"forward": map[string]any{
			"url": publicURL, "bodyFormat": "relaycc", "replyMode": "reply", "timeoutMs": 2500, "maxConcurrency": 3,
			"headers":      map[string]string{"Authorization": "Bearer endpoint-credential"},
			"allowSenders": []string{"0x00000000000000000000000000000000000000aa"},
		},
	}, 201, "")
	b := m["bridge"].(map[string]any)
	secret := str(m, "webhookSecret")
	id := str(b, "id")
	if !strings.HasPrefix(secret, "whsec_") || !eip55.MatchString(str(b, "address")) || str(b, "status") != "active" {
		t.Fatalf("create bridge returned %v", m)
	}
	fwd := b["forward"].(map[string]any)
	if fwd["bodyFormat"] != "relaycc" || fwd["replyMode"] != "reply" || fwd["timeoutMs"] != 2500.0 || fwd["maxConcurrency"] != 3.0 {
		t.Fatalf("forward config %v", fwd)
	}
	if fwd["headers"].(map[string]any)["Authorization"] != redactedHeader {
		t.Fatalf("header values are not redacted: %v", fwd["headers"])
	}

	// The stored identity is a real XMTP key bundle for the returned
	// address, and the stored header keeps its value.
	raw, err := h.store.KeyBundle(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := keys.UnmarshalPrivateKeyBundle(raw)
	if err != nil {
		t.Fatalf("stored key bundle does not decode: %v", err)
	}
	if bundle.Address() != str(b, "address") {
		t.Fatalf("bundle address %s, bridge address %s", bundle.Address(), str(b, "address"))
	}
	stored, err := h.store.BridgeByID(context.Background(), id)
	if err != nil || stored.Forward.Headers["Authorization"] != "Bearer endpoint-credential" {
		t.Fatalf("stored headers %v, %v", stored.Forward.Headers, err)
	}
	ws, err := h.store.WebhookSecrets(context.Background(), id)
	if err != nil || ws[0].Secret != secret {
		t.Fatalf("stored webhook secret differs: %v", err)
	}

	got := h.expect("GET", "/v1/bridges/"+id, key, nil, 200, "")
	if got["bridge"].(map[string]any)["address"] != b["address"] {
		t.Fatalf("get bridge: %v", got)
	}

	// Defaults apply to absent fields.
	m2 := h.expect("POST", "/v1/bridges", key, map[string]any{"forward": map[string]any{"url": publicURL}}, 201, "")
	f2 := m2["bridge"].(map[string]any)["forward"].(map[string]any)
	if f2["bodyFormat"] != "json" || f2["replyMode"] != "none" || f2["timeoutMs"] != 10000.0 || f2["maxConcurrency"] != 64.0 {
		t.Fatalf("defaults: %v", f2)
	}
	h.createBridge(key)

	// Pagination walks all three bridges in creation order.
	var ids []string
	cursor := ""
	for {
		path := "/v1/bridges?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		page := h.expect("GET", path, key, nil, 200, "")
		for _, x := range page["bridges"].([]any) {
			ids = append(ids, x.(map[string]any)["id"].(string))
		}
		cursor = str(page, "nextCursor")
		if cursor == "" {
			break
		}
	}
	if len(ids) != 3 || ids[0] != id {
		t.Fatalf("paginated ids %v", ids)
	}
	h.expect("GET", "/v1/bridges?limit=0", key, nil, 400, CodeInvalidField)
	h.expect("GET", "/v1/bridges?limit=abc", key, nil, 400, CodeInvalidField)
	h.expect("GET", "/v1/bridges?cursor=garbage", key, nil, 400, CodeInvalidCursor)

	// PATCH changes only what it names.
	up := h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"status": "disabled", "forward": map[string]any{"timeoutMs": 900}}, 200, "")
	ub := up["bridge"].(map[string]any)
	uf := ub["forward"].(map[string]any)
	if ub["status"] != "disabled" || uf["timeoutMs"] != 900.0 || uf["replyMode"] != "reply" || ub["name"] != "weather" {
		t.Fatalf("patch: %v", ub)
	}
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"status": "endpoint_gone"}, 400, CodeInvalidField)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"bodyFormat": "xml"}}, 400, CodeInvalidField)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"replyMode": "always"}}, 400, CodeInvalidField)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"url": "http://127.0.0.1:8080/"}}, 400, CodeUnsafeTarget)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"url": "http://[::1]/"}}, 400, CodeUnsafeTarget)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"headers": map[string]string{"Host": "evil"}}}, 400, CodeInvalidField)
	// Every header the deliverer would drop is refused when saved, not
	// accepted and then silently skipped.
	for _, name := range []string{"webhook-signature", "Proxy-Authenticate", "Idempotency-Key"} {
		h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"headers": map[string]string{name: "x"}}}, 400, CodeInvalidField)
	}
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"headers": map[string]string{"X-A": "a\r\nX-B: b"}}}, 400, CodeInvalidField)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"headers": map[string]string{"bad name": "x"}}}, 400, CodeInvalidField)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"denySenders": []string{"bob"}}}, 400, CodeInvalidField)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"maxConcurrency": 0}}, 400, CodeInvalidField)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"timeoutMs": 10}}, 400, CodeInvalidField)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"name": strings.Repeat("n", 201)}, 400, CodeInvalidField)
	after := h.expect("GET", "/v1/bridges/"+id, key, nil, 200, "")
	if after["bridge"].(map[string]any)["forward"].(map[string]any)["timeoutMs"] != 900.0 {
		t.Fatalf("a refused patch changed the bridge: %v", after)
	}

	// Create validation.
	// Without forward.url the bridge is a bot with no endpoint (its
	// on_message plug-in answers); see docs/plugins.md.
	if bot := h.expect("POST", "/v1/bridges", key, map[string]any{"name": "x"}, 201, ""); bot["bridge"].(map[string]any)["forward"].(map[string]any)["url"] != "" {
		t.Fatalf("a bridge without forward.url: %v", bot)
	}
	h.expect("POST", "/v1/bridges", key, map[string]any{"forward": map[string]any{"url": ""}}, 400, CodeInvalidField)
	h.expect("POST", "/v1/bridges", key, map[string]any{"forward": map[string]any{"url": "ftp://8.8.8.8/"}}, 400, CodeInvalidField)
	h.expect("POST", "/v1/bridges", key, map[string]any{"forward": map[string]any{"url": "http://10.0.0.5/hook"}}, 400, CodeUnsafeTarget)
	h.expect("POST", "/v1/bridges", key, map[string]any{"forward": map[string]any{"url": "http://100.64.1.1/hook"}}, 400, CodeUnsafeTarget)
	h.expect("POST", "/v1/bridges", key, map[string]any{"forward": map[string]any{"url": "http://[fd00::1]/hook"}}, 400, CodeUnsafeTarget)
	// The IPv6 forms issue 10 found saved: IPv4-compatible, IPv4-translated,
	// site-local, Teredo, benchmarking, documentation, SRv6, and a zone.
	for _, u := range []string{"http://[::127.0.0.1]/", "http://[::ffff:0:7f00:1]/", "http://[fec0::1]/",
		"http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "http://[2001:2::1]/", "http://[3fff::1]/",
		"http://[5f00::1]/", "http://[fe80::1%25eth0]/"} {
		h.expect("POST", "/v1/bridges", key, map[string]any{"forward": map[string]any{"url": u}}, 400, CodeUnsafeTarget)
		h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"url": u}}, 400, CodeUnsafeTarget)
	}

	// Rotation keeps the old secret valid for the grace period.
	rot := h.expect("POST", "/v1/bridges/"+id+"/webhook-secret/rotate", key, map[string]any{"graceSeconds": 60}, 200, "")
	fresh := str(rot, "webhookSecret")
	ws, err = h.store.WebhookSecrets(context.Background(), id)
	if err != nil || len(ws) != 2 || ws[0].Secret != fresh || ws[1].Secret != secret || fresh == secret {
		t.Fatalf("after rotation: %d secrets, err %v", len(ws), err)
	}
	h.expect("POST", "/v1/bridges/"+id+"/webhook-secret/rotate", key, nil, 200, "")
	h.expect("POST", "/v1/bridges/"+id+"/webhook-secret/rotate", key, map[string]any{"graceSeconds": -1}, 400, CodeInvalidField)

	// A disabled bridge does not send.
	h.expect("POST", "/v1/bridges/"+id+"/messages", key, map[string]any{"to": "0x00000000000000000000000000000000000000aa", "content": "hi"}, 409, CodeBridgeDisabled)
	// Sending needs the runtime; without it the API says so.
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"status": "active"}, 200, "")
	send := h.expect("POST", "/v1/bridges/"+id+"/messages", key, map[string]any{"to": "0x00000000000000000000000000000000000000aa", "content": "hi"}, 503, CodeSendingDisabled)
	if send["error"] != "sending is not available on this node: it runs no actor runtime" {
		t.Fatalf("send: %v", send)
	}
	h.expect("POST", "/v1/bridges/"+id+"/messages", key, map[string]any{"to": "bob", "content": "hi"}, 400, CodeInvalidField)
	h.expect("POST", "/v1/bridges/"+id+"/messages", key, map[string]any{"to": "0x00000000000000000000000000000000000000aa", "content": ""}, 400, CodeInvalidField)

	h.expect("DELETE", "/v1/bridges/"+id, key, nil, 200, "")
	h.expect("GET", "/v1/bridges/"+id, key, nil, 404, CodeNotFound)
	h.expect("DELETE", "/v1/bridges/"+id, key, nil, 404, CodeNotFound)
	h.expect("GET", "/v1/bridges/not-a-uuid", key, nil, 404, CodeNotFound)
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	alice := h.signup("alice")
	bob := h.signup("bob")
	b, _ := h.createBridge(alice)
	id := str(b, "id")
	missing := "0190f5a4-0000-7000-8000-000000000000"

	for _, target := range []string{id, missing} {
		base := "/v1/bridges/" + target
		h.expect("GET", base, bob, nil, 404, CodeNotFound)
		h.expect("PATCH", base, bob, map[string]any{"name": "mine"}, 404, CodeNotFound)
		h.expect("DELETE", base, bob, nil, 404, CodeNotFound)
		h.expect("POST", base+"/webhook-secret/rotate", bob, nil, 404, CodeNotFound)
		h.expect("GET", base+"/deliveries", bob, nil, 404, CodeNotFound)
		h.expect("GET", base+"/dead-letters", bob, nil, 404, CodeNotFound)
		h.expect("POST", base+"/dead-letters/1/replay", bob, nil, 404, CodeNotFound)
		h.expect("POST", base+"/messages", bob, map[string]any{"to": "0x00000000000000000000000000000000000000aa", "content": "x"}, 404, CodeNotFound)
	}
	// The answer for another tenant's bridge is the one for a missing bridge.
	_, a := h.do("GET", "/v1/bridges/"+id, bob, nil)
	_, m := h.do("GET", "/v1/bridges/"+missing, bob, nil)
	if fmt.Sprint(a) != fmt.Sprint(m) {
		t.Fatalf("another tenant's bridge answers %v, a missing one %v", a, m)
	}
	list := h.expect("GET", "/v1/bridges", bob, nil, 200, "")
	if n := len(list["bridges"].([]any)); n != 0 {
		t.Fatalf("bob sees %d bridges", n)
	}
	got := h.expect("GET", "/v1/bridges/"+id, alice, nil, 200, "")
	if got["bridge"].(map[string]any)["name"] != "bot" {
		t.Fatalf("alice's bridge changed: %v", got)
	}
}
