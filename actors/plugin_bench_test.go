package actors

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors/plugin"
	"github.com/xmtpbridge/bridge/actors/plugin/plugintest"
	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
)

// BenchmarkForwardRoundTripPlugin is one sender's forward round trip
// (XMTP → bridge → local HTTP echo → XMTP reply) without and with a
// trivial on_message plug-in on the bridge; the ratio of the two ns/op is
// what the plug-in costs a round trip.
func BenchmarkForwardRoundTripPlugin(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchPluginRoundTrip(b, false) })
	b.Run("plugin", func(b *testing.B) { benchPluginRoundTrip(b, true) })
}

func benchPluginRoundTrip(b *testing.B, withPlugin bool) {
	ctx := context.Background()
	e := newEnv(b)
	tg := webhooktest.NewTarget(b, persistence.FormatRelaycc)
	br, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	var tune func(*Config)
	var preg *prometheus.Registry
	if withPlugin {
		wasm := plugintest.Build(b, plugintest.Bot, "")
		preg = prometheus.NewRegistry()
		host, err := plugin.NewHost(plugin.Config{Source: e.store, CacheDir: b.TempDir(), Timeout: 5 * time.Second, Registerer: preg})
		if err != nil {
			b.Fatal(err)
		}
		exports, err := host.Validate(ctx, wasm)
		if err != nil {
			b.Fatal(err)
		}
		p, _, err := e.store.SavePlugin(ctx, e.account.ID, "bot", wasm, exports, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.store.BindPlugin(ctx, e.account.ID, br.ID, "on_message", p.ID, map[string]string{"mode": "forward"}, "forward"); err != nil {
			b.Fatal(err)
		}
		if err := host.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(host.Stop)
		tune = func(c *Config) { c.Deliverer = plugin.NewDeliverer(host, c.Deliverer) }
	}
	e.runtime("bench", tune)
	c := e.sender()
	sent, err := c.SendText(ctx, br.Address, "warm-up")
	if err != nil {
		b.Fatal(err)
	}
	testkit.WaitFor(b, 30*time.Second, func() bool { return len(messagesFrom(b, c, br.Address)) == 1 }, "warm-up reply")
	sub := e.xmtp.Subscribe(ctx)
	defer sub.Close()
	sub.Add(sent.Topic)
	// The warm-up's plug-in call compiled the module: the mean call time
	// is taken over the timed round trips only. CPU time is the whole
	// process's (node, XMTP node and client alike): steadier than wall
	// time on a shared machine.
	sum0, n0 := pluginCallSeconds(preg)
	cpu0 := processCPU(b)
	b.ResetTimer()
	defer func() {
		b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		if sum, n := pluginCallSeconds(preg); n > n0 {
			b.ReportMetric((sum-sum0)/float64(n-n0)*1e6, "plugin-µs/call")
		}
	}()
	for i := 0; i < b.N; i++ {
		key := fmt.Sprintf("bench-%d", i)
		if _, err := c.SendText(ctx, br.Address, key); err != nil {
			b.Fatal(err)
		}
		deadline := time.After(time.Minute)
	wait:
		for {
			select {
			case env := <-sub.Envelopes():
				m, _, err := c.Handle(env)
				if err != nil || m == nil {
					continue
				}
				if text, _ := m.Content.Text(); text == "echo: "+key {
					break wait
				}
			case <-deadline:
				b.Fatalf("no reply to %s", key)
			}
		}
	}
}

// pluginCallSeconds is the sum and count of bridge_plugin_call_seconds in
// reg (zero without a registry).
func pluginCallSeconds(reg *prometheus.Registry) (float64, uint64) {
	if reg == nil {
		return 0, 0
	}
	var sum float64
	var n uint64
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "bridge_plugin_call_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetHistogram().GetSampleSum()
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return sum, n
}

// processCPU is the CPU time this process used so far.
func processCPU(b *testing.B) time.Duration {
	d, err := testkit.CPUTime(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	return d
}
