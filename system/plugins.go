package system

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors"
	"github.com/xmtpbridge/bridge/actors/egress"
	"github.com/xmtpbridge/bridge/actors/plugin"
	bridgehttp "github.com/xmtpbridge/bridge/http"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/system/config"
)

var (
	_ actors.SendFilter          = (*plugin.Host)(nil)
	_ actors.Answerer            = (*plugin.Host)(nil)
	_ actors.Deliverer           = (*plugin.Deliverer)(nil)
	_ bridgehttp.PluginValidator = (*pluginParts)(nil)
)

// pluginParts is the node's plug-in host and what feeds it binding changes
// from Postgres LISTEN/NOTIFY: a channel on the actor runtime's one
// listening connection (actors.Listener).
type pluginParts struct {
	host   *plugin.Host
	ctx    context.Context
	cancel context.CancelFunc
}

// startPlugins builds the plug-in host and loads every binding; listener
// brings it the changes once the runtime listens.
func startPlugins(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, store *persistence.Store) (*pluginParts, error) {
	plog := log.With("component", "plugins")
	pc := cfg.Plugins
	hc := plugin.Config{
		Source: store, CacheDir: filepath.Join(pc.DataDir, "plugins"),
		KeepResident: pc.KeepResident, RefetchAfter: pc.RefetchAfter, MaxMemory: int64(pc.MaxMemory),
		Timeout: pc.Timeout, MaxOutput: pc.MaxOutput, AllowedHosts: pc.AllowedHosts,
		Registerer: reg, Logger: plog,
	}
	if !cfg.AllowPrivateTargets {
		hc.HostAllowed = publicHost
	}
	host, err := plugin.NewHost(hc)
	if err != nil {
		return nil, err
	}
	if err := host.Start(ctx); err != nil {
		return nil, fmt.Errorf("start plugin host: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	return &pluginParts{host: host, ctx: wctx, cancel: cancel}, nil
}

// listener is the binding changes' channel, for the runtime's listening
// connection. After each (re)connection every binding is reloaded, since
// changes sent meanwhile are lost.
func (p *pluginParts) listener(log *slog.Logger) actors.Listener {
	return actors.Listener{
		Channel: persistence.PluginChannel,
		Notify:  func(bridgeID string) { p.host.BindingChanged(p.ctx, bridgeID) },
		Reset: func() {
			if err := p.host.Reload(p.ctx); err != nil && p.ctx.Err() == nil {
				log.Warn("reload plugin bindings", "component", "plugins", "error", err)
			}
		},
	}
}

// close stops the host; the runtime has stopped listening before.
func (p *pluginParts) close() {
	if p == nil {
		return
	}
	p.cancel()
	p.host.Stop()
}

// Validate implements bridgehttp.PluginValidator with the host's checks.
func (p *pluginParts) Validate(ctx context.Context, wasm []byte) ([]string, error) {
	exports, err := p.host.Validate(ctx, wasm)
	switch {
	case errors.Is(err, plugin.ErrNotWasm):
		return nil, errors.Join(bridgehttp.ErrPluginNotWasm, err)
	case errors.Is(err, plugin.ErrNoExport):
		return nil, errors.Join(bridgehttp.ErrPluginNoExport, err)
	case errors.Is(err, plugin.ErrInvalidModule):
		return nil, errors.Join(bridgehttp.ErrPluginInvalid, err)
	}
	return exports, err
}

// publicHost is the egress policy of plug-in HTTP hosts: every address the
// host resolves to must be public.
func publicHost(ctx context.Context, host string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if !egress.PublicAddr(a.Unmap()) {
			return fmt.Errorf("host %s resolves to %s, which is not public", host, a)
		}
	}
	if len(addrs) == 0 {
		return fmt.Errorf("host %s has no address", host)
	}
	return nil
}
