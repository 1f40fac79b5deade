package plugin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

// Host runs plug-ins for the bridges of one node. It is safe for
// concurrent use.
type Host struct {
	cfg     Config
	comp    *compiler
	metrics *metrics

	mu       sync.RWMutex
	byAddr   map[string]map[Point]*binding // lower-case bridge address
	byBridge map[string]string             // bridge id to address
	pools    map[*pool]bool                // every pool not yet closed

	stop chan struct{}
	done chan struct{}
}

// binding is one bound extension point, with the pool of its current
// plug-in version.
type binding struct {
	b         persistence.PluginBinding
	point     Point
	cur       atomic.Pointer[pool]
	checkedAt atomic.Int64 // unix nanoseconds of the last ETag check
	checking  atomic.Bool
}

// NewHost returns a Host; Start loads the bindings.
func NewHost(cfg Config) (*Host, error) {
	cfg.defaults()
	if cfg.Source == nil {
		return nil, errors.New("new plugin host: Source is required")
	}
	comp, err := newCompiler(&cfg)
	if err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, metrics: newMetrics(cfg.Registerer), byAddr: map[string]map[Point]*binding{},
		byBridge: map[string]string{}, pools: map[*pool]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	h.comp = comp
	comp.cfg = &h.cfg
	return h, nil
}

// Start loads every binding and starts the janitor that evicts what is no
// longer resident.
func (h *Host) Start(ctx context.Context) error {
	if err := h.Reload(ctx); err != nil {
		return err
	}
	go h.janitor()
	return nil
}

// Stop stops the janitor and closes every pool.
func (h *Host) Stop() {
	select {
	case <-h.stop:
		return
	default:
	}
	close(h.stop)
	<-h.done
	h.mu.Lock()
	pools := h.pools
	h.pools = map[*pool]bool{}
	h.mu.Unlock()
	for p := range pools {
		p.retire()
	}
}

// Reload replaces every binding with what the source holds; it is called
// at start and whenever change events may have been missed.
func (h *Host) Reload(ctx context.Context) error {
	all, err := h.cfg.Source.PluginBindings(ctx, "")
	if err != nil {
		return fmt.Errorf("reload plugin bindings: %w", err)
	}
	per := map[string][]persistence.PluginBinding{}
	h.mu.RLock()
	for id := range h.byBridge {
		per[id] = nil
	}
	h.mu.RUnlock()
	for _, b := range all {
		per[b.BridgeID] = append(per[b.BridgeID], b)
	}
	for id, bs := range per {
		h.apply(id, bs)
	}
	return nil
}

// BindingChanged reloads the bindings of one bridge, after an event said
// they changed.
func (h *Host) BindingChanged(ctx context.Context, bridgeID string) {
	bs, err := h.cfg.Source.PluginBindings(ctx, bridgeID)
	if err != nil {
		h.cfg.Logger.Warn("reload plugin bindings", "bridge", bridgeID, "error", err)
		return
	}
	h.apply(bridgeID, bs)
}

// apply installs the bindings of one bridge. A binding whose plug-in,
// version, config and onError are unchanged keeps its pool.
func (h *Host) apply(bridgeID string, bs []persistence.PluginBinding) {
	var retire []*pool
	h.mu.Lock()
	oldAddr := h.byBridge[bridgeID]
	old := h.byAddr[oldAddr]
	next := map[Point]*binding{}
	addr := oldAddr
	for _, b := range bs {
		pt, ok := ParsePoint(b.Point)
		if !ok {
			continue
		}
		addr = b.BridgeAddress
		if cur := old[pt]; cur != nil && sameBinding(cur.b, b) {
			next[pt] = cur
			continue
		}
		nb := &binding{b: b, point: pt}
		nb.checkedAt.Store(time.Now().UnixNano())
		p := h.newPoolLocked(b.PluginID, b.SHA256, b.Config)
		nb.cur.Store(p)
		next[pt] = nb
	}
	for pt, cur := range old {
		if next[pt] != cur {
			retire = append(retire, cur.cur.Load())
		}
	}
	delete(h.byAddr, oldAddr)
	delete(h.byBridge, bridgeID)
	if len(next) > 0 {
		h.byAddr[addr] = next
		h.byBridge[bridgeID] = addr
	}
	n := 0
	for _, m := range h.byAddr {
		n += len(m)
	}
	h.mu.Unlock()
	h.metrics.bindings.Set(float64(n))
	for _, p := range retire {
		p.retire()
	}
}

func sameBinding(a, b persistence.PluginBinding) bool {
	return a.PluginID == b.PluginID && a.SHA256 == b.SHA256 && a.OnError == b.OnError &&
		a.BridgeAddress == b.BridgeAddress && maps.Equal(a.Config, b.Config)
}

func (h *Host) newPoolLocked(pluginID, sha string, config map[string]string) *pool {
	p := &pool{h: h, pluginID: pluginID, sha: sha, config: config, lastUse: time.Now()}
	h.pools[p] = true
	return p
}

// lookup returns the binding of a point of the bridge at address, or nil.
func (h *Host) lookup(address string, pt Point) *binding {
	h.mu.RLock()
	defer h.mu.RUnlock()
	m := h.byAddr[address]
	if m == nil {
		m = h.byAddr[strings.ToLower(address)]
	}
	return m[pt]
}

// Bound reports whether the bridge at address has a plug-in on pt.
func (h *Host) Bound(address string, pt Point) bool { return h.lookup(address, pt) != nil }

// maybeRevalidate checks the binding's ETag in the background when the
// last check is older than RefetchAfter.
func (h *Host) maybeRevalidate(bd *binding) {
	if time.Since(time.Unix(0, bd.checkedAt.Load())) < h.cfg.RefetchAfter || !bd.checking.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer bd.checking.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.revalidate(ctx, bd)
	}()
}

// revalidate compares the binding's version with the source's ETag and
// moves it to a new pool when they differ.
func (h *Host) revalidate(ctx context.Context, bd *binding) {
	etag, err := h.cfg.Source.PluginETag(ctx, bd.b.PluginID)
	if err != nil {
		h.cfg.Logger.Warn("revalidate plugin", "bridge", bd.b.BridgeID, "plugin", bd.b.PluginID, "error", err)
		return
	}
	bd.checkedAt.Store(time.Now().UnixNano())
	cur := bd.cur.Load()
	if etag == cur.sha {
		return
	}
	h.mu.Lock()
	p := h.newPoolLocked(bd.b.PluginID, etag, bd.b.Config)
	h.mu.Unlock()
	if bd.cur.CompareAndSwap(cur, p) {
		h.cfg.Logger.Info("plugin version replaced", "bridge", bd.b.BridgeID, "plugin", bd.b.PluginID, "etag", etag)
		cur.retire()
	} else {
		p.retire()
	}
}

// revalidateSoon re-checks the bindings running pool p, whose plug-in was
// found to have changed.
func (h *Host) revalidateSoon(p *pool) {
	h.mu.RLock()
	var bds []*binding
	for _, m := range h.byAddr {
		for _, bd := range m {
			if bd.cur.Load() == p {
				bds = append(bds, bd)
			}
		}
	}
	h.mu.RUnlock()
	for _, bd := range bds {
		bd.checkedAt.Store(0)
		h.maybeRevalidate(bd)
	}
}

// janitor evicts pools idle for longer than KeepResident and forgets
// retired ones.
func (h *Host) janitor() {
	defer close(h.done)
	tick := time.NewTicker(max(h.cfg.KeepResident/4, 50*time.Millisecond))
	defer tick.Stop()
	lastPrune := time.Now()
	for {
		select {
		case <-h.stop:
			return
		case now := <-tick.C:
			h.mu.RLock()
			pools := make([]*pool, 0, len(h.pools))
			shas := map[string]bool{}
			for p := range h.pools {
				pools = append(pools, p)
				shas[p.sha] = true
			}
			h.mu.RUnlock()
			if now.Sub(lastPrune) > 10*time.Minute {
				lastPrune = now
				h.comp.prune(shas, now)
			}
			for _, p := range pools {
				if p.evict(now, h.cfg.KeepResident) {
					h.mu.Lock()
					delete(h.pools, p)
					h.mu.Unlock()
				}
			}
		}
	}
}

func (h *Host) closeInstance(in *instance) {
	_ = in.p.Close(context.Background())
	h.metrics.resident.Dec()
}

// hosts is the allowed hosts of Extism's HTTP function, after the egress
// policy.
func (h *Host) hosts(ctx context.Context) []string {
	if len(h.cfg.AllowedHosts) == 0 {
		return nil
	}
	var out []string
	for _, host := range h.cfg.AllowedHosts {
		if h.cfg.HostAllowed != nil && !strings.ContainsAny(host, "*?[") {
			if err := h.cfg.HostAllowed(ctx, host); err != nil {
				h.cfg.Logger.Warn("plugin allowed host refused by egress policy", "host", host, "error", err)
				continue
			}
		}
		out = append(out, host)
	}
	return out
}

// Answers reports whether the bridge at address has an on_message
// plug-in, which may answer its messages without an endpoint.
func (h *Host) Answers(address string) bool { return h.Bound(address, OnMessage) }
