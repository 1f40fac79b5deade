package http

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

func TestDeliveriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key := h.signup("alice")
	b, _ := h.createBridge(key)
	id := str(b, "id")
	ctx := context.Background()
	var ids []int64
	for i := 0; i < 3; i++ {
		d, _, err := h.store.RecordDelivery(ctx, persistence.NewDelivery{
			BridgeID: id, MessageID: fmt.Sprintf("hash-%d", i), Topic: "/xmtp/0/m-1/proto",
			SenderAddress: "0x00000000000000000000000000000000000000aa", SentNs: int64(i + 1), Payload: []byte("hello"),
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	if err := h.store.RecordAttempt(ctx, ids[1], persistence.DeliveryAttempt{StatusCode: 500, Latency: time.Millisecond, Error: "status 500"}, persistence.DeliveryDead, time.Now()); err != nil {
		t.Fatal(err)
	}
	all := h.expect("GET", "/v1/bridges/"+id+"/deliveries?limit=2", key, nil, 200, "")
	list := all["deliveries"].([]any)
	if len(list) != 2 || str(all, "nextCursor") == "" {
		t.Fatalf("first page: %v", all)
	}
	first := list[0].(map[string]any)
	if first["id"] != fmt.Sprint(ids[2]) || first["payload"] != "aGVsbG8=" || first["sentNs"] != "3" {
		t.Fatalf("newest delivery: %v", first)
	}
	rest := h.expect("GET", "/v1/bridges/"+id+"/deliveries?limit=2&cursor="+str(all, "nextCursor"), key, nil, 200, "")
	if n := len(rest["deliveries"].([]any)); n != 1 || str(rest, "nextCursor") != "" {
		t.Fatalf("second page: %v", rest)
	}
	dead := h.expect("GET", "/v1/bridges/"+id+"/dead-letters", key, nil, 200, "")
	dl := dead["deadLetters"].([]any)
	if len(dl) != 1 || dl[0].(map[string]any)["id"] != fmt.Sprint(ids[1]) || dl[0].(map[string]any)["lastError"] != "status 500" {
		t.Fatalf("dead letters: %v", dead)
	}
	h.expect("GET", "/v1/bridges/"+id+"/deliveries?cursor=-4", key, nil, 400, CodeInvalidCursor)
	h.expect("GET", "/v1/bridges/"+id+"/dead-letters?limit=500", key, nil, 400, CodeInvalidField)

	// Replay puts the dead letter back in the queue, once.
	replay := fmt.Sprintf("/v1/bridges/%s/dead-letters/%d/replay", id, ids[1])
	other := h.signup("bob")
	h.expect("POST", replay, other, nil, 404, CodeNotFound)
	r := h.expect("POST", replay, key, nil, 200, "")
	if d := r["delivery"].(map[string]any); d["status"] != "pending" || d["attempts"] != 0.0 {
		t.Fatalf("replayed delivery: %v", d)
	}
	h.expect("POST", replay, key, nil, 404, CodeNotFound)
	h.expect("POST", "/v1/bridges/"+id+"/dead-letters/abc/replay", key, nil, 404, CodeNotFound)
	dead = h.expect("GET", "/v1/bridges/"+id+"/dead-letters", key, nil, 200, "")
	if n := len(dead["deadLetters"].([]any)); n != 0 {
		t.Fatalf("%d dead letters after replay", n)
	}
}
