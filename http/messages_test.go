package http

import (
	"context"
	"testing"

	"github.com/xmtpbridge/bridge/persistence"
)

func TestSentMessagesAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key := h.signup("alice")
	b, _ := h.createBridge(key)
	id := str(b, "id")
	ctx := context.Background()
	to := "0x00000000000000000000000000000000000000aa"
	for _, m := range []string{"m-1", "m-2", "m-3"} {
		if err := h.store.RecordSend(ctx, id, m, persistence.SendREST, to, persistence.SendSent, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.store.RecordSend(ctx, id, "m-2", persistence.SendREST, to, persistence.SendFailed, "publish: node down"); err != nil {
		t.Fatal(err)
	}
	got := h.expect("GET", "/v1/bridges/"+id+"/messages/m-2", key, nil, 200, "")
	m := got["message"].(map[string]any)
	if m["status"] != "failed" || m["attempts"] != 2.0 || m["lastError"] != "publish: node down" || m["source"] != "rest" || m["to"] != to {
		t.Fatalf("status of m-2: %v", m)
	}
	list := h.expect("GET", "/v1/bridges/"+id+"/messages?limit=2", key, nil, 200, "")
	page := list["messages"].([]any)
	if len(page) != 2 || page[0].(map[string]any)["messageId"] != "m-3" || str(list, "nextCursor") == "" {
		t.Fatalf("first page: %v", list)
	}
	rest := h.expect("GET", "/v1/bridges/"+id+"/messages?cursor="+str(list, "nextCursor"), key, nil, 200, "")
	if n := len(rest["messages"].([]any)); n != 1 || str(rest, "nextCursor") != "" {
		t.Fatalf("second page: %v", rest)
	}

	// Another account, an unknown message and bad paging.
	other := h.signup("bob")
	h.expect("GET", "/v1/bridges/"+id+"/messages/m-2", other, nil, 404, CodeNotFound)
	h.expect("GET", "/v1/bridges/"+id+"/messages", other, nil, 404, CodeNotFound)
	h.expect("GET", "/v1/bridges/"+id+"/messages/nope", key, nil, 404, CodeNotFound)
	h.expect("GET", "/v1/bridges/"+id+"/messages/m-2", "", nil, 401, CodeUnauthorized)
	h.expect("GET", "/v1/bridges/"+id+"/messages?cursor=zz", key, nil, 400, CodeInvalidCursor)
	h.expect("GET", "/v1/bridges/"+id+"/messages?limit=0", key, nil, 400, CodeInvalidField)
}
