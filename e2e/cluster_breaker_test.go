package e2e

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
)

// downTarget is a webhook target behind a switch: while down it answers
// 503 to everything; it records when each request arrived.
type downTarget struct {
	*webhooktest.Target
	srv  *httptest.Server
	down atomic.Bool

	mu       sync.Mutex
	arrivals []time.Time
}

func newDownTarget(t testing.TB) *downTarget {
	dt := &downTarget{Target: webhooktest.NewTarget(t, persistence.FormatJSON)}
	dt.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dt.mu.Lock()
		dt.arrivals = append(dt.arrivals, time.Now())
		dt.mu.Unlock()
		if dt.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		dt.Target.ServeHTTP(w, r)
	}))
	t.Cleanup(dt.srv.Close)
	// Requests reach the target through the switch.
	dt.Target.URL = dt.srv.URL
	return dt
}

func (dt *downTarget) requestsSince(t0 time.Time) int {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	n := 0
	for _, a := range dt.arrivals {
		if !a.Before(t0) {
			n++
		}
	}
	return n
}

// endpointHealth reads the endpointHealth of a bridge through n's API.
func (c *bridgeCluster) endpointHealth(n *clusterNode, bridgeID string) map[string]any {
	c.t.Helper()
	_, body := call(c.t, "GET", n.api+"/v1/bridges/"+bridgeID, c.apiKey, nil)
	h, _ := body["endpointHealth"].(map[string]any)
	return h
}

// TestClusterBreakerSurvivesOwnerKill: a bridge's endpoint goes down while
// messages arrive and its breaker opens. The owner node is killed with
// kill -9 while the breaker is open. The node that takes the identity over
// reads the same health from Postgres and keeps probing, at most once per
// probe interval; when the endpoint comes back, it flushes the backlog:
// every message is delivered and answered exactly once.
func TestClusterBreakerSurvivesOwnerKill(t *testing.T) {
	t.Parallel()
	const probeMin = 500 * time.Millisecond
	c := newBridgeCluster(t, clusterOpts{provider: "automanaged", nodes: 2, name: "e2e-breaker", tune: map[string]string{
		"BRIDGE_BREAKER_OPEN_AFTER": "2", "BRIDGE_BREAKER_PROBE_MIN": probeMin.String(), "BRIDGE_BREAKER_PROBE_MAX": "1s",
	}})
	tg := newDownTarget(t)
	tg.down.Store(true)
	bridges := c.createBridges(tg.Target, 1)
	b := bridges[0]
	pool := newXMTPPool(t, c, bridges, 1)
	var texts []string
	for range 10 {
		text, err := pool.send(0, "breaker")
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, text)
	}
	testkit.WaitFor(t, time.Minute, func() bool {
		h := c.endpointHealth(c.live()[0], b.ID)
		return h["state"] == "open" && h["nextProbeAt"] != nil
	}, "the breaker open, seen over REST")
	pc := c.waitPlaced(c.live()[0], bridges, c.live(), time.Minute)
	owner := pc.byBridge[b.ID].Node
	var victim *clusterNode
	for _, n := range c.live() {
		if n.id == owner {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("owner %q of the bridge is not a live node", owner)
	}
	survivors := except(c.live(), victim)
	victim.kill9()
	after := c.waitPlaced(survivors[0], bridges, survivors, 2*time.Minute)
	if after.byBridge[b.ID].Node == owner {
		t.Fatalf("the bridge stayed on the killed node %s", owner)
	}
	// The new owner probes: the endpoint keeps seeing requests, but at
	// most one per probe interval, and the health row's next probe moves.
	placed := time.Now()
	first := c.endpointHealth(survivors[0], b.ID)
	testkit.WaitFor(t, 30*time.Second, func() bool { return tg.requestsSince(placed) >= 2 }, "probes from the new owner")
	elapsed := time.Since(placed)
	if n, most := tg.requestsSince(placed), int(elapsed/probeMin)+2; n > most {
		t.Fatalf("the endpoint saw %d requests in %v after the move; at most one per %v (%d) allowed", n, elapsed, probeMin, most)
	}
	if h := c.endpointHealth(survivors[0], b.ID); h["state"] != "open" || h["nextProbeAt"] == first["nextProbeAt"] {
		t.Fatalf("health after probes by the new owner = %v (before: %v), want open with a later next probe", h, first)
	}
	tg.down.Store(false)
	back := time.Now()
	pool.waitAnswered(texts, 30*time.Second, "the backlog after the endpoint came back")
	t.Logf("backlog of %d flushed by the new owner %v after the endpoint came back", len(texts), time.Since(back))
	pool.checkNothingLost(tg.Target, time.Minute)
	if h := c.endpointHealth(survivors[0], b.ID); h["state"] != "healthy" || h["lastSuccessAt"] == nil {
		t.Fatalf("health after the flush = %v, want healthy with a last success", h)
	}
}
