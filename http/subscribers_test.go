package http

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestSubscribersAndBroadcastsAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key := h.signup("alice")
	other := h.signup("mallory")
	created := h.expect("POST", "/v1/bridges", key, map[string]any{"name": "news", "forward": map[string]any{"url": publicURL},
		"subscriptions": map[string]any{"subscribeWord": "start", "unsubscribeWord": "stop"}}, 201, "")
	b := created["bridge"].(map[string]any)
	id := str(b, "id")
	subs := b["subscriptions"].(map[string]any)
	if subs["enabled"] != true || subs["subscribeWord"] != "start" || subs["unsubscribeWord"] != "stop" {
		t.Fatalf("subscriptions: %v", subs)
	}
	for _, bad := range []map[string]any{
		{"subscribeWord": ""}, {"subscribeWord": "two words"}, {"unsubscribeWord": strings.Repeat("x", 65)},
		{"subscribeWord": "STOP"}, {"enabled": "yes"}, {"colour": "red"},
	} {
		status, m := h.do("PATCH", "/v1/bridges/"+id, key, map[string]any{"subscriptions": bad})
		if status != 400 {
			t.Fatalf("subscriptions %v: %d %v", bad, status, m)
		}
	}
	off := h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"subscriptions": map[string]any{"enabled": false}}, 200, "")
	if s := off["bridge"].(map[string]any)["subscriptions"].(map[string]any); s["enabled"] != false || s["subscribeWord"] != "start" {
		t.Fatalf("turned off: %v", s)
	}

	ctx := context.Background()
	l, err := h.store.AcquireLease(ctx, id, "grain", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{"0x00000000000000000000000000000000000000a1", "0x00000000000000000000000000000000000000a2"}
	for _, a := range addrs {
		if err := h.store.SetSubscribed(ctx, l, id, a, true); err != nil {
			t.Fatal(err)
		}
	}
	page := h.expect("GET", "/v1/bridges/"+id+"/subscribers?limit=1", key, nil, 200, "")
	if list := page["subscribers"].([]any); len(list) != 1 || list[0].(map[string]any)["address"] != addrs[0] || str(page, "nextCursor") != addrs[0] {
		t.Fatalf("first page: %v", page)
	}
	h.expect("GET", "/v1/bridges/"+id+"/subscribers?cursor=nope", key, nil, 400, CodeInvalidCursor)
	h.expect("GET", "/v1/bridges/"+id+"/subscribers", other, nil, 404, CodeNotFound)
	h.expect("DELETE", "/v1/bridges/"+id+"/subscribers/"+addrs[1], other, nil, 404, CodeNotFound)
	h.expect("DELETE", "/v1/bridges/"+id+"/subscribers/not-an-address", key, nil, 404, CodeNotFound)
	h.expect("DELETE", "/v1/bridges/"+id+"/subscribers/"+addrs[1], key, nil, 200, "")
	h.expect("DELETE", "/v1/bridges/"+id+"/subscribers/"+addrs[1], key, nil, 404, CodeNotFound)

	h.expect("POST", "/v1/bridges/"+id+"/broadcasts", key, map[string]any{"content": ""}, 400, CodeInvalidField)
	h.expect("POST", "/v1/bridges/"+id+"/broadcasts", key, map[string]any{"content": strings.Repeat("x", 40<<10)}, 400, CodeInvalidField)
	h.expect("POST", "/v1/bridges/"+id+"/broadcasts", key, map[string]any{"content": "x", "to": "everyone"}, 400, CodeUnknownField)
	h.expect("POST", "/v1/bridges/"+id+"/broadcasts", other, map[string]any{"content": "x"}, 404, CodeNotFound)
	bc := h.expect("POST", "/v1/bridges/"+id+"/broadcasts", key, map[string]any{"content": "hello all"}, 202, "")
	if bc["recipients"] != 1.0 || str(bc, "id") == "" {
		t.Fatalf("broadcast: %v", bc)
	}
	st := h.expect("GET", "/v1/bridges/"+id+"/broadcasts/"+str(bc, "id"), key, nil, 200, "")["broadcast"].(map[string]any)
	if st["recipients"] != 1.0 || st["pending"] != 1.0 || st["sent"] != 0.0 || st["failed"] != 0.0 {
		t.Fatalf("status: %v", st)
	}
	h.expect("GET", "/v1/bridges/"+id+"/broadcasts/"+str(bc, "id"), other, nil, 404, CodeNotFound)
	h.expect("GET", "/v1/bridges/"+id+"/broadcasts/not-a-uuid", key, nil, 404, CodeNotFound)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"status": "disabled"}, 200, "")
	h.expect("POST", "/v1/bridges/"+id+"/broadcasts", key, map[string]any{"content": "x"}, 409, CodeBridgeDisabled)
}
