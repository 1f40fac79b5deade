package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"

	"github.com/xmtpbridge/bridge/persistence"
)

// ErrNotWasm means an upload is not a WebAssembly module.
var ErrNotWasm = errors.New("not a WebAssembly module")

// ErrNoExport means a module exports no extension point.
var ErrNoExport = errors.New("module exports no extension point")

// ErrInvalidModule means a module could not be compiled.
var ErrInvalidModule = errors.New("invalid WebAssembly module")

var wasmMagic = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// compiler compiles modules through one wazero compilation cache on disk.
type compiler struct {
	cfg   *Config
	cache wazero.CompilationCache
	dir   string
}

func newCompiler(cfg *Config) (*compiler, error) {
	dir := cfg.CacheDir
	if dir == "" {
		return nil, errors.New("new plugin host: CacheDir is required")
	}
	if err := os.MkdirAll(filepath.Join(dir, "modules"), 0o700); err != nil {
		return nil, fmt.Errorf("new plugin host: create cache dir: %w", err)
	}
	cache, err := wazero.NewCompilationCacheWithDir(filepath.Join(dir, "compiled"))
	if err != nil {
		return nil, fmt.Errorf("new plugin host: open compilation cache: %w", err)
	}
	return &compiler{cfg: cfg, cache: cache, dir: dir}, nil
}

func (c *compiler) pages() uint32 {
	p := c.cfg.MaxMemory / 65536
	if p < 1 {
		p = 1
	}
	return uint32(p)
}

// compile compiles wasm into a plug-in whose instances get config.
func (c *compiler) compile(ctx context.Context, wasm []byte, config map[string]string, hosts []string) (*extism.CompiledPlugin, error) {
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(c.cache).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(c.pages())
	manifest := extism.Manifest{
		Wasm:         []extism.Wasm{extism.WasmData{Data: wasm, Name: "main"}},
		Memory:       &extism.ManifestMemory{MaxPages: c.pages(), MaxHttpResponseBytes: 1 << 20, MaxVarBytes: 64 << 10},
		Config:       config,
		AllowedHosts: hosts,
	}
	// WASI is on because Go, Rust and C guests need its clock, random and
	// stdio calls; no directory and no socket is ever pre-opened.
	p, err := extism.NewCompiledPlugin(ctx, manifest, extism.PluginConfig{RuntimeConfig: rc, EnableWasi: true}, nil)
	if err != nil {
		return nil, fmt.Errorf("compile plugin: %w: %w", ErrInvalidModule, err)
	}
	return p, nil
}

// Validate checks an upload: WebAssembly, compilable within the sandbox's
// limits, exporting at least one extension point. It returns the points it
// exports. Compiling also fills the on-disk compilation cache.
func (h *Host) Validate(ctx context.Context, wasm []byte) ([]string, error) {
	if !bytes.HasPrefix(wasm, wasmMagic) {
		return nil, fmt.Errorf("validate plugin: %w", ErrNotWasm)
	}
	p, err := h.comp.compile(ctx, wasm, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("validate plugin: %w", err)
	}
	defer p.Close(ctx)
	inst, err := p.Instance(ctx, extism.PluginInstanceConfig{ModuleConfig: wazero.NewModuleConfig()})
	if err != nil {
		return nil, fmt.Errorf("validate plugin: %w: %w", ErrInvalidModule, err)
	}
	defer inst.Close(ctx)
	var exports []string
	for _, pt := range Points {
		if inst.FunctionExists(string(pt)) {
			exports = append(exports, string(pt))
		}
	}
	if len(exports) == 0 {
		return nil, fmt.Errorf("validate plugin: %w (want one of on_message, on_response, on_send)", ErrNoExport)
	}
	return exports, nil
}

// moduleBytes returns a plug-in version's bytes from the disk cache, or
// fetches them from the source and caches them.
func (c *compiler) moduleBytes(ctx context.Context, src Source, pluginID, sha string) ([]byte, string, error) {
	if sha != "" {
		if b, err := os.ReadFile(filepath.Join(c.dir, "modules", sha+".wasm")); err == nil && persistence.PluginSHA256(b) == sha {
			return b, sha, nil
		}
	}
	code, err := src.PluginCode(ctx, pluginID)
	if err != nil {
		return nil, "", fmt.Errorf("fetch plugin %s: %w", pluginID, err)
	}
	if persistence.PluginSHA256(code.Wasm) != code.SHA256 {
		return nil, "", fmt.Errorf("fetch plugin %s: bytes do not match their sha256", pluginID)
	}
	// Nodes may share the directory: write a file of our own, then
	// rename it into place.
	path := filepath.Join(c.dir, "modules", code.SHA256+".wasm")
	if f, err := os.CreateTemp(filepath.Join(c.dir, "modules"), "fetch-*"); err == nil {
		_, werr := f.Write(code.Wasm)
		if cerr := f.Close(); werr == nil && cerr == nil {
			_ = os.Rename(f.Name(), path)
		} else {
			_ = os.Remove(f.Name())
		}
	}
	return code.Wasm, code.SHA256, nil
}

// pruneAge is how long a module file no binding runs is kept.
const pruneAge = time.Hour

// prune deletes module files of versions no pool holds that were not
// written within pruneAge, so the disk cache does not grow with every
// upload.
func (c *compiler) prune(inUse map[string]bool, now time.Time) {
	dir := filepath.Join(c.dir, "modules")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		sha, ok := strings.CutSuffix(name, ".wasm")
		if !ok {
			sha = "" // a fetch that never finished
		}
		if inUse[sha] {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > pruneAge {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
}
