package plugin

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xmtpbridge/bridge/actors/plugin/plugintest"
	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

func TestOnMessageAnswersHelpWithoutCallingTheEndpoint(t *testing.T) {
	h := newHarness(t, Config{Timeout: 5 * time.Second})
	id, addr := h.bridge()
	p := h.upload("bot", bot(t))
	h.bind(id, OnMessage, p.ID, map[string]string{"mode": "help"}, ErrorForward)

	res := h.send(addr, "help")
	if res.Outcome != webhook.OutcomeDelivered || !res.HasReply || !strings.HasPrefix(res.Reply, "Commands:") {
		t.Fatalf("help: got %+v", res)
	}
	if n := h.hits.Load(); n != 0 {
		t.Fatalf("the endpoint got %d requests for a message the plug-in answered", n)
	}
	res = h.send(addr, "what is up")
	if res.Outcome != webhook.OutcomeDelivered || res.Reply != "from the endpoint" || h.hits.Load() != 1 {
		t.Fatalf("other message: got %+v, hits %d", res, h.hits.Load())
	}
	if got := testutil.ToFloat64(h.host.metrics.calls.WithLabelValues("on_message")); got != 2 {
		t.Fatalf("bridge_plugin_calls_total{point=on_message} = %v, want 2", got)
	}
	if testutil.ToFloat64(h.host.metrics.cacheHits) < 1 || testutil.ToFloat64(h.host.metrics.cacheMisses) != 1 {
		t.Fatalf("cache hits %v, misses %v: want the second call warm and one miss",
			testutil.ToFloat64(h.host.metrics.cacheHits), testutil.ToFloat64(h.host.metrics.cacheMisses))
	}
}

func TestDropAndRewrite(t *testing.T) {
	h := newHarness(t, Config{Timeout: 5 * time.Second})
	id, addr := h.bridge()
	p := h.upload("bot", bot(t))
	h.bind(id, OnMessage, p.ID, map[string]string{"mode": "drop"}, ErrorForward)
	if res := h.send(addr, "spam"); res.Outcome != webhook.OutcomeDelivered || res.HasReply || h.hits.Load() != 0 {
		t.Fatalf("drop: got %+v, target hits %d", res, h.hits.Load())
	}
	var gotHeader, gotBody string
	h.target.Config.Handler = recordHandler(&gotHeader, &gotBody, h)
	h.bind(id, OnMessage, p.ID, map[string]string{"mode": "rewrite"}, ErrorForward)
	if res := h.send(addr, "quiet please"); res.Outcome != webhook.OutcomeDelivered {
		t.Fatalf("rewrite: got %+v", res)
	}
	if gotHeader != "rewrite" || !strings.Contains(gotBody, `"content":"QUIET PLEASE"`) {
		t.Fatalf("rewrite: target got header %q body %s", gotHeader, gotBody)
	}
}

func TestOnResponseTurnsJSONIntoASentence(t *testing.T) {
	h := newHarness(t, Config{Timeout: 5 * time.Second})
	id, addr := h.bridge()
	p := h.upload("bot", bot(t))
	h.bind(id, OnResponse, p.ID, nil, ErrorForward)
	h.answer.Store(`{"city":"Paris","tempC":21.5}`)
	res := h.send(addr, "weather paris")
	if res.Outcome != webhook.OutcomeDelivered || res.Reply != "It is 21.5°C in Paris." {
		t.Fatalf("got %+v", res)
	}
	// {"reply": null}: no reply at all.
	h.answer.Store(`{"unrelated":true}`)
	if res := h.send(addr, "other"); res.Outcome != webhook.OutcomeDelivered || res.HasReply {
		t.Fatalf("null reply: got %+v", res)
	}
}

func TestOnSendRewritesAndRefuses(t *testing.T) {
	h := newHarness(t, Config{Timeout: 5 * time.Second})
	id, addr := h.bridge()
	p := h.upload("bot", bot(t))
	h.bind(id, OnSend, p.ID, map[string]string{"prefix": "[bot] "}, ErrorForward)
	out, err := h.host.FilterSend(h.ctx, addr, "0x000000000000000000000000000000000000dEaD", content.Text("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if text, _ := out.Text(); text != "[bot] hello" {
		t.Fatalf("rewritten content %q", text)
	}
	if _, err := h.host.FilterSend(h.ctx, addr, "0x000000000000000000000000000000000000dEaD", content.Text("a forbidden word")); !errors.Is(err, ErrRefused) {
		t.Fatalf("refusal: got %v, want ErrRefused", err)
	}
}

func TestUploadsWithoutExtensionPointOrNotWasmAreRefused(t *testing.T) {
	h := newHarness(t, Config{})
	if _, err := h.host.Validate(h.ctx, []byte("#!/bin/sh\necho hi\n")); !errors.Is(err, ErrNotWasm) {
		t.Fatalf("script: got %v, want ErrNotWasm", err)
	}
	if _, err := h.host.Validate(h.ctx, append([]byte{0, 'a', 's', 'm', 1, 0, 0, 0}, 0xff, 0xff)); !errors.Is(err, ErrInvalidModule) {
		t.Fatalf("broken module: got %v, want ErrInvalidModule", err)
	}
	if _, err := h.host.Validate(h.ctx, plugintest.Build(t, plugintest.NoExport, "")); !errors.Is(err, ErrNoExport) {
		t.Fatalf("no export: got %v, want ErrNoExport", err)
	}
	exports, err := h.host.Validate(h.ctx, bot(t))
	if err != nil || strings.Join(exports, ",") != "on_message,on_response,on_send" {
		t.Fatalf("bot exports %v, %v", exports, err)
	}
}

func TestResidencyEndsAfterKeepResidentAndColdStartsFromDiskCache(t *testing.T) {
	cache := t.TempDir()
	h := newHarness(t, Config{Timeout: 5 * time.Second, KeepResident: 300 * time.Millisecond, CacheDir: cache})
	id, addr := h.bridge()
	p := h.upload("bot", bot(t))
	h.bind(id, OnMessage, p.ID, map[string]string{"mode": "help"}, ErrorForward)
	if res := h.send(addr, "help"); !res.HasReply {
		t.Fatalf("got %+v", res)
	}
	if got := testutil.ToFloat64(h.host.metrics.resident); got != 1 {
		t.Fatalf("resident instances %v after a call, want 1", got)
	}
	waitFor(t, 30*time.Second, "the instance to be evicted", func() bool {
		return testutil.ToFloat64(h.host.metrics.resident) == 0
	})
	misses := testutil.ToFloat64(h.host.metrics.cacheMisses)
	if res := h.send(addr, "help"); !res.HasReply {
		t.Fatalf("after eviction: got %+v", res)
	}
	if got := testutil.ToFloat64(h.host.metrics.cacheMisses); got != misses+1 {
		t.Fatalf("cache misses %v, want %v: an evicted module is compiled again", got, misses+1)
	}
	if !dirHasFiles(t, cache+"/compiled") || !dirHasFiles(t, cache+"/modules") {
		t.Fatal("the compilation cache and module cache are empty")
	}
}

func TestNewVersionIsPickedUpByEventAndRunningCallsFinish(t *testing.T) {
	h := newHarness(t, Config{Timeout: 5 * time.Second, RefetchAfter: time.Hour})
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	go persistence.WatchPlugins(ctx, h.url, h.host.cfg.Logger, func(id string) { h.host.BindingChanged(ctx, id) },
		func() { _ = h.host.Reload(ctx) })
	id, addr := h.bridge()
	v1 := plugintest.Build(t, plugintest.Bot, "-X main.version=v1")
	v2 := plugintest.Build(t, plugintest.Bot, "-X main.version=v2")
	p := h.upload("versioned", v1)
	if _, err := h.store.BindPlugin(h.ctx, h.account, id, "on_message", p.ID, map[string]string{"mode": "version"}, "forward"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the binding event", func() bool { return h.host.Bound(addr, OnMessage) })
	if res := h.send(addr, "x"); res.Reply != "v1: x" {
		t.Fatalf("v1: got %+v", res)
	}
	p2 := h.upload("versioned", v2)
	if p2.ID != p.ID || p2.Version != 2 || p2.SHA256 == p.SHA256 {
		t.Fatalf("second upload: %+v, first %+v", p2, p)
	}
	waitFor(t, 60*time.Second, "the new version", func() bool { return h.send(addr, "y").Reply == "v2: y" })
}

func dirHasFiles(t *testing.T, dir string) bool {
	t.Helper()
	found := false
	_ = walk(dir, func() { found = true })
	return found
}

func TestModuleFilesOfUnusedVersionsArePruned(t *testing.T) {
	h := newHarness(t, Config{})
	dir := h.host.comp.dir + "/modules"
	old, kept := dir+"/"+strings.Repeat("a", 64)+".wasm", dir+"/"+strings.Repeat("b", 64)+".wasm"
	fresh := dir + "/" + strings.Repeat("c", 64) + ".wasm"
	for _, f := range []string{old, kept, fresh} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * pruneAge)
	_ = os.Chtimes(old, past, past)
	_ = os.Chtimes(kept, past, past)
	h.host.comp.prune(map[string]bool{strings.Repeat("b", 64): true}, time.Now())
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatal("an old unused module file was kept")
	}
	for _, f := range []string{kept, fresh} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s was deleted: %v", f, err)
		}
	}
}
