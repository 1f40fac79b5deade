package plugin

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/plugin/plugintest"
	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/internal/testkit"
)

// benchInput is the json webhook body of a typical message.
func benchInput(b *testing.B) []byte {
	in, err := webhook.EncodeBody(webhook.FormatJSON, webhook.Message{ID: "m-1", Bridge: "0x0000000000000000000000000000000000000001",
		Sender: "0x000000000000000000000000000000000000dEaD", Topic: "/xmtp/0/m-bench/proto", ContentType: "xmtp.org/text:1.0",
		Content: "what is the weather in Paris?", SentAt: time.Unix(1700000000, 0)})
	if err != nil {
		b.Fatal(err)
	}
	return in
}

// goOnMessage is the bot plug-in's "forward" mode written in plain Go: the
// same JSON work without Wasm.
func goOnMessage(in []byte, mode string) ([]byte, error) {
	var m struct {
		Content string `json:"content"`
		Sender  string `json:"sender"`
	}
	if err := json.Unmarshal(in, &m); err != nil {
		return nil, err
	}
	if mode == "help" && strings.TrimSpace(strings.ToLower(m.Content)) == "help" {
		return json.Marshal(map[string]any{"action": "reply", "content": "Commands: help, weather <city>"})
	}
	return json.Marshal(map[string]any{"action": "forward"})
}

// pdkStyle is the ldflags that build a test plug-in whose shim reads and
// writes as the official Extism PDKs do (see the guests' pdk package).
const pdkStyle = "-X guests/pdk.Style=pdk"

// cpuPerOp starts counting the process's CPU time (GC and wazero's
// goroutines included); the returned function reports it per iteration as
// cpu-ns/op. The machine is shared, so the CPU time of a call is steadier
// than its wall time; benchmarks report both.
func cpuPerOp(b *testing.B) func() {
	start := processCPU(b)
	return func() { b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op") }
}

func processCPU(b *testing.B) time.Duration {
	d, err := testkit.CPUTime(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func benchBinding(b *testing.B, ldflags string) (*harness, *binding) {
	h := newHarness(b, Config{Timeout: 10 * time.Second})
	id, addr := h.bridge()
	p := h.upload("bot", plugintest.Build(b, plugintest.Bot, ldflags))
	h.bind(id, OnMessage, p.ID, map[string]string{"mode": "forward"}, ErrorForward)
	bd := h.host.lookup(addr, OnMessage)
	if bd == nil {
		b.Fatal("no binding")
	}
	return h, bd
}

// BenchmarkOnMessageWarm is one on_message call of the trivial plug-in on
// a pooled, resident instance; compare with BenchmarkOnMessageGo. Its shim
// makes the fewest host calls the Extism ABI allows.
func BenchmarkOnMessageWarm(b *testing.B) { benchWarm(b, "") }

// BenchmarkOnMessageWarmPDK is BenchmarkOnMessageWarm with the shim reading
// and writing as the official PDKs do: byte-wise tails and config_get on
// every call.
func BenchmarkOnMessageWarmPDK(b *testing.B) { benchWarm(b, pdkStyle) }

func benchWarm(b *testing.B, ldflags string) {
	h, bd := benchBinding(b, ldflags)
	in := benchInput(b)
	if _, err := h.host.call(h.ctx, bd, in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuPerOp(b)()
	for i := 0; i < b.N; i++ {
		out, err := h.host.call(h.ctx, bd, in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeMessageResult(out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOnMessageGo is BenchmarkOnMessageWarm's work as a Go function.
func BenchmarkOnMessageGo(b *testing.B) {
	in := benchInput(b)
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for i := 0; i < b.N; i++ {
		out, err := goOnMessage(in, "forward")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeMessageResult(out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOnMessageCold is a call on a binding whose module is not
// resident: it compiles the module through the on-disk compilation cache
// (filled by the upload's validation), instantiates it and calls it.
func BenchmarkOnMessageCold(b *testing.B) {
	h, bd := benchBinding(b, "")
	in := benchInput(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		old := bd.cur.Load()
		h.host.mu.Lock()
		bd.cur.Store(h.host.newPoolLocked(old.pluginID, old.sha, old.config))
		h.host.mu.Unlock()
		old.retire()
		b.StartTimer()
		if _, err := h.host.call(h.ctx, bd, in); err != nil {
			b.Fatal(err)
		}
	}
}
