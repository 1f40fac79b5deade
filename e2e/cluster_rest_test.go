package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// recipient is a Go XMTP client that bridges send to over REST.
type recipient struct {
	t  testing.TB
	cl *client.Client
}

// newRecipient publishes the contact of a new identity on the cluster's
// XMTP node.
func newRecipient(t testing.TB, grpcAddr string) *recipient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	xc, err := api.Dial(ctx, grpcAddr)
	if err != nil {
		t.Fatalf("dial xmtp node: %v", err)
	}
	t.Cleanup(func() { _ = xc.Close() })
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(client.Config{Bundle: k, API: xc})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Start(ctx); err != nil {
		t.Fatalf("start the recipient: %v", err)
	}
	return &recipient{t: t, cl: cl}
}

// received counts the texts the recipient got, keyed by sender address
// (lowercase) and text.
func (r *recipient) received() (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	convs, err := r.cl.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, conv := range convs {
		msgs, err := r.cl.Messages(ctx, conv.Topic)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if strings.EqualFold(m.Sender, r.cl.Address()) {
				continue
			}
			text, _ := m.Content.Text()
			out[strings.ToLower(m.Sender)+" "+text]++
		}
	}
	return out, nil
}

// waitArrived waits until every text of want (sender address -> texts)
// arrived at least once.
func (r *recipient) waitArrived(want map[string][]string, timeout time.Duration) {
	t := r.t
	t.Helper()
	var missing []string
	var err error
	deadline := time.Now().Add(timeout)
	for {
		var got map[string]int
		got, err = r.received()
		if err == nil {
			missing = nil
			for from, texts := range want {
				for _, text := range texts {
					if got[strings.ToLower(from)+" "+text] == 0 {
						missing = append(missing, from+" "+text)
					}
				}
			}
			if len(missing) == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recipient did not get %d messages within %s (last error %v), e.g. %q", len(missing), timeout, err, firstN(missing, 5))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkCounts checks that each text of exactly arrived exactly once and
// each text of atMostOnce (sends whose outcome the API could not tell: a
// 503 or a 504) arrived once or never. Call it once the sends are
// settled (see settleSends).
func (r *recipient) checkCounts(exactly, atMostOnce map[string][]string) {
	t := r.t
	t.Helper()
	got, err := r.received()
	if err != nil {
		t.Fatal(err)
	}
	for from, texts := range exactly {
		for _, text := range texts {
			if n := got[strings.ToLower(from)+" "+text]; n != 1 {
				t.Errorf("the recipient got %q from %s %d times, want exactly once", text, from, n)
			}
		}
	}
	for from, texts := range atMostOnce {
		for _, text := range texts {
			n := got[strings.ToLower(from)+" "+text]
			if n > 1 {
				t.Errorf("the recipient got %q from %s %d times, a send the API could not confirm must arrive at most once", text, from, n)
			}
			t.Logf("unconfirmed send %q from %s arrived %d times", text, from, n)
		}
	}
}

// settleSends makes sure no send made before it is still on its way: it
// sends one more message through each of bridges, via nodes in turn, and
// waits until all of them arrived. A bridge's reverse handler takes its
// sends one at a time, in order, so once its last message arrived every
// earlier send of that activation was published or given up; an
// activation that lost its lease cannot publish any more. It also waits
// until the database shows no due delivery and no unsent reply.
func (c *bridgeCluster) settleSends(r *recipient, bridges []clusterBridge, round string) {
	c.t.Helper()
	nodes := c.live()
	markers := map[string][]string{}
	for i, b := range bridges {
		text := fmt.Sprintf("settle %s b%03d", round, i)
		res := postMessage(c, nodes[i%len(nodes)], b.ID, r.cl.Address(), text, time.Minute)
		if res.err != nil || res.status != 202 {
			c.t.Fatalf("settle: send as bridge %d: status %d, error %v: %s", i, res.status, res.err, testkit.Tail(string(res.body), 300))
		}
		markers[b.Address] = append(markers[b.Address], text)
	}
	r.waitArrived(markers, time.Minute)
	pgtest.WaitQuiet(c.t, c.x.db, time.Minute)
}

// restSend is the outcome of one POST /v1/bridges/{id}/messages.
type restSend struct {
	status int
	body   []byte
	err    error
	took   time.Duration
}

func postMessage(c *bridgeCluster, via *clusterNode, bridgeID, to, text string, timeout time.Duration) restSend {
	began := time.Now()
	status, raw, err := doJSON(&http.Client{Timeout: timeout}, "POST", via.api+"/v1/bridges/"+bridgeID+"/messages", c.apiKey,
		map[string]any{"to": to, "content": text}, nil)
	return restSend{status: status, body: raw, err: err, took: time.Since(began)}
}

// TestClusterRESTThroughAnyNode sends over REST as a bridge through a node
// that does not host it, in a 3-node etcd cluster: the message reaches the
// Go XMTP recipient once. Right after a kill -9 of a node, the same call
// for each of its bridges through a survivor either succeeds (the node
// retries while the bridge moves) or answers a clear 503 or 504 JSON
// error, never a 500 or another status; once the bridges are placed again
// the call succeeds, and every accepted message arrives exactly once, and
// every refused one at most once, counted once the sends settled (see
// settleSends) rather than after a fixed wait. Last, a send made while the
// XMTP node hangs answers 504 and arrives at most once.
func TestClusterRESTThroughAnyNode(t *testing.T) {
	t.Parallel()
	c := newBridgeCluster(t, clusterOpts{provider: "etcd", nodes: 3})
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	bridges := c.createBridges(tg, 9)
	pc := c.waitPlaced(c.nodes[0], bridges, c.nodes, time.Minute)
	c.waitHostedTotal(c.nodes[0], bridges, c.nodes, time.Minute)
	rcpt := newRecipient(t, c.x.xmtpGRPC)
	to := rcpt.cl.Address()
	want := map[string][]string{}
	elsewhere := func(owner string, k int) *clusterNode {
		others := []*clusterNode{}
		for _, n := range c.live() {
			if n.id != owner {
				others = append(others, n)
			}
		}
		return others[k%len(others)]
	}
	for i, b := range bridges {
		owner := pc.byBridge[b.ID].Node
		via := elsewhere(owner, i)
		text := fmt.Sprintf("rest b%03d routed from %s", i, via.id)
		res := postMessage(c, via, b.ID, to, text, time.Minute)
		if res.err != nil || res.status != 202 {
			t.Fatalf("send as bridge %d (on %s) through %s: status %d, error %v: %s", i, owner, via.id, res.status, res.err, testkit.Tail(string(res.body), 300))
		}
		want[b.Address] = append(want[b.Address], text)
	}
	rcpt.waitArrived(want, time.Minute)
	c.settleSends(rcpt, bridges, "first")
	rcpt.checkCounts(want, nil)

	victim := c.nodes[0]
	for _, n := range c.nodes {
		if pc.perNode[n.id] > pc.perNode[victim.id] {
			victim = n
		}
	}
	survivors := except(c.nodes, victim)
	var moving []int
	for i, b := range bridges {
		if pc.byBridge[b.ID].Node == victim.id {
			moving = append(moving, i)
		}
	}
	victim.kill9()
	results := make([]restSend, len(moving))
	texts := make([]string, len(moving))
	var wg sync.WaitGroup
	for k, i := range moving {
		wg.Add(1)
		go func() {
			defer wg.Done()
			texts[k] = fmt.Sprintf("rest b%03d during the rehome", i)
			results[k] = postMessage(c, survivors[k%len(survivors)], bridges[i].ID, to, texts[k], 90*time.Second)
		}()
	}
	wg.Wait()
	accepted, refused := 0, 0
	unconfirmed := map[string][]string{}
	for k, i := range moving {
		res := results[k]
		switch {
		case res.err != nil:
			t.Errorf("send as bridge %d right after the kill: no answer: %v (after %s)", i, res.err, res.took)
		case res.status == 202:
			accepted++
			want[bridges[i].Address] = append(want[bridges[i].Address], texts[k])
		case res.status == 503 || res.status == 504:
			refused++
			unconfirmed[bridges[i].Address] = append(unconfirmed[bridges[i].Address], texts[k])
			if err := errorBody(res.body); err != nil {
				t.Errorf("send as bridge %d right after the kill: status %d: %v", i, res.status, err)
			}
		default:
			t.Errorf("send as bridge %d right after the kill: status %d, want 202, or 503/504 while it moves: %s",
				i, res.status, testkit.Tail(string(res.body), 300))
		}
		t.Logf("send as bridge %d right after the kill of %s: status %d in %s", i, victim.id, res.status, res.took.Round(time.Millisecond))
	}
	t.Logf("during the rehome: %d of %d sends accepted, %d refused with 503/504", accepted, len(moving), refused)

	for _, n := range survivors {
		c.waitPlaced(n, bridges, survivors, 2*time.Minute)
	}
	for k, i := range moving {
		via := survivors[(k+1)%len(survivors)]
		text := fmt.Sprintf("rest b%03d after the rehome", i)
		res := postMessage(c, via, bridges[i].ID, to, text, time.Minute)
		if res.err != nil || res.status != 202 {
			t.Fatalf("send as bridge %d through %s after the rehome: status %d, error %v: %s", i, via.id, res.status, res.err, testkit.Tail(string(res.body), 300))
		}
		want[bridges[i].Address] = append(want[bridges[i].Address], text)
	}
	rcpt.waitArrived(want, time.Minute)
	c.settleSends(rcpt, bridges, "rehomed")
	rcpt.checkCounts(want, unconfirmed)

	c.checkTimedOutSend(rcpt, bridges, survivors)
}

// checkTimedOutSend makes a send over REST time out for sure: with the
// XMTP node stopped (SIGSTOP), the owner's publish hangs, so the node that
// took the call answers 504 after the send timeout. Then the XMTP node
// continues, the hung publish may go through, and the message must reach
// the recipient at most once: a send that timed out is never sent again.
func (c *bridgeCluster) checkTimedOutSend(rcpt *recipient, bridges []clusterBridge, nodes []*clusterNode) {
	t := c.t
	t.Helper()
	pc := c.waitPlaced(nodes[0], bridges, nodes, time.Minute)
	b := bridges[0]
	var via *clusterNode
	for _, n := range nodes {
		if n.id != pc.byBridge[b.ID].Node {
			via = n
		}
	}
	x := c.x.xmtpNode
	if err := syscall.Kill(x.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP the xmtp node: %v", err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := syscall.Kill(x.cmd.Process.Pid, syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT the xmtp node: %v", err)
			}
		}
	}
	defer resume()
	text := "rest while the xmtp node hangs"
	res := postMessage(c, via, b.ID, rcpt.cl.Address(), text, 90*time.Second)
	resume()
	t.Logf("send as bridge 0 through %s with the xmtp node stopped: status %d in %s", via.id, res.status, res.took.Round(time.Millisecond))
	if res.err != nil || res.status != 504 {
		t.Errorf("send with the xmtp node stopped: status %d, error %v, want 504: %s", res.status, res.err, testkit.Tail(string(res.body), 300))
	} else if err := errorBody(res.body); err != nil {
		t.Errorf("send with the xmtp node stopped: %v", err)
	}
	c.settleSends(rcpt, bridges[:1], "timed-out")
	rcpt.checkCounts(nil, map[string][]string{b.Address: {text}})
}

// TestClusterDeleteAndDisableStopTheOwner deletes one bridge and disables
// another through a node that does not host them, with the reconcile
// interval set to a minute: the identities stop on their owners within
// seconds because the call reaches the owner through the cluster, not
// because a reconcile round found them. Enabling the disabled bridge again
// starts it on its owner.
func TestClusterDeleteAndDisableStopTheOwner(t *testing.T) {
	t.Parallel()
	c := newBridgeCluster(t, clusterOpts{provider: "automanaged", nodes: 2, name: "delete-cluster",
		tune: map[string]string{"BRIDGE_RECONCILE_INTERVAL": "1m"}})
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	bridges := c.createBridges(tg, 6)
	pc := c.waitPlaced(c.nodes[0], bridges, c.nodes, time.Minute)
	other := func(id string) *clusterNode {
		for _, n := range c.nodes {
			if n.id != pc.byBridge[id].Node {
				return n
			}
		}
		t.Fatalf("bridge %s is on no known node", id)
		return nil
	}
	gone := func(id string) func() bool {
		return func() bool {
			rows, err := c.nodes[0].placement()
			if err != nil {
				return false
			}
			for _, r := range rows {
				if r.BridgeID == id {
					return false
				}
			}
			return true
		}
	}
	deleted, disabled := bridges[0], bridges[1]
	mustCall(t, 200, "DELETE", other(deleted.ID).api+"/v1/bridges/"+deleted.ID, c.apiKey, nil)
	testkit.WaitFor(t, 10*time.Second, gone(deleted.ID), "the deleted bridge to stop on its owner")
	mustCall(t, 200, "PATCH", other(disabled.ID).api+"/v1/bridges/"+disabled.ID, c.apiKey, map[string]any{"status": "disabled"})
	testkit.WaitFor(t, 10*time.Second, gone(disabled.ID), "the disabled bridge to stop on its owner")
	c.waitHostedTotal(c.nodes[0], bridges[2:], c.nodes, 30*time.Second)

	mustCall(t, 200, "PATCH", other(disabled.ID).api+"/v1/bridges/"+disabled.ID, c.apiKey, map[string]any{"status": "active"})
	c.waitPlaced(c.nodes[0], bridges[1:], c.nodes, 10*time.Second)
}
