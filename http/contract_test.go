package http

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

// TestUnknownFieldsAreRefusedByName is the first point of finding 10 of
// issue 10: a typo such as forward.replymode used to be taken silently
// (encoding/json matches keys without regard to case). Every key must be
// exactly a documented property, at any depth, and the refusal names it
// with its path; nothing is stored.
func TestUnknownFieldsAreRefusedByName(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.SignupRatePerMinute = 1000 })
	key := h.signup("alice")
	b, _ := h.createBridge(key)
	id := str(b, "id")
	cases := []struct {
		method, path, token, body, field string
	}{
		{"POST", "/v1/bridges", key, `{"name":"x","forward":{"url":"` + publicURL + `","replymode":"reply"}}`, "forward.replymode"},
		{"POST", "/v1/bridges", key, `{"Name":"x","forward":{"url":"` + publicURL + `"}}`, "Name"},
		{"POST", "/v1/bridges", key, `{"forward":{"URL":"` + publicURL + `"}}`, "forward.URL"},
		{"PATCH", "/v1/bridges/" + id, key, `{"forward":{"ReplyMode":"reply"}}`, "forward.ReplyMode"},
		{"PATCH", "/v1/bridges/" + id, key, `{"status":"active","extra":{"deep":[1,{"x":2}]}}`, "extra"},
		{"POST", "/v1/accounts", "", `{"name":"a","signupkey":"` + testSignupKey + `"}`, "signupkey"},
		{"POST", "/v1/api-keys", key, `{"name":"k","scope":"all"}`, "scope"},
		{"POST", "/v1/bridges/" + id + "/messages", key, `{"to":"0x00000000000000000000000000000000000000aa","Content":"hi"}`, "Content"},
		{"POST", "/v1/bridges/" + id + "/webhook-secret/rotate", key, `{"graceseconds":5}`, "graceseconds"},
		{"POST", "/signup", "", `{"key":"` + testSignupKey + `","forwardHandler":{"httpUrl":"` + publicURL + `","isbot":true}}`, "forwardHandler.isbot"},
		{"POST", "/hook", "", `{"sendFromBridgeAddress":"0x00000000000000000000000000000000000000aa","targetAddress":"0x00000000000000000000000000000000000000aa","message":"hi","Token":"t"}`, "Token"},
		{"POST", "/instance", "", `{"key":"k","bridgeaddress":"0x00000000000000000000000000000000000000aa"}`, "bridgeaddress"},
	}
	for _, tc := range cases {
		m := h.expect(tc.method, tc.path, tc.token, tc.body, 400, CodeUnknownField)
		if want := fmt.Sprintf("unknown field %q", tc.field); m["error"] != want {
			t.Errorf("%s %s %s: message %q, want %q", tc.method, tc.path, tc.body, m["error"], want)
		}
	}
	list := h.expect("GET", "/v1/bridges", key, nil, 200, "")
	if n := len(list["bridges"].([]any)); n != 1 {
		t.Fatalf("%d bridges after refused creations, want 1", n)
	}
	got := h.expect("GET", "/v1/bridges/"+id, key, nil, 200, "")["bridge"].(map[string]any)
	if got["forward"].(map[string]any)["replyMode"] != "none" {
		t.Fatalf("a refused PATCH changed the bridge: %v", got)
	}
	// The exact names are taken, and header names (a map) are free.
	m := h.expect("PATCH", "/v1/bridges/"+id, key, `{"forward":{"replyMode":"reply","headers":{"x-Any-Case":"1"}}}`, 200, "")
	if m["bridge"].(map[string]any)["forward"].(map[string]any)["replyMode"] != "reply" {
		t.Fatalf("PATCH with exact names: %v", m)
	}
}

// TestDeliveriesFilterByStatus: every documented filter of the delivery
// list filters (finding 10: ?status=failed was ignored).
func TestDeliveriesFilterByStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key := h.signup("alice")
	b, _ := h.createBridge(key)
	id := str(b, "id")
	ctx := context.Background()
	want := map[persistence.DeliveryStatus]int{}
	for i, st := range []persistence.DeliveryStatus{
		persistence.DeliveryPending, persistence.DeliveryFailed, persistence.DeliveryFailed,
		persistence.DeliveryDead, persistence.DeliverySucceeded, persistence.DeliverySucceeded, persistence.DeliverySucceeded,
	} {
		d, _, err := h.store.RecordDelivery(ctx, persistence.NewDelivery{
			BridgeID: id, MessageID: fmt.Sprintf("hash-%d", i), Topic: "/xmtp/0/m-1/proto",
			SenderAddress: "0x00000000000000000000000000000000000000aa", SentNs: int64(i + 1), Payload: []byte("hello"),
		})
		if err != nil {
			t.Fatal(err)
		}
		if st != persistence.DeliveryPending {
			if err := h.store.RecordAttempt(ctx, d.ID, persistence.DeliveryAttempt{StatusCode: 500, Latency: time.Millisecond, Error: "x"}, st, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		want[st]++
	}
	for _, st := range deliveryStatuses {
		m := h.expect("GET", "/v1/bridges/"+id+"/deliveries?status="+string(st), key, nil, 200, "")
		list := m["deliveries"].([]any)
		if len(list) != want[st] {
			t.Errorf("status=%s: %d deliveries, want %d", st, len(list), want[st])
		}
		for _, d := range list {
			if d.(map[string]any)["status"] != string(st) {
				t.Errorf("status=%s lists %v", st, d)
			}
		}
	}
	// The filter pages like the whole list.
	page := h.expect("GET", "/v1/bridges/"+id+"/deliveries?status=succeeded&limit=2", key, nil, 200, "")
	rest := h.expect("GET", "/v1/bridges/"+id+"/deliveries?status=succeeded&limit=2&cursor="+str(page, "nextCursor"), key, nil, 200, "")
	if len(page["deliveries"].([]any)) != 2 || len(rest["deliveries"].([]any)) != 1 || str(rest, "nextCursor") != "" {
		t.Fatalf("paged filter: %v then %v", page, rest)
	}
	all := h.expect("GET", "/v1/bridges/"+id+"/deliveries", key, nil, 200, "")
	if n := len(all["deliveries"].([]any)); n != 7 {
		t.Fatalf("unfiltered: %d deliveries, want 7", n)
	}
	for _, bad := range []string{"FAILED", "gone", "failed,dead"} {
		h.expect("GET", "/v1/bridges/"+id+"/deliveries?status="+bad, key, nil, 400, CodeInvalidField)
	}
}

// TestHeadersTooLargeHaveTheirOwnCode: a request whose headers overflow
// the server's buffer is 431 headers_too_large (finding 10: it carried
// bad_request), over a real connection.
func TestHeadersTooLargeHaveTheirOwnCode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	base := h.startReal()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 64<<10))
	r := bufio.NewReader(conn)
	status, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read status line: %v", err)
	}
	if !strings.Contains(status, " 431 ") {
		t.Fatalf("status line %q, want 431", status)
	}
	var body string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read headers: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	rest := make([]byte, 512)
	n, _ := r.Read(rest)
	body = string(rest[:n])
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil || m["code"] != CodeHeadersTooLarge || m["ok"] != false {
		t.Fatalf("431 body %q (%v), want code %s", body, err, CodeHeadersTooLarge)
	}
}

// TestDeeplyNestedBodiesAreRefusedCheaply: nesting under an unknown key is
// named without being walked, and nesting past encoding/json's limit is
// malformed JSON; neither recurses with the body.
func TestDeeplyNestedBodiesAreRefusedCheaply(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key := h.signup("alice")
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	m := h.expect("POST", "/v1/bridges", key, `{"forward":{"url":"`+publicURL+`"},"extra":`+nest(5000)+`}`, 400, CodeUnknownField)
	if m["error"] != `unknown field "extra"` {
		t.Fatalf("nested unknown field: %v", m)
	}
	h.expect("POST", "/v1/bridges", key, `{"forward":{"url":"`+publicURL+`"},"extra":`+nest(20000)+`}`, 400, CodeInvalidJSON)
	h.expect("POST", "/v1/bridges", key, `{"forward":{"allowSenders":`+nest(5000)+`}}`, 400, CodeWrongType)
	if n := len(h.expect("GET", "/v1/bridges", key, nil, 200, "")["bridges"].([]any)); n != 0 {
		t.Fatalf("%d bridges created by refused bodies", n)
	}
}
