package actors

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/client"
)

// flakyTarget is a real HTTP endpoint in front of a target: while down it
// answers 503 without looking at the request; it records every request's
// arrival and the most requests it ever had in flight at once.
type flakyTarget struct {
	*webhooktest.Target
	srv *httptest.Server

	down     atomic.Bool
	inflight atomic.Int64
	peak     atomic.Int64

	mu       sync.Mutex
	arrivals []time.Time
}

func newFlakyTarget(t testing.TB, format persistence.BodyFormat, delay time.Duration) *flakyTarget {
	ft := &flakyTarget{Target: webhooktest.NewTarget(t, format)}
	ft.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ft.inflight.Add(1)
		defer ft.inflight.Add(-1)
		for {
			p := ft.peak.Load()
			if n <= p || ft.peak.CompareAndSwap(p, n) {
				break
			}
		}
		ft.mu.Lock()
		ft.arrivals = append(ft.arrivals, time.Now())
		ft.mu.Unlock()
		if delay > 0 {
			time.Sleep(delay) // the endpoint's own latency, so attempts overlap
		}
		if ft.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ft.Target.ServeHTTP(w, r)
	}))
	t.Cleanup(ft.srv.Close)
	// Requests reach the target through the switch.
	ft.Target.URL = ft.srv.URL
	return ft
}

// requestsSince counts the requests that arrived at or after t0.
func (ft *flakyTarget) requestsSince(t0 time.Time) []time.Time {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	var out []time.Time
	for _, a := range ft.arrivals {
		if !a.Before(t0) {
			out = append(out, a)
		}
	}
	return out
}

// distinct reports how many distinct webhook ids the target accepted, and
// the most times it accepted one.
func distinct(tg *webhooktest.Target) (n, most int) {
	ids := tg.IDs()
	for _, c := range ids {
		most = max(most, c)
	}
	return len(ids), most
}

func (e *env) health(t testing.TB, bridgeID string) persistence.EndpointHealth {
	t.Helper()
	h, err := e.store.EndpointHealthOf(context.Background(), bridgeID)
	if err != nil {
		t.Fatalf("load endpoint health: %v", err)
	}
	return h
}

// countRows runs a count query with the bridge id as $1.
func (e *env) countRows(t testing.TB, query, bridgeID string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.db)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, query, bridgeID).Scan(&n); err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return n
}

func sendAll(t testing.TB, e *env, to string, texts []string) *client.Client {
	t.Helper()
	c := e.sender()
	for _, m := range texts {
		if _, err := c.SendText(context.Background(), to, m); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	return c
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// TestBreakerRecoveryFlush: 100 messages arrive while the endpoint is
// down. The breaker opens; while it is open the endpoint sees at most one
// request per probe interval, and the waiting deliveries use none of their
// attempts. Once the endpoint is back, all 100 are delivered, once each,
// and every reply arrives on XMTP, in the order of the
// messages, never more attempts in flight than the bridge's concurrency.
func TestBreakerRecoveryFlush(t *testing.T) {
	e := newEnv(t)
	ft := newFlakyTarget(t, persistence.FormatJSON, 20*time.Millisecond)
	ft.down.Store(true)
	const limit = 4
	b, secret := e.bridge(ft.URL, persistence.FormatJSON, func(fc *persistence.ForwardConfig) { fc.MaxConcurrency = limit })
	ft.SetSecret(secret)
	const probeMin = 400 * time.Millisecond
	_, reg := e.runtime("n1", func(c *Config) {
		c.Breaker = BreakerConfig{OpenAfter: 3, ProbeMin: probeMin, ProbeMax: 800 * time.Millisecond}
		// Far fewer than the attempts the sweeps would make of 100 waiting
		// deliveries, and more than the probes of the outage below: the
		// probe is the oldest due delivery, so each probe is one of its
		// attempts.
		c.Retry.MaxAttempts = 8
		c.SweepInterval = 100 * time.Millisecond
	})
	texts := numbered("flush", 100)
	c := sendAll(t, e, b.Address, texts)
	testkit.WaitFor(t, 60*time.Second, func() bool {
		return e.countRows(t, `SELECT count(*) FROM deliveries WHERE bridge_id = $1`, b.ID) == 100
	}, "100 deliveries recorded")
	testkit.WaitFor(t, 20*time.Second, func() bool { return e.health(t, b.ID).State == persistence.EndpointOpen }, "the breaker open")
	// Attempts in flight when it opened end within their latency; from
	// then on only probes reach the endpoint. The outage lasts until two
	// probes, however slowly the machine runs.
	window := time.Now().Add(200 * time.Millisecond)
	testkit.WaitFor(t, 20*time.Second, func() bool {
		return time.Since(window) > 0 && len(ft.requestsSince(window)) >= 2
	}, "two probes of the open endpoint")
	// Attempts are read before requests: an attempt is recorded after its
	// request arrived, so every recorded attempt is among the requests.
	attempts := e.countRows(t, `SELECT coalesce(sum(attempts), 0)::int FROM deliveries WHERE bridge_id = $1`, b.ID)
	used := e.countRows(t, `SELECT coalesce(max(attempts), 0) FROM deliveries WHERE bridge_id = $1`, b.ID)
	requests := len(ft.requestsSince(time.Time{}))
	probes := ft.requestsSince(window)
	elapsed := time.Since(window)
	if most := int(elapsed/probeMin) + 1; len(probes) > most {
		t.Fatalf("the endpoint saw %d requests in %v while the breaker was open; at most one per %v (%d) allowed",
			len(probes), elapsed, probeMin, most)
	}
	for i := 1; i < len(probes); i++ {
		if gap := probes[i].Sub(probes[i-1]); gap < probeMin/2 {
			t.Fatalf("probes %v apart, the minimum probe interval is %v", gap, probeMin)
		}
	}
	if attempts > requests {
		t.Fatalf("the deliveries record %d attempts, the endpoint saw %d requests: an attempt the breaker held back used one of its delivery's attempts", attempts, requests)
	}
	if dead := e.countRows(t, `SELECT count(*) FROM deliveries WHERE bridge_id = $1 AND status = 'dead'`, b.ID); dead != 0 {
		t.Fatalf("%d deliveries dead while the breaker held them back; waiting must use no attempts", dead)
	}
	if used >= 8 {
		t.Fatalf("a delivery used %d attempts while the breaker was open", used)
	}
	t.Logf("%d attempts recorded for %d requests, at most %d on one delivery, %d probes in %v", attempts, requests, used, len(probes), elapsed)

	ft.down.Store(false)
	back := time.Now()
	// The flush is nudged, not left to the sweep; how fast it runs is
	// BenchmarkBreakerRecovery's to measure, so the bound here is loose.
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return e.countRows(t, `SELECT count(*) FROM reply_outbox WHERE bridge_id = $1 AND status = 'sent'`, b.ID) == 100
	}, "every delivery and every reply sent")
	testkit.WaitFor(t, time.Until(back.Add(30*time.Second)), func() bool {
		return len(messagesFrom(t, c, b.Address)) == 100
	}, "every reply on XMTP")
	t.Logf("backlog of 100 delivered and answered %v after the endpoint came back", time.Since(back))
	// The replies of the conversation are in the order of its messages,
	// though the attempts ran side by side.
	for i, r := range messagesFrom(t, c, b.Address) {
		if want := "echo: " + texts[i]; r != want {
			t.Fatalf("reply %d is %q, want %q: the flush answered out of order", i, r, want)
		}
	}
	if n, most := distinct(ft.Target); n != 100 || most != 1 {
		t.Fatalf("the endpoint accepted %d distinct deliveries, one of them %d times; want 100, once each", n, most)
	}
	if p := ft.peak.Load(); p > limit {
		t.Fatalf("%d attempts in flight at once; the bridge's concurrency is %d", p, limit)
	}
	if h := e.health(t, b.ID); h.State != persistence.EndpointHealthy || h.FailureStreak != 0 || h.LastSuccessAt == nil {
		t.Fatalf("health after recovery = %+v, want healthy", h)
	}
	if n := counterValue(t, reg, "bridge_endpoint_transitions_total", map[string]string{"to": "open"}); n < 1 {
		t.Fatalf("transitions to open = %v", n)
	}
	if n := counterValue(t, reg, "bridge_endpoint_transitions_total", map[string]string{"to": "healthy"}); n < 1 {
		t.Fatalf("transitions to healthy = %v", n)
	}
}

// TestBreakerFlapping: the endpoint goes up and down every 700 ms while
// messages arrive. Every message is delivered exactly once and answered
// once, and the breaker opens no more often than its minimum probe
// interval allows.
func TestBreakerFlapping(t *testing.T) {
	e := newEnv(t)
	ft := newFlakyTarget(t, persistence.FormatJSON, 0)
	b, secret := e.bridge(ft.URL, persistence.FormatJSON, nil)
	ft.SetSecret(secret)
	const probeMin = 500 * time.Millisecond
	_, reg := e.runtime("n1", func(c *Config) {
		c.Breaker = BreakerConfig{OpenAfter: 2, ProbeMin: probeMin, ProbeMax: time.Second}
		c.SweepInterval = 100 * time.Millisecond
	})
	start := time.Now()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(700 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				ft.down.Store(false)
				return
			case <-tick.C:
				ft.down.Store(!ft.down.Load())
			}
		}
	}()
	c := e.sender()
	texts := numbered("flap", 30)
	for _, m := range texts {
		if _, err := c.SendText(context.Background(), b.Address, m); err != nil {
			t.Fatalf("send: %v", err)
		}
		time.Sleep(150 * time.Millisecond) // messages spread over the flapping
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return time.Since(start) > 6*time.Second }, "several flaps")
	close(stop)
	<-done
	flapped := time.Since(start)
	testkit.WaitFor(t, 30*time.Second, func() bool { n, _ := distinct(ft.Target); return n == len(texts) }, "every message delivered")
	pgtest.WaitQuiet(t, e.db, 20*time.Second, b.ID)
	if n, most := distinct(ft.Target); n != len(texts) || most != 1 {
		t.Fatalf("the endpoint accepted %d distinct deliveries, one %d times; want %d, once each", n, most, len(texts))
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) == len(texts) }, "every reply")
	got := messagesFrom(t, c, b.Address)
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r] {
			t.Fatalf("reply %q twice", r)
		}
		seen[r] = true
	}
	opens := counterValue(t, reg, "bridge_endpoint_transitions_total", map[string]string{"to": "open"})
	if most := float64(flapped/probeMin) + 1; opens > most {
		t.Fatalf("the breaker opened %v times in %v: faster than its minimum probe interval %v allows", opens, flapped, probeMin)
	}
	t.Logf("breaker opened %v times in %v of flapping", opens, flapped)
}

// TestBreakerMaxAgeWhileOpen: deliveries held back by an open breaker use
// no attempts, but their age still bounds them: past MaxAge they become
// dead letters, counted.
func TestBreakerMaxAgeWhileOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ft := newFlakyTarget(t, persistence.FormatJSON, 0)
	ft.down.Store(true)
	b, secret := e.bridge(ft.URL, persistence.FormatJSON, nil)
	ft.SetSecret(secret)
	_, reg := e.runtime("n1", func(c *Config) {
		c.Breaker = BreakerConfig{OpenAfter: 2, ProbeMin: 200 * time.Millisecond, ProbeMax: 400 * time.Millisecond}
		c.Retry.MaxAge = 3 * time.Second
		c.Retry.MaxAttempts = 1000
	})
	_ = sendAll(t, e, b.Address, numbered("old", 10))
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return e.countRows(t, `SELECT count(*) FROM deliveries WHERE bridge_id = $1 AND status = 'dead'`, b.ID) == 10
	}, "10 dead letters")
	if n := counterValue(t, reg, "bridge_forward_dead_letters_total", nil); n != 10 {
		t.Fatalf("dead letters counted = %v, want 10", n)
	}
	if h := e.health(t, b.ID); h.State != persistence.EndpointOpen {
		t.Fatalf("health = %s, want open", h.State)
	}
}

// TestBreakerDisablesAfterLongOutage: an endpoint open for DisableAfter is
// disabled as with a 410: the bridge stops forwarding and the owner sees
// it in the bridge's status and the state metric; setting the bridge
// active again starts afresh and delivers what waited.
func TestBreakerDisablesAfterLongOutage(t *testing.T) {
	e := newEnv(t)
	ft := newFlakyTarget(t, persistence.FormatJSON, 0)
	ft.down.Store(true)
	b, secret := e.bridge(ft.URL, persistence.FormatJSON, nil)
	ft.SetSecret(secret)
	rt, reg := e.runtime("n1", func(c *Config) {
		c.Breaker = BreakerConfig{OpenAfter: 2, ProbeMin: 200 * time.Millisecond, ProbeMax: 200 * time.Millisecond, DisableAfter: time.Second}
	})
	texts := numbered("gone", 3)
	_ = sendAll(t, e, b.Address, texts)
	ctx := context.Background()
	testkit.WaitFor(t, 30*time.Second, func() bool { return e.health(t, b.ID).State == persistence.EndpointDisabled }, "the endpoint disabled")
	got, err := e.store.BridgeByID(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != persistence.StatusEndpointGone {
		t.Fatalf("bridge status = %s, want %s", got.Status, persistence.StatusEndpointGone)
	}
	if n := counterValue(t, reg, "bridge_endpoint_state", map[string]string{"state": "disabled"}); n != 1 {
		t.Fatalf("bridge_endpoint_state{state=disabled} = %v, want 1", n)
	}
	if n := counterValue(t, reg, "bridge_endpoint_backlog_deliveries", nil); n != 3 {
		t.Fatalf("bridge_endpoint_backlog_deliveries = %v, want 3", n)
	}
	before := len(ft.requestsSince(time.Time{}))
	// Nothing reaches a disabled endpoint.
	deadline := time.Now().Add(time.Second)
	testkit.WaitFor(t, 5*time.Second, func() bool { return time.Now().After(deadline) }, "a second with the endpoint disabled")
	if after := len(ft.requestsSince(time.Time{})); after != before {
		t.Fatalf("a disabled endpoint got %d requests", after-before)
	}
	// The owner fixes the endpoint and sets the bridge active again.
	ft.down.Store(false)
	if _, err := e.store.UpdateBridge(ctx, e.account.ID, b.ID, func(b *persistence.Bridge) error {
		b.Status = persistence.StatusActive
		return nil
	}); err != nil {
		t.Fatalf("set bridge active: %v", err)
	}
	if err := rt.Activate(ctx, b.ID); err != nil {
		t.Fatalf("activate: %v", err)
	}
	rt.forgetBridge(b.ID)
	rt.Nudge(b.ID)
	testkit.WaitFor(t, 20*time.Second, func() bool { n, _ := distinct(ft.Target); return n == len(texts) }, "the waiting messages delivered")
	if h := e.health(t, b.ID); h.State != persistence.EndpointHealthy {
		t.Fatalf("health after the owner's fix = %s, want healthy", h.State)
	}
}

// TestBreakerProbesWithoutSweep: with the sweep out of the way, the wake of
// the open endpoint alone keeps the probes going, one delivery after the
// other, until each has used its attempts; then the endpoint comes back
// and a new message goes through at once.
func TestBreakerProbesWithoutSweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ft := newFlakyTarget(t, persistence.FormatJSON, 0)
	ft.down.Store(true)
	b, secret := e.bridge(ft.URL, persistence.FormatJSON, nil)
	ft.SetSecret(secret)
	e.runtime("n1", func(c *Config) {
		c.Breaker = BreakerConfig{OpenAfter: 1, ProbeMin: 200 * time.Millisecond, ProbeMax: 400 * time.Millisecond}
		c.Retry.MaxAttempts = 2
		c.SweepInterval = time.Hour
	})
	c := sendAll(t, e, b.Address, numbered("wake", 3))
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return e.countRows(t, `SELECT count(*) FROM deliveries WHERE bridge_id = $1 AND status = 'dead' AND attempts = 2`, b.ID) == 3
	}, "every delivery dead after its two attempts")
	ft.down.Store(false)
	if _, err := c.SendText(context.Background(), b.Address, "after"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return ft.Has("after") }, "the next probe delivers the new message")
	testkit.WaitFor(t, 10*time.Second, func() bool { return e.health(t, b.ID).State == persistence.EndpointHealthy }, "the breaker closed")
}
