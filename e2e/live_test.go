package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/xmtp/api"
)

// liveConn is a live consumer on github.com/coder/websocket.
type liveConn struct {
	t    testing.TB
	conn *websocket.Conn
	seq  int
	held []liveFrame
}

type liveFrame struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params map[string]any  `json:"params"`
	Result map[string]any  `json:"result"`
	Error  *struct {
		Code int            `json:"code"`
		Data map[string]any `json:"data"`
	} `json:"error"`
}

func dialLive(t testing.TB, apiURL, bridgeID, key, query string) *liveConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+key)
	url := "ws" + strings.TrimPrefix(apiURL, "http") + "/v1/bridges/" + bridgeID + "/live" + query
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %d %v", url, status, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &liveConn{t: t, conn: c}
}

func (lc *liveConn) read(timeout time.Duration) (liveFrame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, data, err := lc.conn.Read(ctx)
	if err != nil {
		return liveFrame{}, err
	}
	var f liveFrame
	if err := json.Unmarshal(data, &f); err != nil {
		lc.t.Fatalf("frame %q: %v", data, err)
	}
	return f, nil
}

// notification returns the next notification of the method, keeping the
// others for later.
func (lc *liveConn) notification(method string, timeout time.Duration) liveFrame {
	lc.t.Helper()
	for i, f := range lc.held {
		if f.Method == method {
			lc.held = append(lc.held[:i], lc.held[i+1:]...)
			return f
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		f, err := lc.read(time.Until(deadline))
		if err != nil {
			lc.t.Fatalf("waiting for %s: %v", method, err)
		}
		if f.Method == method {
			return f
		}
		if f.Method != "" {
			lc.held = append(lc.held, f)
		}
	}
}

func (lc *liveConn) call(method string, params any) liveFrame {
	lc.t.Helper()
	lc.seq++
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": lc.seq, "method": method, "params": params})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := lc.conn.Write(ctx, websocket.MessageText, raw); err != nil {
		lc.t.Fatalf("write %s: %v", method, err)
	}
	for {
		f, err := lc.read(30 * time.Second)
		if err != nil {
			lc.t.Fatalf("answer to %s: %v", method, err)
		}
		if f.Method == "" && string(f.ID) == fmt.Sprint(lc.seq) {
			return f
		}
		if f.Method != "" {
			lc.held = append(lc.held, f)
		}
	}
}

// envelopesOn counts the envelopes the XMTP node holds on a topic.
func envelopesOn(t testing.TB, grpcAddr, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	xc, err := api.Dial(ctx, grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer xc.Close()
	n := 0
	if err := xc.QueryAll(ctx, topic, 0, 0, func(*messagev1.Envelope) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLiveConsumersReplyToXMTPJS: xmtp-js messages a live bridge, a Go
// consumer (coder/websocket) gets the message and replies, and xmtp-js
// reads the reply, which is on the network once however often the
// consumer asks; then the same round trip with a consumer on Node's `ws`
// package that authenticates as a browser does.
func TestLiveConsumersReplyToXMTPJS(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	acct := mustCall(t, 201, "POST", c.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	key := str(acct, "apiKey")
	created := mustCall(t, 201, "POST", c.api+"/v1/bridges", key, map[string]any{
		"name": "live", "delivery": "live", "forward": map[string]any{"url": "http://127.0.0.1:9/unused"},
	})
	id, addr := str(created, "bridge", "id"), str(created, "bridge", "address")

	gc := dialLive(t, c.api, id, key, "")
	js := runJS(t, "quickstart.cjs", addr, "hello", "http://"+c.xmtpHTTP)
	me := js.next("ready", time.Minute)
	sent := js.next("sent", time.Minute)
	m := gc.notification("message", time.Minute)
	if m.Params["id"] != sent.ID || m.Params["content"] != "hello" || !strings.EqualFold(fmt.Sprint(m.Params["sender"]), me.Address) {
		t.Fatalf("message %v, want %s \"hello\" from %s", m.Params, sent.ID, me.Address)
	}
	r := gc.call("reply", map[string]any{"id": sent.ID, "content": "echo: hello"})
	if r.Error != nil || r.Result["status"] != "queued" {
		t.Fatalf("reply: %+v", r)
	}
	replyID := fmt.Sprint(r.Result["messageId"])
	reply := js.next("reply", time.Minute)
	if reply.Text != "echo: hello" || reply.ID != replyID || !strings.EqualFold(reply.Sender, addr) {
		t.Fatalf("xmtp-js got %+v, want \"echo: hello\" %s from %s", reply, replyID, addr)
	}
	if st := gc.notification("status", 30*time.Second); st.Params["messageId"] != replyID || st.Params["status"] != "sent" {
		t.Fatalf("status %v", st.Params)
	}
	again := gc.call("reply", map[string]any{"id": sent.ID, "content": "echo again"})
	if again.Error == nil || again.Error.Code != -32002 || again.Error.Data["messageId"] != replyID {
		t.Fatalf("second reply: %+v", again)
	}
	if a := gc.call("ack", map[string]any{"id": sent.ID}); a.Error != nil {
		t.Fatalf("ack: %+v", a.Error)
	}
	topic := fmt.Sprint(m.Params["conversation"].(map[string]any)["topic"])
	if n := envelopesOn(t, c.xmtpGRPC, topic); n != 2 {
		t.Fatalf("%d envelopes on the conversation, want the message and one reply", n)
	}
	st := mustCall(t, 200, "GET", c.api+"/v1/bridges/"+id+"/messages/"+replyID, key, nil)
	if str(st, "message", "status") != "sent" || str(st, "message", "source") != "live" {
		t.Fatalf("status of the reply: %v", st)
	}
	// A send frame goes through the reverse proxy and has its status.
	pushed := gc.call("send", map[string]any{"to": me.Address, "content": "pushed"})
	if pushed.Error != nil || pushed.Result["messageId"] == nil {
		t.Fatalf("send: %+v", pushed)
	}
	pushedID := fmt.Sprint(pushed.Result["messageId"])
	if st := gc.notification("status", 30*time.Second); st.Params["messageId"] != pushedID || st.Params["status"] != "sent" {
		t.Fatalf("send status %v", st.Params)
	}
	st = mustCall(t, 200, "GET", c.api+"/v1/bridges/"+id+"/messages/"+pushedID, key, nil)
	if str(st, "message", "status") != "sent" || str(st, "message", "source") != "live" || !strings.EqualFold(str(st, "message", "to"), me.Address) {
		t.Fatalf("status of the send: %v", st)
	}
	if bad := gc.call("send", map[string]any{"to": me.Address, "content": "x", "cc": "y"}); bad.Error == nil || bad.Error.Code != -32602 {
		t.Fatalf("send with an unknown field: %+v", bad)
	}
	gc.conn.Close(websocket.StatusNormalClosure, "done")

	// The same with Node's ws, authenticated by subprotocol.
	live := runJS(t, "live.cjs", "ws"+strings.TrimPrefix(c.api, "http")+"/v1/bridges/"+id+"/live", key, "1")
	live.next("open", time.Minute)
	js2 := runJS(t, "quickstart.cjs", addr, "hi", "http://"+c.xmtpHTTP)
	js2.next("ready", time.Minute)
	sent2 := js2.next("sent", time.Minute)
	if got := live.next("message", time.Minute); got.ID != sent2.ID || got.Text != "hi" {
		t.Fatalf("ws consumer got %+v, want %s \"hi\"", got, sent2.ID)
	}
	replied := live.next("replied", time.Minute)
	if reply2 := js2.next("reply", time.Minute); reply2.Text != "live: hi" || reply2.ID != replied.ID {
		t.Fatalf("xmtp-js got %+v, want \"live: hi\" %s", reply2, replied.ID)
	}
	if s := live.next("status", time.Minute); s.ID != replied.ID || s.Text != "sent" {
		t.Fatalf("ws consumer status %+v", s)
	}
}
