package actors

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/persistence"
)

// TestMetricsStayFlatOverActivations: activating and stopping an identity
// (and its forward child) many times leaves the node's /metrics as it was,
// the same number of series and a scrape that allocates no more, while
// bridge_actor_spawns_total and bridge_actor_stops_total count every
// actor. (protoactor's own metrics, when they were on, asked for a
// mailbox-length callback per actor spawned; with the OpenTelemetry SDK
// pinned here that registration is a no-op, so this stays flat with them
// too: the test guards against growth, the counters against their loss.)
func TestMetricsStayFlatOverActivations(t *testing.T) {
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, _ := e.bridge(tg.URL, persistence.FormatJSON, nil)
	rt, reg := e.runtime("n1", nil)
	ctx := context.Background()
	cycle := func() {
		t.Helper()
		if err := rt.Deactivate(ctx, b.ID); err != nil {
			t.Fatalf("deactivate: %v", err)
		}
		if err := rt.Activate(ctx, b.ID); err != nil {
			t.Fatalf("activate: %v", err)
		}
		// Spawns the forward child, an actor of its own.
		if !rt.sweepBridge(b.ID) {
			t.Fatal("bridge not hosted after activate")
		}
	}
	// A few cycles first, so that every series a cycle creates exists.
	for range 3 {
		cycle()
	}
	waitForwardSpawned(t, reg, 3)
	series0, allocs0 := scrapeCost(t, reg)
	const cycles = 200
	for range cycles {
		cycle()
	}
	waitForwardSpawned(t, reg, 3+cycles)
	series1, allocs1 := scrapeCost(t, reg)
	t.Logf("after %d activations: %d series (was %d), %.0f allocations per scrape (was %.0f)",
		cycles, series1, series0, allocs1, allocs0)
	// Every cycle spawns and stops the grain and its forward child; the
	// last of each is alive.
	for _, a := range []string{"identity", "forward"} {
		spawned := counterValue(t, reg, "bridge_actor_spawns_total", map[string]string{"actor": a})
		stopped := counterValue(t, reg, "bridge_actor_stops_total", map[string]string{"actor": a})
		if spawned < cycles || stopped != spawned-1 {
			t.Errorf("%s: %v spawns, %v stops; want at least %d spawns and one stop fewer", a, spawned, stopped, cycles)
		}
	}
	if series1 != series0 {
		t.Errorf("series: %d after %d activations, %d before", series1, cycles, series0)
	}
	// One callback per actor spawned costs several allocations per scrape
	// each; this bound leaves room for the allocations of the node's other
	// goroutines during a scrape.
	if allocs1 > allocs0+cycles {
		t.Errorf("a scrape allocates %.0f times after %d activations, %.0f before: its cost grows with the actors ever spawned",
			allocs1, cycles, allocs0)
	}
}

// waitForwardSpawned waits until the forward child has been spawned n
// times, where the node counts it (a node without the counter waits the
// full second).
func waitForwardSpawned(t *testing.T, reg *prometheus.Registry, n float64) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if counterValue(t, reg, "bridge_actor_spawns_total", map[string]string{"actor": "forward"}) >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrapeCost gathers reg and returns its number of series and the fewest
// allocations a gather made over several tries.
func scrapeCost(t *testing.T, reg *prometheus.Registry) (int, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		series += len(mf.GetMetric())
	}
	best := -1.0
	for range 5 {
		runtime.GC()
		a := testing.AllocsPerRun(5, func() { _, _ = reg.Gather() })
		if best < 0 || a < best {
			best = a
		}
	}
	return series, best
}
