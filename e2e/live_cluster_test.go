package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/xmtpbridge/bridge/internal/testkit"
)

// hostOf returns the node that hosts a bridge, once one does.
func (c *bridgeCluster) hostOf(bridgeID string) *clusterNode {
	c.t.Helper()
	var host *clusterNode
	testkit.WaitFor(c.t, 90*time.Second, func() bool {
		for _, n := range c.live() {
			status, got := call(c.t, "GET", n.api+"/v1/bridges/"+bridgeID, c.apiKey, nil)
			if status != 200 || str(got, "live", "live") != "online" {
				continue
			}
			for _, m := range c.live() {
				if m.id == str(got, "live", "node") {
					host = m
					return true
				}
			}
		}
		return false
	}, "bridge %s hosted", bridgeID)
	return host
}

// liveTally is what a consumer saw and did.
type liveTally struct {
	order   []string        // contents in the order first seen
	seen    map[string]bool // by content
	replied map[string]bool
}

// consume reads messages until every content of want has been replied
// to, or the socket fails, acknowledging each and replying "re: <content>"
// to each (a duplicate's reply is refused as already sent). It returns the
// error that ended the socket, nil when done.
//
// Done means replied, not seen: a message read and not acknowledged
// before a kill -9 comes again only when its claim lapses, possibly after
// newer ones, and must be waited for.
func (lc *liveConn) consume(tally *liveTally, want map[string]bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !containsAll(tally.replied, want) {
		f, err := lc.read(time.Until(deadline))
		if err != nil {
			return err
		}
		if f.Method != "message" {
			continue
		}
		text, id := fmt.Sprint(f.Params["content"]), fmt.Sprint(f.Params["id"])
		if !tally.seen[text] {
			tally.seen[text] = true
			tally.order = append(tally.order, text)
		}
		if err := lc.send("reply", map[string]any{"id": id, "content": "re: " + text}); err != nil {
			return err
		}
		if err := lc.send("ack", map[string]any{"id": id}); err != nil {
			return err
		}
		tally.replied[text] = true
	}
	return nil
}

// send writes a request without waiting for its answer.
func (lc *liveConn) send(method string, params any) error {
	lc.seq++
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": lc.seq, "method": method, "params": params})
	if err != nil {
		return err
	}
	return lc.conn.Write(ctx, websocket.MessageText, raw)
}

func containsAll(have, want map[string]bool) bool {
	for k := range want {
		if !have[k] {
			return false
		}
	}
	return true
}

// TestLiveAcrossNodesSurvivesKill9: the bridge is hosted on one node and
// its consumer on another. 50 messages that arrive while the consumer is
// away all come, in order, when it reconnects to the other node. Then
// under live traffic the consumer's node is killed with -9, and later the
// hosting node: each time the consumer reconnects to a node still up and
// gets every message, and every message gets exactly one reply.
func TestLiveAcrossNodesSurvivesKill9(t *testing.T) {
	t.Parallel()
	c := newBridgeCluster(t, clusterOpts{provider: "automanaged", nodes: 2, tune: map[string]string{"BRIDGE_LIVE_CLAIM_TTL": "3s"}})
	entry := c.nodes[0]
	acct := mustCall(t, 201, "POST", entry.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	c.apiKey = str(acct, "apiKey")
	created := mustCall(t, 201, "POST", entry.api+"/v1/bridges", c.apiKey, map[string]any{
		"name": "live", "delivery": "live", "forward": map[string]any{"url": "http://127.0.0.1:9/unused"},
	})
	id, addr := str(created, "bridge", "id"), str(created, "bridge", "address")
	host := c.hostOf(id)
	other := c.nodes[0]
	if other == host {
		other = c.nodes[1]
	}
	sender := newRecipient(t, c.x.xmtpGRPC)
	ctx := context.Background()
	sendAll := func(prefix string, n int) map[string]bool {
		want := map[string]bool{}
		for i := range n {
			text := fmt.Sprintf("%s-%02d", prefix, i)
			if _, err := sender.cl.SendText(ctx, addr, text); err != nil {
				t.Errorf("send %s: %v", text, err)
			}
			want[text] = true
		}
		return want
	}

	// Offline: 50 messages, then the consumer connects to the other node.
	want := sendAll("off", 50)
	testkit.WaitFor(t, 90*time.Second, func() bool {
		return len(metric(t, host.api, "bridge_live_stored_messages 50")) == 1
	}, "50 messages stored for the live stream")
	tally := &liveTally{seen: map[string]bool{}, replied: map[string]bool{}}
	lc := dialLive(t, other.api, id, c.apiKey, "")
	if err := lc.consume(tally, want, 90*time.Second); err != nil {
		t.Fatalf("offline messages: %v (got %d)", err, len(tally.seen))
	}
	for i, text := range tally.order {
		if text != fmt.Sprintf("off-%02d", i) {
			t.Fatalf("offline message %d is %q: %v", i, text, tally.order)
		}
	}

	// Kill -9 of the socket's node under live traffic.
	liveWant := map[string]bool{}
	sent := make(chan map[string]bool, 1)
	go func() { sent <- sendAll("sock", 20) }()
	for len(tally.seen) < 55 {
		f, err := lc.read(60 * time.Second)
		if err != nil {
			t.Fatalf("before the kill: %v", err)
		}
		if f.Method == "message" {
			text := fmt.Sprint(f.Params["content"])
			tally.seen[text] = true // not acknowledged: it must come again
		}
	}
	other.kill9()
	for k := range <-sent {
		liveWant[k] = true
	}
	lc = dialLive(t, host.api, id, c.apiKey, "")
	if err := lc.consume(tally, liveWant, 90*time.Second); err != nil {
		t.Fatalf("after the socket's node died: %v (got %d)", err, len(tally.seen))
	}

	// Kill -9 of the hosting node: the consumer moves to the restarted
	// other node, which takes the bridge over.
	other.restart()
	lc.conn.CloseNow()
	lc = dialLive(t, other.api, id, c.apiKey, "")
	hostWant := map[string]bool{}
	go func() { sent <- sendAll("host", 20) }()
	if err := lc.consume(tally, map[string]bool{"host-04": true}, 60*time.Second); err != nil {
		t.Fatalf("before the host died: %v", err)
	}
	host.kill9()
	for k := range <-sent {
		hostWant[k] = true
	}
	// Every message sent so far, including those read and not replied to
	// before a kill, must come again and get its reply.
	all := map[string]bool{}
	for _, w := range []map[string]bool{want, liveWant, hostWant, tally.seen} {
		for k := range w {
			all[k] = true
		}
	}
	for {
		err := lc.consume(tally, all, 120*time.Second)
		if err == nil {
			break
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("after the host died: %v (got %d)", err, len(tally.seen))
		}
		lc = dialLive(t, other.api, id, c.apiKey, "")
	}

	// Every message got exactly one reply on the network, and none is
	// left in the live stream.
	if len(all) != 90 {
		t.Fatalf("%d messages sent and seen, want 90", len(all))
	}
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return len(metric(t, other.api, "bridge_live_stored_messages 0")) == 1
	}, "every live message acknowledged")
	testkit.WaitFor(t, 120*time.Second, func() error {
		got, err := sender.received()
		if err != nil {
			return err
		}
		return replyCounts(got, addr, all)
	}, "one reply to each of the %d messages", len(all))
	got, _ := sender.received()
	for k, n := range got {
		if n != 1 {
			t.Fatalf("%q arrived %d times", k, n)
		}
	}
}

// replyCounts checks that got, the texts a sender received, holds exactly
// one reply "re: <text>" from addr to each text of want, and names the
// missing and the doubled ones when not.
func replyCounts(got map[string]int, addr string, want map[string]bool) error {
	var missing, doubled []string
	for text := range want {
		switch n := got[strings.ToLower(addr)+" re: "+text]; {
		case n == 0:
			missing = append(missing, text)
		case n > 1:
			doubled = append(doubled, fmt.Sprintf("%s (%d times)", text, n))
		}
	}
	if len(missing) == 0 && len(doubled) == 0 {
		return nil
	}
	sort.Strings(missing)
	sort.Strings(doubled)
	return fmt.Errorf("%d replies missing %v, %d doubled %v", len(missing), missing, len(doubled), doubled)
}

// TestLiveSocketsOfARevokedKeyCloseOnEveryNode: consumers on two node
// processes opened their sockets with one API key and another consumer
// with a second key. Revoking the first key through one node closes its
// sockets on both nodes with 4003 and a reason; the other key's socket
// stays up and still gets messages.
func TestLiveSocketsOfARevokedKeyCloseOnEveryNode(t *testing.T) {
	t.Parallel()
	c := newBridgeCluster(t, clusterOpts{provider: "automanaged", nodes: 2})
	a, b := c.nodes[0], c.nodes[1]
	acct := mustCall(t, 201, "POST", a.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	c.apiKey = str(acct, "apiKey")
	second := mustCall(t, 201, "POST", a.api+"/v1/api-keys", c.apiKey, map[string]any{"name": "consumers"})
	key2, key2ID := str(second, "apiKey"), str(second, "apiKeyInfo", "id")
	created := mustCall(t, 201, "POST", a.api+"/v1/bridges", c.apiKey, map[string]any{
		"name": "live", "delivery": "live", "forward": map[string]any{"url": "http://127.0.0.1:9/unused"},
	})
	id, addr := str(created, "bridge", "id"), str(created, "bridge", "address")
	c.hostOf(id)
	onA := dialLive(t, a.api, id, key2, "")
	onB := dialLive(t, b.api, id, key2, "")
	kept := dialLive(t, b.api, id, c.apiKey, "")
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return len(metric(t, a.api, "bridge_live_consumers 1")) == 1 && len(metric(t, b.api, "bridge_live_consumers 2")) == 1
	}, "three consumers connected")

	start := time.Now()
	mustCall(t, 200, "DELETE", a.api+"/v1/api-keys/"+key2ID, c.apiKey, nil)
	for name, lc := range map[string]*liveConn{a.id: onA, b.id: onB} {
		var err error
		for err == nil {
			_, err = lc.read(20 * time.Second)
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4003 || !strings.Contains(ce.Reason, "revoked") {
			t.Fatalf("the socket on %s ended with %v, want close 4003 naming the revocation", name, err)
		}
	}
	// The nodes check their sockets' keys on a timer too, every 5 s by
	// default: a close well within that came from the announcement.
	t.Logf("both sockets closed %s after the revocation", time.Since(start))

	sender := newRecipient(t, c.x.xmtpGRPC)
	if _, err := sender.cl.SendText(context.Background(), addr, "after the revocation"); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := kept.read(60 * time.Second)
		if err != nil {
			t.Fatalf("the other key's socket: %v", err)
		}
		if f.Method == "message" {
			if got := fmt.Sprint(f.Params["content"]); got != "after the revocation" {
				t.Fatalf("the other key's socket got %q", got)
			}
			break
		}
	}
}
