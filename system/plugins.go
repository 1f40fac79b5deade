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

// pluginParts is the node's plug-in host and the watcher that feeds it
// binding changes from Postgres LISTEN/NOTIFY, on one connection.
type pluginParts struct {
	host *plugin.Host
	stop context.CancelFunc
	done chan struct{}
}

// startPlugins builds the plug-in host, loads every binding and starts
// listening for binding changes.
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
	p := &pluginParts{host: host, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		persistence.WatchPlugins(wctx, cfg.DatabaseURL, plog,
			func(bridgeID string) { host.BindingChanged(wctx, bridgeID) },
			func() {
				if err := host.Reload(wctx); err != nil && wctx.Err() == nil {
					plog.Warn("reload plugin bindings", "error", err)
				}
			})
	}()
	return p, nil
}

// close stops the watcher and the host.
func (p *pluginParts) close() {
	if p == nil {
		return
	}
	p.stop()
	<-p.done
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
