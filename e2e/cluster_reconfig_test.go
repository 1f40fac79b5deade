package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// hookRequest is one request a recordingTarget got.
type hookRequest struct {
	at      time.Time
	path    string
	header  http.Header
	body    []byte
	content string
}

// recordingTarget records every request and answers {"reply": "echo:
// <content>"}; the test checks headers and signatures itself.
type recordingTarget struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []hookRequest
}

func newRecordingTarget(t testing.TB) *recordingTarget {
	rt := &recordingTarget{}
	rt.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		rt.mu.Lock()
		rt.got = append(rt.got, hookRequest{at: time.Now(), path: r.URL.Path, header: r.Header.Clone(), body: raw, content: str(body, "content")})
		rt.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"reply": "echo: " + str(body, "content")})
	}))
	t.Cleanup(rt.srv.Close)
	return rt
}

// requests returns the requests that carried content.
func (rt *recordingTarget) requests(content string) []hookRequest {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []hookRequest
	for _, r := range rt.got {
		if r.content == content {
			out = append(out, r)
		}
	}
	return out
}

// all returns every request so far.
func (rt *recordingTarget) all() []hookRequest {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]hookRequest(nil), rt.got...)
}

// sender is a Go XMTP client that messages a bridge.
type sender struct {
	t  testing.TB
	cl *client.Client
}

func newSender(t testing.TB, xc *api.Client) *sender {
	t.Helper()
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(client.Config{Bundle: k, API: xc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Start(ctx); err != nil {
		t.Fatalf("start sender: %v", err)
	}
	return &sender{t: t, cl: cl}
}

func (s *sender) send(to, text string) *client.Sent {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sent, err := s.cl.SendText(ctx, to, text)
	if err != nil {
		s.t.Fatalf("send %q: %v", text, err)
	}
	return sent
}

// repliesFrom returns the texts from bridge on the sender's conversations.
func (s *sender) repliesFrom(bridge string) []string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	convs, err := s.cl.Conversations(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, conv := range convs {
		if !strings.EqualFold(conv.Peer, bridge) {
			continue
		}
		msgs, err := s.cl.Messages(ctx, conv.Topic)
		if err != nil {
			s.t.Fatal(err)
		}
		for _, m := range msgs {
			if strings.EqualFold(m.Sender, bridge) {
				text, _ := m.Content.Text()
				out = append(out, text)
			}
		}
	}
	return out
}

// signatures checks a request's webhook-signature header against the
// secrets: it returns how many signatures it carries and which of the
// secrets one of them verifies.
func signatures(t testing.TB, r hookRequest, secrets ...string) (int, []bool) {
	t.Helper()
	sigs, err := webhook.ParseSignatureHeader(r.header.Get(webhook.HeaderSignature))
	if err != nil {
		t.Fatalf("request for %q: %v", r.content, err)
	}
	ok := make([]bool, len(secrets))
	for i, s := range secrets {
		ok[i] = webhook.Verify(s, r.header, r.body, time.Now()) == nil
	}
	return len(sigs), ok
}

// TestClusterLiveReconfiguration changes a bridge through the node that
// does not host it, in a two-node cluster: one PATCH moves its forward URL
// to another target, replaces its extra headers, turns replies off and
// sets an allow-list and a deny-list, and a rotation gives it a new
// webhook secret with a 5-second grace period. The very next messages
// follow the new settings on the owner: the allowed sender's message
// reaches only the new URL with only the new headers, signed with both
// secrets, and gets no reply; the denied sender and the one not on the
// allow-list are dropped. Once the grace period is over, a delivery
// carries one signature, the new secret's.
func TestClusterLiveReconfiguration(t *testing.T) {
	t.Parallel()
	const grace = 5 * time.Second
	c := newBridgeCluster(t, clusterOpts{provider: "automanaged", nodes: 2, name: "reconfig-cluster"})
	before, after := newRecordingTarget(t), newRecordingTarget(t)
	acct := mustCall(t, 201, "POST", c.nodes[0].api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	key := str(acct, "apiKey")
	created := mustCall(t, 201, "POST", c.nodes[0].api+"/v1/bridges", key, map[string]any{
		"name": "reconf", "forward": map[string]any{"url": before.srv.URL + "/old", "bodyFormat": "json", "replyMode": "reply",
			"headers": map[string]string{"X-Old": "old-value"}},
	})
	id, addr, oldSecret := str(created, "bridge", "id"), str(created, "bridge", "address"), str(created, "webhookSecret")
	pc := c.waitPlaced(c.nodes[0], []clusterBridge{{ID: id, Address: addr}}, c.nodes, time.Minute)
	var via *clusterNode
	for _, n := range c.nodes {
		if n.id != pc.byBridge[id].Node {
			via = n
		}
	}
	t.Logf("bridge %s is on %s; it is changed through %s", id, pc.byBridge[id].Node, via.id)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	xc, err := api.Dial(ctx, c.x.xmtpGRPC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = xc.Close() })
	allowed, denied, stranger := newSender(t, xc), newSender(t, xc), newSender(t, xc)

	allowed.send(addr, "first")
	testkit.WaitFor(t, time.Minute, func() bool { return len(allowed.repliesFrom(addr)) == 1 }, "the reply to the first message")
	if got := before.requests("first"); len(got) != 1 || got[0].header.Get("X-Old") != "old-value" {
		t.Fatalf("the first message reached the old target %d times, or without its header: %v", len(got), got)
	}

	mustCall(t, 200, "PATCH", via.api+"/v1/bridges/"+id, key, map[string]any{"forward": map[string]any{
		"url": after.srv.URL + "/new", "headers": map[string]string{"X-New": "new-value"}, "replyMode": "none",
		"allowSenders": []string{allowed.cl.Address(), denied.cl.Address()}, "denySenders": []string{denied.cl.Address()},
	}})
	rotated := mustCall(t, 200, "POST", via.api+"/v1/bridges/"+id+"/webhook-secret/rotate", key, map[string]any{"graceSeconds": grace / time.Second})
	newSecret := str(rotated, "webhookSecret")
	rotatedAt := time.Now()

	dropped := []*client.Sent{denied.send(addr, "from the denied sender"), stranger.send(addr, "from a stranger")}
	allowed.send(addr, "second")
	testkit.WaitFor(t, time.Minute, func() bool {
		if got := before.requests("second"); len(got) > 0 {
			t.Fatalf("the second message, sent after the PATCH answered, reached the old URL %s with X-Old %q", got[0].path, got[0].header.Get("X-Old"))
		}
		return len(after.requests("second")) > 0
	}, "the second message at the new target")
	c.waitCursorsPast(id, dropped, time.Minute)
	pgtest.WaitQuiet(t, c.x.db, time.Minute)

	r := after.requests("second")[0]
	if r.path != "/new" || r.header.Get("X-New") != "new-value" || r.header.Get("X-Old") != "" {
		t.Errorf("the second message came to %s with X-New %q and X-Old %q, want /new with only the new header",
			r.path, r.header.Get("X-New"), r.header.Get("X-Old"))
	}
	if late := r.at.Sub(rotatedAt); late > grace-time.Second {
		t.Fatalf("the second message arrived %s after the rotation, too late to check the %s grace period", late.Round(time.Millisecond), grace)
	}
	if n, ok := signatures(t, r, oldSecret, newSecret); n != 2 || !ok[0] || !ok[1] {
		t.Errorf("the second message, in the grace period, carries %d signatures (old secret %v, new %v), want both", n, ok[0], ok[1])
	}
	for _, req := range before.all() {
		if req.content != "first" {
			t.Errorf("the old target got %q after the PATCH", req.content)
		}
	}
	for _, req := range after.all() {
		if req.content != "second" {
			t.Errorf("the new target got %q, which the allow- and deny-lists drop", req.content)
		}
	}
	if got := allowed.repliesFrom(addr); len(got) != 1 {
		t.Errorf("the allowed sender got replies %q, want only the one to the first message: replies are off", got)
	}

	c.waitSecretExpired(id, time.Minute)
	allowed.send(addr, "third")
	testkit.WaitFor(t, time.Minute, func() bool { return len(after.requests("third")) > 0 }, "the third message at the new target")
	if n, ok := signatures(t, after.requests("third")[0], oldSecret, newSecret); n != 1 || ok[0] || !ok[1] {
		t.Errorf("the third message, after the grace period, carries %d signatures (old secret %v, new %v), want only the new one", n, ok[0], ok[1])
	}
}

// waitCursorsPast waits until the bridge's cursor of each message's topic
// reached the message: the owner handled it, whatever it did with it.
func (c *bridgeCluster) waitCursorsPast(bridgeID string, msgs []*client.Sent, timeout time.Duration) {
	c.t.Helper()
	pgtest.Poll(c.t, c.x.db, timeout, func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		for _, m := range msgs {
			var ns int64
			err := conn.QueryRow(ctx, `SELECT last_timestamp_ns FROM cursors WHERE bridge_id = $1 AND topic = $2`, bridgeID, m.Topic).Scan(&ns)
			if err == pgx.ErrNoRows || (err == nil && ns < m.Sent.UnixNano()) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
		}
		return true, nil
	}, "the cursors past the dropped messages")
}

// waitSecretExpired waits until no rotated-out webhook secret of the
// bridge is in its grace period any more.
func (c *bridgeCluster) waitSecretExpired(bridgeID string, timeout time.Duration) {
	c.t.Helper()
	pgtest.Poll(c.t, c.x.db, timeout, func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM webhook_secrets WHERE bridge_id = $1 AND expires_at > now()`, bridgeID).Scan(&n)
		return err == nil && n == 0, err
	}, "the end of the grace period")
}
