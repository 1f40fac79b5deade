package http

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	nethttp "net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors"
	"github.com/xmtpbridge/bridge/persistence"
)

// testLiveHub adapts actors.LiveHub as system does.
type testLiveHub struct{ hub *actors.LiveHub }

func (l testLiveHub) OpenLive(bridgeID, keyID string, after int64, window int) LiveStream {
	return l.hub.Open(bridgeID, keyID, after, window)
}
func (l testLiveHub) LiveClosed(reason string) { l.hub.Closed(reason) }

var liveTestOptions = LiveOptions{PingInterval: 400 * time.Millisecond, WriteTimeout: time.Second, AckTimeout: 1500 * time.Millisecond, MaxFrame: 4096}

// withLive gives the server a real live hub over its store.
func withLive(t testing.TB, node string) func(*Options) {
	return func(o *Options) {
		hub, err := actors.NewLiveHub(actors.LiveConfig{
			Store: o.Store, NodeID: node, Registerer: o.Registry, Logger: slog.New(slog.DiscardHandler),
			ClaimTTL: 3 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		hub.Start()
		t.Cleanup(hub.Stop)
		o.Live = testLiveHub{hub}
		o.LiveOptions = liveTestOptions
	}
}

// liveFeed stores inbound messages in a bridge's live stream as the
// bridge's grain does, under a lease of its own.
type liveFeed struct {
	t        testing.TB
	store    *persistence.Store
	bridgeID string
	lease    persistence.Lease
	n        atomic.Int64
}

func newLiveFeed(t testing.TB, store *persistence.Store, bridgeID string) *liveFeed {
	l, err := store.AcquireLease(context.Background(), bridgeID, "grain-node", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &liveFeed{t: t, store: store, bridgeID: bridgeID, lease: l}
}

// add stores one message and returns its id.
func (f *liveFeed) add(text string) string {
	f.t.Helper()
	ctx := context.Background()
	id := fmt.Sprintf("msg-%03d", f.n.Add(1))
	d, _, err := f.store.RecordDelivery(ctx, persistence.NewDelivery{BridgeID: f.bridgeID, MessageID: id, Topic: "/xmtp/0/m-live/proto",
		SenderAddress: "0x00000000000000000000000000000000000000aa", SentNs: 1, Payload: []byte(text)})
	if err != nil {
		f.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"id": id, "content": text, "contentType": "xmtp.org/text:1.0"})
	if err := f.store.HandOverLive(ctx, f.lease, d, body, true); err != nil {
		f.t.Fatal(err)
	}
	return id
}

// liveClient is a consumer on github.com/coder/websocket.
type liveClient struct {
	t    testing.TB
	conn *websocket.Conn
	seq  int
	// held are notifications read while waiting for an answer.
	held []frame
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") }

func dialLive(t testing.TB, base, bridgeID, key, query string) *liveClient {
	t.Helper()
	c, status, err := tryDialLive(base, bridgeID, key, query)
	if err != nil {
		t.Fatalf("dial live (status %d): %v", status, err)
	}
	lc := &liveClient{t: t, conn: c}
	t.Cleanup(func() { c.CloseNow() })
	return lc
}

func tryDialLive(base, bridgeID, key, query string) (*websocket.Conn, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := nethttp.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	c, resp, err := websocket.Dial(ctx, wsURL(base)+"/v1/bridges/"+bridgeID+"/live"+query, &websocket.DialOptions{HTTPHeader: h})
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if c != nil {
		c.SetReadLimit(1 << 20)
	}
	return c, status, err
}

// frame is any frame the server sends.
type frame struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params map[string]any  `json:"params"`
	Result map[string]any  `json:"result"`
	Error  *struct {
		Code    int            `json:"code"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	} `json:"error"`
}

func (lc *liveClient) read(timeout time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, data, err := lc.conn.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		lc.t.Fatalf("server frame %q: %v", data, err)
	}
	return f, nil
}

func (lc *liveClient) next(what string) frame {
	lc.t.Helper()
	f, err := lc.read(20 * time.Second)
	if err != nil {
		lc.t.Fatalf("read %s: %v", what, err)
	}
	return f
}

// message reads the next `message` notification.
func (lc *liveClient) message() frame {
	lc.t.Helper()
	var f frame
	if len(lc.held) > 0 {
		f, lc.held = lc.held[0], lc.held[1:]
	} else {
		f = lc.next("message")
	}
	if f.Method != "message" {
		lc.t.Fatalf("frame %+v, want a message notification", f)
	}
	return f
}

func (lc *liveClient) writeRaw(data string) {
	lc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lc.conn.Write(ctx, websocket.MessageText, []byte(data)); err != nil {
		lc.t.Fatalf("write: %v", err)
	}
}

// call sends a request and returns its answer, skipping notifications.
func (lc *liveClient) call(method string, params any) frame {
	lc.t.Helper()
	lc.seq++
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": lc.seq, "method": method, "params": params})
	lc.writeRaw(string(raw))
	return lc.answer(fmt.Sprint(lc.seq))
}

func (lc *liveClient) answer(id string) frame {
	lc.t.Helper()
	for {
		f := lc.next("answer " + id)
		if f.Method == "" && string(f.ID) == id {
			return f
		}
		if f.Method != "" {
			lc.held = append(lc.held, f)
		}
	}
}

func TestLiveStreamDeliversInOrderWithinTheWindowAndResumes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withLive(t, "node-a"))
	base := h.startReal()
	key := h.signup("alice")
	created := h.expect("POST", "/v1/bridges", key, map[string]any{"name": "live", "delivery": "live", "forward": map[string]any{"url": publicURL}}, 201, "")
	b := created["bridge"].(map[string]any)
	id := str(b, "id")
	if b["delivery"] != "live" {
		t.Fatalf("created bridge: %v", b)
	}
	feed := newLiveFeed(t, h.store, id)
	var ids []string
	for i := range 5 {
		ids = append(ids, feed.add(fmt.Sprintf("offline %d", i)))
	}

	// The window holds three: the fourth comes once the first is
	// acknowledged.
	c := dialLive(t, base, id, key, "?window=3")
	var cursors []string
	for i := range 3 {
		m := c.message()
		if m.Params["id"] != ids[i] || m.Params["content"] != fmt.Sprintf("offline %d", i) {
			t.Fatalf("message %d: %v", i, m.Params)
		}
		cursors = append(cursors, m.Params["cursor"].(string))
	}
	if !(cursors[0] < cursors[1] && cursors[1] < cursors[2]) {
		t.Fatalf("cursors not increasing: %v", cursors)
	}
	if n := claimed(t, h.store, id); n != 3 {
		t.Fatalf("%d messages claimed with a window of 3", n)
	}
	if r := c.call("ack", map[string]any{"id": ids[0]}); r.Error != nil || r.Result["ok"] != true {
		t.Fatalf("ack: %+v", r)
	}
	if m := c.message(); m.Params["id"] != ids[3] {
		t.Fatalf("after the ack: %v", m.Params)
	}
	for _, x := range ids[1:4] {
		if r := c.call("ack", map[string]any{"id": x}); r.Error != nil {
			t.Fatalf("ack %s: %+v", x, r.Error)
		}
	}
	last := c.message()
	if last.Params["id"] != ids[4] {
		t.Fatalf("fifth: %v", last.Params)
	}
	// Acknowledging twice is fine; an id the consumer was never sent is
	// not, and the socket stays up.
	if r := c.call("ack", map[string]any{"id": ids[0]}); r.Error != nil {
		t.Fatalf("second ack: %+v", r.Error)
	}
	if r := c.call("ack", map[string]any{"id": "nope"}); r.Error == nil || r.Error.Code != rpcUnknownMessage {
		t.Fatalf("ack of an unknown id: %+v", r)
	}
	c.conn.Close(websocket.StatusNormalClosure, "bye")

	// The unacknowledged fifth comes again; after it the stream is live.
	c = dialLive(t, base, id, key, "")
	if m := c.message(); m.Params["id"] != ids[4] {
		t.Fatalf("redelivery: %v", m.Params)
	}
	if r := c.call("ack", map[string]any{"id": ids[4]}); r.Error != nil {
		t.Fatalf("ack: %+v", r.Error)
	}
	live := feed.add("live one")
	skipped := c.message()
	if skipped.Params["id"] != live {
		t.Fatalf("live message: %v", skipped.Params)
	}
	c.conn.Close(websocket.StatusNormalClosure, "bye")

	// ?after skips what came up to the cursor, even unacknowledged.
	c = dialLive(t, base, id, key, "?after="+skipped.Params["cursor"].(string))
	newer := feed.add("after the cursor")
	if m := c.message(); m.Params["id"] != newer {
		t.Fatalf("after %s: %v", skipped.Params["cursor"], m.Params)
	}
	waitForCond(t, 10*time.Second, "consumer gauge 1", func() bool { return gaugeValue(t, h.reg, "bridge_live_consumers") == 1 })
}

func claimed(t testing.TB, st *persistence.Store, bridgeID string) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM live_messages WHERE bridge_id = $1 AND claimed_by IS NOT NULL AND status = 'pending'`, bridgeID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func gaugeValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Counter != nil:
				total += m.Counter.GetValue()
			}
		}
	}
	return total
}

func waitForCond(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLiveRefusesBadCallersBeforeTheUpgrade(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withLive(t, "node-a"))
	base := h.startReal()
	key := h.signup("alice")
	other := h.signup("mallory")
	b := h.expect("POST", "/v1/bridges", key, map[string]any{"name": "live", "delivery": "both", "forward": map[string]any{"url": publicURL}}, 201, "")["bridge"].(map[string]any)
	id := str(b, "id")
	hooked, _ := h.createBridge(key)
	for _, tc := range []struct {
		name, bridge, key, query string
		want                     int
	}{
		{"no key", id, "", "", 401},
		{"bad key", id, "xb_live_not_a_key", "", 401},
		{"another account's bridge", id, other, "", 404},
		{"no such bridge", "01a20000-0000-7000-8000-000000000000", key, "", 404},
		{"webhook-only bridge", str(hooked, "id"), key, "", 409},
		{"bad cursor", id, key, "?after=-1", 400},
		{"bad window", id, key, "?window=5000", 400},
	} {
		c, status, err := tryDialLive(base, tc.bridge, tc.key, tc.query)
		if err == nil {
			c.CloseNow()
			t.Fatalf("%s: upgraded", tc.name)
		}
		if status != tc.want {
			t.Fatalf("%s: status %d, want %d (%v)", tc.name, status, tc.want, err)
		}
	}
	h.expect("GET", "/v1/bridges/"+id+"/live", key, nil, 426, CodeUpgradeRequired)
	h.expect("PATCH", "/v1/bridges/"+id, key, map[string]any{"delivery": "carrier-pigeon"}, 400, CodeInvalidField)

	// A browser carries the key as a subprotocol; the key is never echoed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bc, _, err := websocket.Dial(ctx, wsURL(base)+"/v1/bridges/"+id+"/live", &websocket.DialOptions{Subprotocols: []string{"jsonrpc", "bearer." + key}})
	if err != nil {
		t.Fatalf("browser-style dial: %v", err)
	}
	if bc.Subprotocol() != "jsonrpc" {
		t.Fatalf("subprotocol %q", bc.Subprotocol())
	}
	bc.CloseNow()
	if _, status, err := tryDialLiveProtocols(base, id, []string{"jsonrpc", "bearer." + other}); err == nil || status != 404 {
		t.Fatalf("another account's key as a subprotocol: %d %v", status, err)
	}
}

func tryDialLiveProtocols(base, bridgeID string, protocols []string) (*websocket.Conn, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(base)+"/v1/bridges/"+bridgeID+"/live", &websocket.DialOptions{Subprotocols: protocols})
	if c != nil {
		c.CloseNow()
	}
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	return c, status, err
}

func TestLiveMalformedFramesGetJSONRPCErrorsAndOversizedOnesClose1009(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withLive(t, "node-a"))
	base := h.startReal()
	key := h.signup("alice")
	b := h.expect("POST", "/v1/bridges", key, map[string]any{"name": "live", "delivery": "live", "forward": map[string]any{"url": publicURL}}, 201, "")["bridge"].(map[string]any)
	id := str(b, "id")
	c := dialLive(t, base, id, key, "")
	for _, tc := range []struct {
		frame  string
		id     string
		code   int
		answer bool
	}{
		{`this is not json`, "null", rpcParseError, true},
		{`{"jsonrpc":"2.0","id":1,"method":"ack"`, "null", rpcParseError, true},
		{`[{"jsonrpc":"2.0","id":1,"method":"ack"}]`, "null", rpcInvalidRequest, true},
		{`"ack"`, "null", rpcInvalidRequest, true},
		{`{"jsonrpc":"1.0","id":7,"method":"ack"}`, "7", rpcInvalidRequest, true},
		{`{"jsonrpc":"2.0","id":{"x":1},"method":"ack"}`, "null", rpcInvalidRequest, true},
		{`{"jsonrpc":"2.0","id":"s","method":42}`, `"s"`, rpcInvalidRequest, true},
		{`{"jsonrpc":"2.0","id":8,"method":"subscribe"}`, "8", rpcMethodNotFound, true},
		{`{"jsonrpc":"2.0","id":9,"method":"ack","params":[1]}`, "9", rpcInvalidParams, true},
		{`{"jsonrpc":"2.0","id":10,"method":"ack","params":{"id":5}}`, "10", rpcInvalidParams, true},
		{`{"jsonrpc":"2.0","id":11,"method":"ack","params":{"id":"x","extra":1}}`, "11", rpcInvalidParams, true},
		{`{"jsonrpc":"2.0","id":12,"method":"reply","params":{"id":"unknown","content":"hi"}}`, "12", rpcUnknownMessage, true},
		{`{"jsonrpc":"2.0","id":13,"method":"reply","params":{"id":"unknown","content":""}}`, "13", rpcInvalidParams, true},
		{`{"jsonrpc":"2.0","id":14,"method":"send","params":{"to":"0x12","content":"hi"}}`, "14", rpcInvalidParams, true},
	} {
		c.writeRaw(tc.frame)
		f := c.next(tc.frame)
		if f.Error == nil || f.Error.Code != tc.code || string(f.ID) != tc.id {
			t.Fatalf("frame %s: answer id %s error %+v, want id %s code %d", tc.frame, f.ID, f.Error, tc.id, tc.code)
		}
	}
	// A notification gets no answer, even a bad one; the next request
	// still does: the socket stayed up through all of it.
	c.writeRaw(`{"jsonrpc":"2.0","method":"ack","params":{"id":"nope"}}`)
	if r := c.call("ack", map[string]any{"id": "still-unknown"}); r.Error == nil || r.Error.Code != rpcUnknownMessage || r.ID == nil {
		t.Fatalf("after the malformed frames: %+v", r)
	}

	// A frame over MaxFrame closes with 1009.
	c.writeRaw(`{"jsonrpc":"2.0","id":99,"method":"ack","params":{"id":"` + strings.Repeat("x", 8000) + `"}}`)
	_, err := c.read(10 * time.Second)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame: %v, want close 1009", err)
	}
}

func TestLiveSlowConsumersAreClosedAndLoseNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withLive(t, "node-a"))
	base := h.startReal()
	key := h.signup("alice")
	b := h.expect("POST", "/v1/bridges", key, map[string]any{"name": "live", "delivery": "live", "forward": map[string]any{"url": publicURL}}, 201, "")["bridge"].(map[string]any)
	id := str(b, "id")
	feed := newLiveFeed(t, h.store, id)
	var ids []string
	for i := range 3 {
		ids = append(ids, feed.add(fmt.Sprintf("m%d", i)))
	}

	// A consumer that never reads answers no ping: it is closed.
	deaf := dialLive(t, base, id, key, "")
	waitForCond(t, 20*time.Second, "the deaf consumer closed as slow", func() bool {
		return counterWith(t, h.reg, "bridge_live_closed_total", "slow") >= 1 && gaugeValue(t, h.reg, "bridge_live_consumers") == 0
	})
	if n := claimed(t, h.store, id); n != 0 {
		t.Fatalf("%d messages still claimed by the closed consumer", n)
	}
	deaf.conn.CloseNow()

	// One that reads but never acknowledges a full window is closed with
	// 4001 after the ack timeout.
	lazy := dialLive(t, base, id, key, "?window=2")
	lazy.message()
	lazy.message()
	var err error
	for err == nil {
		_, err = lazy.read(20 * time.Second)
	}
	if websocket.CloseStatus(err) != CloseSlowConsumer {
		t.Fatalf("lazy consumer: %v, want close %d", err, CloseSlowConsumer)
	}

	// Nothing was lost: a good consumer gets all three, in order.
	good := dialLive(t, base, id, key, "")
	for i := range 3 {
		m := good.message()
		if m.Params["id"] != ids[i] {
			t.Fatalf("message %d after the slow consumers: %v", i, m.Params)
		}
		if r := good.call("ack", map[string]any{"id": ids[i]}); r.Error != nil {
			t.Fatalf("ack: %+v", r.Error)
		}
	}
}

func counterWith(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// Two consumers of one bridge on two nodes: each message goes to one of
// them, and every message to someone.
func TestLiveConsumerGroupSplitsMessagesAcrossNodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withLive(t, "node-a"))
	base := h.startReal()
	key := h.signup("alice")
	b := h.expect("POST", "/v1/bridges", key, map[string]any{"name": "live", "delivery": "live", "forward": map[string]any{"url": publicURL}}, 201, "")["bridge"].(map[string]any)
	id := str(b, "id")
	sib := h.sibling()
	sib.srv.opts.Live = nil
	withLive(t, "node-b")(&sib.srv.opts)
	baseB := sib.startReal()

	a := dialLive(t, base, id, key, "?window=5")
	bc := dialLive(t, baseB, id, key, "?window=5")
	feed := newLiveFeed(t, h.store, id)
	want := map[string]bool{}
	for i := range 10 {
		want[feed.add(fmt.Sprintf("g%d", i))] = true
	}
	got := map[string]string{}
	type seen struct {
		who, id string
	}
	ch := make(chan seen, 20)
	for name, c := range map[string]*liveClient{"a": a, "b": bc} {
		go func() {
			for {
				f, err := c.read(30 * time.Second)
				if err != nil {
					return
				}
				if f.Method != "message" {
					continue
				}
				mid := f.Params["id"].(string)
				ch <- seen{name, mid}
				raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "ack", "params": map[string]any{"id": mid}})
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err = c.conn.Write(ctx, websocket.MessageText, raw)
				cancel()
				if err != nil {
					return
				}
			}
		}()
	}
	deadline := time.After(30 * time.Second)
	for len(got) < len(want) {
		select {
		case s := <-ch:
			if prev, dup := got[s.id]; dup {
				t.Fatalf("message %s went to %s and %s", s.id, prev, s.who)
			}
			if !want[s.id] {
				t.Fatalf("unexpected message %s", s.id)
			}
			got[s.id] = s.who
		case <-deadline:
			t.Fatalf("got %d of %d messages: %v", len(got), len(want), got)
		}
	}
	waitForCond(t, 10*time.Second, "all acknowledged", func() bool {
		var n int
		err := h.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM live_messages WHERE bridge_id = $1 AND status = 'acked'`, id).Scan(&n)
		return err == nil && n == len(want)
	})
}
