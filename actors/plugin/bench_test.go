package plugin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook"
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

func benchBinding(b *testing.B) (*harness, *binding) {
	h := newHarness(b, Config{Timeout: 10 * time.Second})
	id, addr := h.bridge()
	p := h.upload("bot", bot(b))
	h.bind(id, OnMessage, p.ID, map[string]string{"mode": "forward"}, ErrorForward)
	bd := h.host.lookup(addr, OnMessage)
	if bd == nil {
		b.Fatal("no binding")
	}
	return h, bd
}

// BenchmarkOnMessageWarm is one on_message call of the trivial plug-in on
// a pooled, resident instance; compare with BenchmarkOnMessageGo.
func BenchmarkOnMessageWarm(b *testing.B) {
	h, bd := benchBinding(b)
	in := benchInput(b)
	if _, err := h.host.call(h.ctx, bd, in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
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
	h, bd := benchBinding(b)
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
