package http

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmtpbridge/bridge/actors/plugin"
	"github.com/xmtpbridge/bridge/actors/plugin/plugintest"
	"github.com/xmtpbridge/bridge/persistence"
)

// realValidator is the plug-in host's validation with the errors mapped as
// system wiring maps them.
type realValidator struct{ h *plugin.Host }

func (v realValidator) Validate(ctx context.Context, wasm []byte) ([]string, error) {
	exports, err := v.h.Validate(ctx, wasm)
	switch {
	case errors.Is(err, plugin.ErrNotWasm):
		return nil, errors.Join(ErrPluginNotWasm, err)
	case errors.Is(err, plugin.ErrNoExport):
		return nil, errors.Join(ErrPluginNoExport, err)
	case errors.Is(err, plugin.ErrInvalidModule):
		return nil, errors.Join(ErrPluginInvalid, err)
	}
	return exports, err
}

func pluginHarness(t *testing.T, mutate func(*Options)) *harness {
	t.Helper()
	return newHarness(t, func(o *Options) {
		host, err := plugin.NewHost(plugin.Config{Source: o.Store, CacheDir: filepath.Join(t.TempDir(), "plugins")})
		if err != nil {
			t.Fatal(err)
		}
		o.Plugins = realValidator{host}
		if mutate != nil {
			mutate(o)
		}
	})
}

func TestPluginUploadBindUnbindDelete(t *testing.T) {
	h := pluginHarness(t, nil)
	key := h.signup("owner")
	other := h.signup("other")
	b, _ := h.createBridge(key)
	ob, _ := h.createBridge(other)
	v1 := plugintest.Build(t, plugintest.Bot, "-X main.version=v1")
	v2 := plugintest.Build(t, plugintest.Bot, "-X main.version=v2")

	status, hdr, m := h.doWithHeaders("POST", "/v1/plugins?name=bot", key, string(v1))
	p, _ := m["plugin"].(map[string]any)
	if status != 201 || str(p, "sha256") != persistence.PluginSHA256(v1) || hdr.Get("ETag") != `"`+persistence.PluginSHA256(v1)+`"` {
		t.Fatalf("upload: %d %v etag %q", status, m, hdr.Get("ETag"))
	}
	if ex, _ := p["exports"].([]any); len(ex) != 3 {
		t.Fatalf("exports %v", p["exports"])
	}
	id := str(p, "id")
	status, _, m = h.doWithHeaders("POST", "/v1/plugins?name=bot", key, string(v2))
	p2, _ := m["plugin"].(map[string]any)
	if status != 200 || str(p2, "id") != id || p2["version"] != float64(2) || str(p2, "sha256") != persistence.PluginSHA256(v2) {
		t.Fatalf("new version: %d %v", status, m)
	}
	m = h.expect("GET", "/v1/plugins", key, nil, 200, "")
	if ps, _ := m["plugins"].([]any); len(ps) != 1 {
		t.Fatalf("list: %v", m)
	}
	if ps, _ := h.expect("GET", "/v1/plugins", other, nil, 200, "")["plugins"].([]any); len(ps) != 0 {
		t.Fatalf("another account sees %v", ps)
	}

	bindPath := "/v1/bridges/" + str(b, "id") + "/plugins/on_message"
	m = h.expect("PUT", bindPath, key, map[string]any{"plugin": id, "config": map[string]string{"mode": "help"}, "onError": "drop"}, 200, "")
	if bd, _ := m["binding"].(map[string]any); str(bd, "onError") != "drop" || str(bd, "sha256") != persistence.PluginSHA256(v2) {
		t.Fatalf("bind: %v", m)
	}
	bs, err := h.store.PluginBindings(context.Background(), str(b, "id"))
	if err != nil || len(bs) != 1 || bs[0].Config["mode"] != "help" {
		t.Fatalf("stored bindings %+v, %v", bs, err)
	}
	// Not on another account's bridge, nor with another account's plug-in.
	h.expect("PUT", "/v1/bridges/"+str(ob, "id")+"/plugins/on_message", key, map[string]any{"plugin": id}, 404, CodeNotFound)
	h.expect("PUT", "/v1/bridges/"+str(ob, "id")+"/plugins/on_message", other, map[string]any{"plugin": id}, 404, CodeNotFound)
	h.expect("PUT", "/v1/bridges/"+str(b, "id")+"/plugins/on_nothing", key, map[string]any{"plugin": id}, 404, CodeNotFound)
	h.expect("PUT", bindPath, key, map[string]any{"plugin": id, "onError": "explode"}, 400, CodeInvalidField)
	h.expect("PUT", bindPath, key, map[string]any{"plugin": id, "config": map[string]string{"k": strings.Repeat("v", 5000)}}, 400, CodeInvalidField)

	h.expect("DELETE", "/v1/plugins/"+id, key, nil, 409, CodePluginBound)
	h.expect("DELETE", "/v1/plugins/"+id, other, nil, 404, CodeNotFound)
	h.expect("DELETE", bindPath, key, nil, 200, "")
	h.expect("DELETE", bindPath, key, nil, 404, CodeNotFound)
	h.expect("DELETE", "/v1/plugins/"+id, key, nil, 200, "")
	h.expect("DELETE", "/v1/plugins/"+id, key, nil, 404, CodeNotFound)
}

func TestBadPluginUploadsGetStableCodes(t *testing.T) {
	h := pluginHarness(t, func(o *Options) { o.MaxPluginBytes = 2 << 20; o.MaxPluginsPerAccount = 1 })
	key := h.signup("owner")
	h.expect("POST", "/v1/plugins?name=x", "", "\x00asm", 401, CodeUnauthorized)
	h.expect("POST", "/v1/plugins?name=x", key, "#!/bin/sh\nrm -rf /\n", 400, CodePluginNotWasm)
	h.expect("POST", "/v1/plugins?name=x", key, "\x00asm\x01\x00\x00\x00\xff\xff\xff", 422, CodePluginInvalid)
	h.expect("POST", "/v1/plugins?name=x", key, string(plugintest.Build(t, plugintest.NoExport, "")), 422, CodePluginMissingExport)
	// The bot module is over this server's 2 MiB limit: a real client
	// gets 413 body_too_large.
	// rawRequest reads the answer while it writes, since the node closes
	// the connection without reading the rest of a refused body.
	bot := plugintest.Build(t, plugintest.Bot, "")
	addr := strings.TrimPrefix(h.startReal(), "http://")
	if r := rawRequest(addr, "POST", "/v1/plugins?name=x", key, len(bot), len(bot)); r.err != nil || r.status != 413 || r.code != CodeBodyTooLarge {
		t.Fatalf("oversized upload: %v, want 413 body_too_large", r)
	}
	h.expect("POST", "/v1/plugins?name=../../etc", key, "\x00asm", 400, CodeInvalidField)
	h.expect("POST", "/v1/plugins", key, "\x00asm", 400, CodeInvalidField)
	// The larger plug-in limit is for uploads only: every other route
	// keeps the general body limit.
	h.expect("POST", "/v1/bridges", key, `{"name":"`+strings.Repeat("a", 200<<10)+`"}`, 413, CodeBodyTooLarge)
	if ps, err := h.store.ListPlugins(context.Background(), accountOf(t, h, key)); err != nil || len(ps) != 0 {
		t.Fatalf("refused uploads were stored: %v %v", ps, err)
	}
}

func TestPluginQuotaBoundsStorage(t *testing.T) {
	h := pluginHarness(t, func(o *Options) { o.MaxPluginsPerAccount = 1 })
	key := h.signup("owner")
	wasm := string(plugintest.Build(t, plugintest.Bot, ""))
	h.expect("POST", "/v1/plugins?name=a", key, wasm, 201, "")
	h.expect("POST", "/v1/plugins?name=b", key, wasm, 429, CodeQuotaExceeded)
	// A new version of the same plug-in replaces it in place.
	h.expect("POST", "/v1/plugins?name=a", key, wasm, 200, "")
}

func accountOf(t *testing.T, h *harness, key string) string {
	t.Helper()
	m := h.expect("GET", "/v1/account", key, nil, 200, "")
	a, _ := m["account"].(map[string]any)
	return str(a, "id")
}
