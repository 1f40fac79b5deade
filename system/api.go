package system

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors"
	bridgehttp "github.com/xmtpbridge/bridge/http"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/system/config"
)

// apiServer is the HTTP API serving on its own listener.
type apiServer struct {
	server   *bridgehttp.Server
	ln       net.Listener
	stopping atomic.Bool
	done     chan struct{}
	// live is the node's live hub, stopped after the API.
	live *actors.LiveHub
}

// listenAPI opens the API's listener on BRIDGE_HTTP_ADDR before anything
// else starts, so a busy port fails the start at once with its reason, and
// the runtime knows the node's own /canary address.
func listenAPI(cfg *config.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (BRIDGE_HTTP_ADDR): %w", cfg.HTTPAddr, err)
	}
	return ln, nil
}

// startAPI builds the HTTP API from the configuration and serves it on ln.
// rt, when not nil, sends messages, reports live instances and hears about
// bridge changes. If the serve loop ends on its own later, the reason goes
// to failures, which stops the node.
func startAPI(cfg *config.Config, log *slog.Logger, reg *prometheus.Registry, store *persistence.Store,
	ln net.Listener, rt *runtimeParts, ready func(context.Context) error, failures chan<- error) (*apiServer, error) {
	opts := bridgehttp.Options{
		Store:                  store,
		Logger:                 log.With("component", "http"),
		Registry:               reg,
		Ready:                  ready,
		Dependencies:           readyDependencies(cfg),
		SignupKey:              cfg.SignupKey,
		SignupOpen:             cfg.SignupOpen,
		SignupRatePerMinute:    cfg.SignupRatePerMinute,
		RelayccSharedKey:       cfg.RelayccSharedKey,
		TokenFailuresPerMinute: cfg.TokenFailuresPerMinute,
		MaxBridgesPerAccount:   cfg.MaxBridgesPerAccount,
		SendRatePerSecond:      cfg.SendRatePerSecond,
		SendBurst:              cfg.SendBurst,
		AdminToken:             cfg.AdminToken,
		AllowPrivateTargets:    cfg.AllowPrivateTargets,
		MaxBodyBytes:           cfg.MaxBodyBytes,
		NodeID:                 cfg.NodeID,
		ProxyHeader:            cfg.ProxyHeader,
		TrustedProxies:         cfg.TrustedProxies,
	}
	var live *actors.LiveHub
	if rt != nil {
		opts.Sender, opts.Instances, opts.Events, opts.Identities, opts.Cluster = rt, rt, rt, rt.identities, rt
		if rt.plugins != nil {
			opts.Plugins = rt.plugins
		}
		var err error
		if live, err = startLive(cfg, log, reg, store, rt.rt.Nudge); err != nil {
			return nil, err
		}
		opts.Live = liveHub{live}
	}
	opts.MaxPluginBytes, opts.MaxPluginsPerAccount = cfg.Plugins.MaxUpload, cfg.Plugins.MaxPerAccount
	server, err := bridgehttp.New(opts)
	if err != nil {
		if live != nil {
			live.Stop()
		}
		return nil, fmt.Errorf("build http api: %w", err)
	}
	a := &apiServer{server: server, ln: ln, done: make(chan struct{}), live: live}
	go func() {
		defer close(a.done)
		err := server.Serve(ln)
		if a.stopping.Load() {
			return
		}
		if err == nil {
			err = errors.New("the listener closed")
		}
		failures <- fmt.Errorf("serve http api on %s: %w", ln.Addr(), err)
	}()
	return a, nil
}

func (a *apiServer) addr() string { return a.ln.Addr().String() }

// shutdown stops accepting connections, lets requests in flight finish
// until ctx ends, and waits for the serve loop to return.
func (a *apiServer) shutdown(ctx context.Context) error {
	a.stopping.Store(true)
	err := a.server.Shutdown(ctx)
	// A stop that comes just after the start can reach Shutdown before
	// the serve loop has handed the listener to the server, which then
	// serves it for ever: closing it ends such a loop too. After
	// Shutdown it is already closed, and this does nothing.
	_ = a.ln.Close()
	if a.live != nil {
		a.live.Stop()
	}
	if errors.Is(err, net.ErrClosed) {
		// The listener had already failed; Wait reported why.
		err = nil
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		return errors.Join(err, fmt.Errorf("wait for http api: %w", ctx.Err()))
	}
	return err
}

// readyDependencies names the dependencies Node.Ready checks besides
// Postgres.
func readyDependencies(cfg *config.Config) []string {
	deps := []string{dependencyXMTP, dependencyXMTPSubscription, dependencyNodeLease}
	if cfg.Cluster.Provider == config.ProviderEtcd {
		deps = append(deps, dependencyEtcd)
	}
	return deps
}
