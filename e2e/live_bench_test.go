package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// arrivals hands out one channel per awaited content and closes it when
// the content arrives.
type arrivals struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
}

func (a *arrivals) await(key string) chan struct{} {
	ch := make(chan struct{})
	a.mu.Lock()
	a.waiting[key] = ch
	a.mu.Unlock()
	return ch
}

func (a *arrivals) arrived(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ch, ok := a.waiting[key]; ok {
		close(ch)
		delete(a.waiting, key)
	}
}

// consumeFrames reads a live socket until it ends: each `message` frame
// marks its content arrived and is acknowledged (as a notification, so
// nothing waits for the answer).
func consumeFrames(conn *websocket.Conn, arr *arrivals) {
	for {
		_, data, err := conn.Read(context.Background())
		if err != nil {
			return
		}
		var f liveFrame
		if json.Unmarshal(data, &f) != nil || f.Method != "message" {
			continue
		}
		arr.arrived(fmt.Sprint(f.Params["content"]))
		ack, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "ack", "params": map[string]any{"id": f.Params["id"]}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = conn.Write(ctx, websocket.MessageText, ack)
		cancel()
		if err != nil {
			return
		}
	}
}

// BenchmarkLiveCrossNode measures live delivery between real node
// processes over real sockets: from an XMTP client publishing a message to
// a bridge to its consumer reading the `message` frame, p50 and p99, with
// the consumer's WebSocket on the node process that hosts the bridge
// ("host"), with it on the other node process ("cross", the event crosses
// the cluster through Postgres NOTIFY), and, in the same run, to the
// webhook of a bridge on the same cluster ("webhook", publish to the
// request reaching a local HTTP endpoint). The three paths take turns,
// one message in flight at a time, so load on the machine falls on all
// three alike. LIVE_BENCH_MESSAGES (200) sets the messages per path; one
// benchmark iteration does all of them.
func BenchmarkLiveCrossNode(b *testing.B) {
	n := 200
	if v, err := strconv.Atoi(os.Getenv("LIVE_BENCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	c := newBridgeCluster(b, clusterOpts{provider: "automanaged", nodes: 2, tune: map[string]string{"BRIDGE_LOG_LEVEL": "warn"}})
	entry := c.nodes[0]
	acct := mustCall(b, 201, "POST", entry.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	c.apiKey = str(acct, "apiKey")
	arr := &arrivals{waiting: map[string]chan struct{}{}}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body struct {
			Content string `json:"content"`
		}
		_ = json.Unmarshal(raw, &body)
		arr.arrived(body.Content)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(hook.Close)
	create := func(name, delivery string) (id, addr string) {
		created := mustCall(b, 201, "POST", entry.api+"/v1/bridges", c.apiKey, map[string]any{
			"name": name, "delivery": delivery,
			"forward": map[string]any{"url": hook.URL + "/" + name, "bodyFormat": "json", "replyMode": "none"},
		})
		return str(created, "bridge", "id"), str(created, "bridge", "address")
	}
	type path struct {
		name     string
		bridge   string
		addr     string
		consumer *clusterNode // nil for the webhook
		lat      []time.Duration
	}
	hostID, hostAddr := create("live-host", "live")
	crossID, crossAddr := create("live-cross", "live")
	hookID, hookAddr := create("hook", "webhook")
	otherThan := func(n *clusterNode) *clusterNode {
		if n == c.nodes[0] {
			return c.nodes[1]
		}
		return c.nodes[0]
	}
	hostOfHost, hostOfCross := c.hostOf(hostID), c.hostOf(crossID)
	c.hostOf(hookID)
	paths := []*path{
		{name: "host", bridge: hostID, addr: hostAddr, consumer: hostOfHost},
		{name: "cross", bridge: crossID, addr: crossAddr, consumer: otherThan(hostOfCross)},
		{name: "webhook", bridge: hookID, addr: hookAddr},
	}
	for _, p := range paths {
		if p.consumer != nil {
			lc := dialLive(b, p.consumer.api, p.bridge, c.apiKey, "")
			go consumeFrames(lc.conn, arr)
		}
	}
	b.Logf("bridge live-host on %s with its consumer there; bridge live-cross on %s with its consumer on %s",
		hostOfHost.id, hostOfCross.id, otherThan(hostOfCross).id)
	sender := newRecipient(b, c.x.xmtpGRPC)
	one := func(p *path, key string) time.Duration {
		ch := arr.await(key)
		t0 := time.Now()
		if _, err := sender.cl.SendText(context.Background(), p.addr, key); err != nil {
			b.Fatalf("send %s: %v", key, err)
		}
		select {
		case <-ch:
			return time.Since(t0)
		case <-time.After(time.Minute):
			b.Fatalf("%s did not arrive within a minute", key)
			return 0
		}
	}
	// A first message on each path, not counted: conversations are
	// created and caches filled.
	for _, p := range paths {
		one(p, p.name+"-warm")
	}
	b.ResetTimer()
	for it := range b.N {
		for i := range n {
			for _, p := range paths {
				p.lat = append(p.lat, one(p, fmt.Sprintf("%s-%d-%d", p.name, it, i)))
			}
		}
	}
	b.StopTimer()
	if h := c.hostOf(crossID); h != hostOfCross {
		b.Fatalf("bridge live-cross moved from %s to %s during the run", hostOfCross.id, h.id)
	}
	hook50, hook99 := percentile(paths[2].lat, 50), percentile(paths[2].lat, 99)
	for _, p := range paths {
		p50, p99 := percentile(p.lat, 50), percentile(p.lat, 99)
		b.ReportMetric(p50, p.name+"-p50-ms")
		b.ReportMetric(p99, p.name+"-p99-ms")
		if p.consumer != nil {
			b.ReportMetric(p50/hook50, p.name+"/webhook-p50")
			b.ReportMetric(p99/hook99, p.name+"/webhook-p99")
		}
		b.Logf("%-7s p50 %7.1f ms  p99 %7.1f ms  (%d messages)", p.name, p50, p99, len(p.lat))
	}
	b.ReportMetric(0, "ns/op")
}
