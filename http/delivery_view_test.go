package http

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// TestDeliveryViewShowsTextReplyAndAttempts checks what the owner sees of a
// delivery: the message as text, the endpoint's reply, every attempt with
// its status, latency and error, nextAttemptAt only while another attempt
// is due, and that no other account can read it.
func TestDeliveryViewShowsTextReplyAndAttempts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key := h.signup("alice")
	b, _ := h.createBridge(key)
	id := str(b, "id")
	ctx := context.Background()
	payload, err := content.Encode(content.Text("hello bridge"))
	if err != nil {
		t.Fatal(err)
	}
	lease, err := h.store.AcquireLease(ctx, id, "test-node", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := h.store.RecordDelivery(ctx, persistence.NewDelivery{BridgeID: id, MessageID: "hash-view", Topic: "/xmtp/0/m-1/proto",
		SenderAddress: "0x00000000000000000000000000000000000000aa", SentNs: 1, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/v1/bridges/%s/deliveries/%d", id, d.ID)
	if err := h.store.RecordAttempt(ctx, d.ID, persistence.DeliveryAttempt{StatusCode: 400, Latency: 12 * time.Millisecond,
		Error: "post delivery: endpoint answered 400"}, persistence.DeliveryFailed, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	failed := h.expect("GET", path, key, nil, 200, "")["delivery"].(map[string]any)
	if failed["text"] != "hello bridge" || failed["contentType"] != "xmtp.org/text:1.0" || failed["reply"] != nil ||
		failed["status"] != "failed" || failed["nextAttemptAt"] == nil || failed["purgedAt"] != nil {
		t.Fatalf("failed delivery: %v", failed)
	}
	if _, _, err := h.store.CompleteDelivery(ctx, lease, d.ID, persistence.DeliveryAttempt{StatusCode: 200, Latency: 3 * time.Millisecond},
		&persistence.Reply{BridgeID: id, Topic: d.Topic, TimestampNs: 9, Envelope: []byte("sealed elsewhere"), Text: "hi back"}); err != nil {
		t.Fatal(err)
	}
	done := h.expect("GET", path, key, nil, 200, "")["delivery"].(map[string]any)
	if done["reply"] != "hi back" || done["status"] != "succeeded" || done["nextAttemptAt"] != nil {
		t.Fatalf("succeeded delivery: %v", done)
	}
	log := done["attemptLog"].([]any)
	if len(log) != 2 {
		t.Fatalf("attempt log: %v", log)
	}
	a0, a1 := log[0].(map[string]any), log[1].(map[string]any)
	if a0["status"] != 400.0 || a0["latencyMs"] != 12.0 || !strings.Contains(a0["error"].(string), "400") || a0["at"] == "" {
		t.Fatalf("first attempt: %v", a0)
	}
	if a1["status"] != 200.0 || a1["latencyMs"] != 3.0 || a1["error"] != "" {
		t.Fatalf("second attempt: %v", a1)
	}
	// The list shows the same, and the status filter selects it.
	list := h.expect("GET", "/v1/bridges/"+id+"/deliveries?status=succeeded", key, nil, 200, "")["deliveries"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["reply"] != "hi back" || len(list[0].(map[string]any)["attemptLog"].([]any)) != 2 {
		t.Fatalf("succeeded deliveries: %v", list)
	}
	if n := len(h.expect("GET", "/v1/bridges/"+id+"/deliveries?status=failed", key, nil, 200, "")["deliveries"].([]any)); n != 0 {
		t.Fatalf("%d failed deliveries", n)
	}

	// Nobody else reads it: another account, another bridge of the owner,
	// an id that is no number, and no key at all.
	other := h.signup("mallory")
	h.expect("GET", path, other, nil, 404, CodeNotFound)
	b2, _ := h.createBridge(key)
	h.expect("GET", fmt.Sprintf("/v1/bridges/%s/deliveries/%d", str(b2, "id"), d.ID), key, nil, 404, CodeNotFound)
	h.expect("GET", "/v1/bridges/"+id+"/deliveries/1e3", key, nil, 404, CodeNotFound)
	h.expect("GET", "/v1/bridges/"+id+"/deliveries/99999999999999999999", key, nil, 404, CodeNotFound)
	h.expect("GET", path, "", nil, 401, CodeUnauthorized)
}

// TestForwardRetryMode checks the per-bridge retry setting: standard by
// default, final4xx when asked, and nothing else.
func TestForwardRetryMode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key := h.signup("alice")
	b, _ := h.createBridge(key)
	id := str(b, "id")
	forward := func(m map[string]any) map[string]any { f, _ := m["forward"].(map[string]any); return f }
	if got := str(forward(b), "retry"); got != "standard" {
		t.Fatalf("default retry mode %q", got)
	}
	out := h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"retry": "final4xx"}}, 200, "")
	if got := str(forward(out["bridge"].(map[string]any)), "retry"); got != "final4xx" {
		t.Fatalf("retry mode after the update: %q (%v)", got, out)
	}
	for _, bad := range []string{"never", "", "FINAL4XX"} {
		h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"retry": bad}}, 400, CodeInvalidField)
	}
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{"retry": 3}}, 400, CodeWrongType)
	got := h.expect("GET", "/v1/bridges/"+id, key, nil, 200, "")
	if str(forward(got["bridge"].(map[string]any)), "retry") != "final4xx" {
		t.Fatalf("retry mode after refused updates: %v", got)
	}
}
