package plugin

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
)

// stderrLimit bounds what is kept of an instance's standard error, which
// is only read to tell a memory failure from another trap.
const stderrLimit = 4 << 10

// maxIdle bounds the idle instances a pool keeps.
const maxIdle = 8

// pool holds the compiled module and the instances of one version of a
// binding's plug-in. Instances are used by one call at a time. A pool is
// retired when its binding changes or its plug-in gets a new version:
// calls running on it finish, and it closes when the last one returns.
type pool struct {
	h        *Host
	pluginID string
	sha      string
	config   map[string]string

	load sync.Mutex // held while compiling, so one call compiles

	mu       sync.Mutex
	compiled *extism.CompiledPlugin
	idle     []*instance
	inUse    int
	lastUse  time.Time
	retired  bool
}

// instance is one Extism instance and its bounded standard error.
type instance struct {
	p      *extism.Plugin
	stderr *capped
}

// capped is a writer that keeps at most its limit.
type capped struct {
	buf   bytes.Buffer
	limit int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.limit - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// get returns an instance, compiling the module first when it is not
// resident; cold reports that it was not.
func (p *pool) get(ctx context.Context) (*instance, bool, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		in := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.inUse++
		p.mu.Unlock()
		return in, false, nil
	}
	compiled := p.compiled
	p.inUse++
	p.mu.Unlock()
	cold := false
	if compiled == nil {
		var err error
		compiled, cold, err = p.compile(ctx)
		if err != nil {
			p.put(nil, false)
			return nil, cold, err
		}
	}
	stderr := &capped{limit: stderrLimit}
	// Real clocks and randomness (wazero's defaults are fixed), no
	// directory, no socket, no environment; sleeping stays wazero's no-op,
	// so a sleep cannot outlast the call's context.
	mc := wazero.NewModuleConfig().WithStderr(stderr).WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader)
	inst, err := compiled.Instance(ctx, extism.PluginInstanceConfig{ModuleConfig: mc})
	if err != nil {
		p.put(nil, false)
		return nil, cold, fmt.Errorf("instantiate plugin %s: %w", p.pluginID, err)
	}
	inst.SetLogger(func(extism.LogLevel, string) {})
	p.h.metrics.resident.Inc()
	return &instance{p: inst, stderr: stderr}, cold, nil
}

// compile makes the pool's module resident.
func (p *pool) compile(ctx context.Context) (*extism.CompiledPlugin, bool, error) {
	p.load.Lock()
	defer p.load.Unlock()
	p.mu.Lock()
	c := p.compiled
	p.mu.Unlock()
	if c != nil {
		return c, false, nil
	}
	wasm, sha, err := p.h.comp.moduleBytes(ctx, p.h.cfg.Source, p.pluginID, p.sha)
	if err != nil {
		return nil, true, err
	}
	if sha != p.sha {
		// The plug-in changed since the binding was loaded: this pool
		// runs what it was made for only.
		p.h.revalidateSoon(p)
	}
	c, err = p.h.comp.compile(ctx, wasm, p.config, p.h.hosts(ctx))
	if err != nil {
		return nil, true, err
	}
	p.mu.Lock()
	p.compiled = c
	p.mu.Unlock()
	return c, true, nil
}

// put returns an instance after a call; a broken one (a trap, a timeout)
// is closed, never reused.
func (p *pool) put(in *instance, ok bool) {
	p.mu.Lock()
	p.inUse--
	p.lastUse = time.Now()
	var closeIt *instance
	if in != nil {
		if ok && !p.retired && len(p.idle) < maxIdle {
			in.stderr.buf.Reset()
			p.idle = append(p.idle, in)
		} else {
			closeIt = in
		}
	}
	var closeCompiled *extism.CompiledPlugin
	if p.retired && p.inUse == 0 {
		closeCompiled, p.compiled = p.compiled, nil
	}
	p.mu.Unlock()
	if closeIt != nil {
		p.h.closeInstance(closeIt)
	}
	if closeCompiled != nil {
		_ = closeCompiled.Close(context.Background())
	}
}

// evict closes what the pool holds when it is retired, or idle for longer
// than keep. It reports whether the pool is empty and retired.
func (p *pool) evict(now time.Time, keep time.Duration) bool {
	p.mu.Lock()
	if p.inUse > 0 || (!p.retired && now.Sub(p.lastUse) < keep) {
		p.mu.Unlock()
		return false
	}
	idle, compiled := p.idle, p.compiled
	p.idle, p.compiled = nil, nil
	done := p.retired
	p.mu.Unlock()
	for _, in := range idle {
		p.h.closeInstance(in)
	}
	if compiled != nil {
		_ = compiled.Close(context.Background())
	}
	return done
}

// retire stops the pool taking calls: its binding moved on.
func (p *pool) retire() {
	p.mu.Lock()
	p.retired = true
	p.mu.Unlock()
	p.evict(time.Now(), 0)
}
