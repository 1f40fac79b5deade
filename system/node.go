package system

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	bridgehttp "github.com/xmtpbridge/bridge/http"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/system/config"
	"github.com/xmtpbridge/bridge/xmtp/node"
)

// startTimeout bounds each start-up step that talks to another process, so
// that an unreachable dependency ends the start with its reason instead of
// hanging.
const startTimeout = 30 * time.Second

// readyTimeout bounds one readiness check of one dependency.
const readyTimeout = 2 * time.Second

// ErrNotStarted is returned by Node methods that need a started node.
var ErrNotStarted = errors.New("node not started")

// Options is what a Node is built from.
type Options struct {
	// Config is the loaded configuration; dev mode secrets must already be
	// filled by Config.PrepareDev.
	Config *config.Config
	// Logger receives every component's logs.
	Logger *slog.Logger
	// Version and Commit label the bridge_build_info metric.
	Version, Commit string
	// Started, when set, is called by Run once the node serves, for
	// example to print where it listens.
	Started func(*Node)
}

// Node is one running bridge process: every component it started, in
// start order.
type Node struct {
	cfg       *config.Config
	log       *slog.Logger
	registry  *prometheus.Registry
	onStarted func(*Node)

	// mu serialises Start and Stop. Readers of the components take only
	// refs, so a /readyz request in flight never waits for a Stop that
	// waits for it.
	mu       sync.Mutex
	started  bool
	stopped  bool
	failures chan error

	refs      sync.RWMutex
	store     *persistence.Store
	retention *retention
	xmtp      *xmtpEndpoint
	runtime   *runtimeParts
	api       *apiServer
	pprof     *pprofServer
}

// New checks opts and returns a node that has not started anything yet.
func New(opts Options) (*Node, error) {
	if opts.Config == nil {
		return nil, errors.New("new node: Config is nil")
	}
	if opts.Config.Mode != config.ModeNode && opts.Config.Mode != config.ModeDev {
		return nil, fmt.Errorf("new node: mode %q runs no bridge node", opts.Config.Mode)
	}
	if opts.Config.MasterKey.Key == nil {
		return nil, errors.New("new node: no master key (dev mode needs Config.PrepareDev first)")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	registry, err := newRegistry(opts.Config.NodeID, opts.Version, opts.Commit)
	if err != nil {
		return nil, err
	}
	return &Node{cfg: opts.Config, log: logger, registry: registry, onStarted: opts.Started, failures: make(chan error, 4)}, nil
}

// Registry returns the node's metrics registry, which /metrics serves.
func (n *Node) Registry() *prometheus.Registry { return n.registry }

// Start brings up every component in order. If one fails, the ones already
// started are stopped again and the error says which step failed and why.
func (n *Node) Start(ctx context.Context) (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return errors.New("start node: already started")
	}
	n.started = true
	defer func() {
		if err != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
			defer cancel()
			n.stopLocked(stopCtx)
		}
	}()

	ln, err := listenAPI(n.cfg)
	if err != nil {
		return err
	}
	served := false
	defer func() {
		if !served {
			ln.Close()
		}
	}()
	if n.cfg.PprofAddr != "" {
		pp, err := startPprof(n.cfg.PprofAddr, n.log)
		if err != nil {
			return err
		}
		n.setRefs(func() { n.pprof = pp })
	}
	store, err := openStore(ctx, n.cfg, n.log)
	if err != nil {
		return err
	}
	n.setRefs(func() { n.store = store })
	ret, err := newRetention(store, n.log.With("component", "retention"), n.registry, persistence.Retention{
		Payload: n.cfg.PayloadRetention, Quarantine: n.cfg.QuarantineRetention, Live: n.cfg.LiveRetention}, n.cfg.RetentionInterval)
	if err != nil {
		return err
	}
	ret.start()
	n.setRefs(func() { n.retention = ret })
	xmtp, err := startXMTP(ctx, n.cfg, n.log, n.registry)
	if err != nil {
		return err
	}
	n.setRefs(func() { n.xmtp = xmtp })
	rt, err := startRuntime(ctx, n.cfg, n.log, n.registry, store, xmtp.addr, canaryURLFor(n.cfg, ln.Addr()), n.failures)
	if err != nil {
		return err
	}
	n.setRefs(func() { n.runtime = rt })
	api, err := startAPI(n.cfg, n.log, n.registry, store, ln, rt, n.Ready, n.failures)
	if err != nil {
		return err
	}
	served = true
	n.setRefs(func() { n.api = api })
	n.log.Info("node started", "http_addr", api.addr(), "xmtp_node", xmtp.addr, "xmtp_local", xmtp.local != nil)
	return nil
}

func (n *Node) setRefs(set func()) {
	n.refs.Lock()
	defer n.refs.Unlock()
	set()
}

// HTTPAddr returns the address the HTTP API listens on.
func (n *Node) HTTPAddr() string {
	n.refs.RLock()
	defer n.refs.RUnlock()
	if n.api == nil {
		return ""
	}
	return n.api.addr()
}

// XMTPAddr returns the gRPC address of the XMTP node this node uses.
func (n *Node) XMTPAddr() string {
	n.refs.RLock()
	defer n.refs.RUnlock()
	if n.xmtp == nil {
		return ""
	}
	return n.xmtp.addr
}

// XMTPHTTPAddr returns the HTTP/JSON gateway address of the local XMTP
// node, which xmtp-js uses as its apiUrl, or "" when the node uses a remote
// XMTP node.
func (n *Node) XMTPHTTPAddr() string {
	n.refs.RLock()
	defer n.refs.RUnlock()
	if n.xmtp == nil || n.xmtp.local == nil {
		return ""
	}
	return n.xmtp.local.HTTPAddr()
}

// Identities returns the addresses of the system identities.
func (n *Node) Identities() bridgehttp.SystemIdentities {
	n.refs.RLock()
	defer n.refs.RUnlock()
	if n.runtime == nil {
		return bridgehttp.SystemIdentities{}
	}
	return n.runtime.identities
}

// The dependencies Ready names when they fail, besides Postgres.
const (
	dependencyXMTP             = "xmtp"
	dependencyXMTPSubscription = "xmtp_subscription"
	dependencyEtcd             = "etcd"
	dependencyNodeLease        = "node_lease"
)

// Ready reports whether every dependency answers: Postgres, the XMTP node
// (it answers a query, and the subscription's catch-up queries have not
// failed for catchUpUnready), the runtime's XMTP subscription, the
// renewals of the node lease (on a Postgres connection of their own) and,
// with the etcd provider, etcd. /readyz is red while it returns an error.
func (n *Node) Ready(ctx context.Context) error {
	n.refs.RLock()
	store, xmtp, rt := n.store, n.xmtp, n.runtime
	n.refs.RUnlock()
	if store == nil || xmtp == nil || rt == nil {
		return ErrNotStarted
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var errs []error
	if err := store.Ping(ctx); err != nil {
		errs = append(errs, bridgehttp.DependencyDown(bridgehttp.DependencyPostgres, fmt.Errorf("ping postgres: %w", err)))
	}
	if err := xmtp.ready(ctx); err != nil {
		errs = append(errs, bridgehttp.DependencyDown(dependencyXMTP, err))
	} else if err := rt.xmtpQueriesReady(ctx); err != nil {
		errs = append(errs, bridgehttp.DependencyDown(dependencyXMTP, err))
	}
	if err := rt.connected(); err != nil {
		errs = append(errs, bridgehttp.DependencyDown(dependencyXMTPSubscription, err))
	}
	if err := rt.nodeLeaseReady(); err != nil {
		errs = append(errs, bridgehttp.DependencyDown(dependencyNodeLease, err))
	}
	if err := rt.membershipReady(ctx); err != nil {
		errs = append(errs, bridgehttp.DependencyDown(dependencyEtcd, err))
	}
	return errors.Join(errs...)
}

// Wait blocks until ctx ends, which is a normal stop and returns nil, or
// until a component the node cannot run without fails, which returns that
// failure.
func (n *Node) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-n.failures:
		return err
	}
}

// Stop shuts the components down in reverse start order: the HTTP API
// first (in-flight requests finish), then the runtime, the local XMTP
// node and the store. It returns every error it met.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopLocked(ctx)
}

func (n *Node) stopLocked(ctx context.Context) error {
	if n.stopped {
		return nil
	}
	n.stopped = true
	n.refs.RLock()
	api, rt, xmtp, store, ret, pp := n.api, n.runtime, n.xmtp, n.store, n.retention, n.pprof
	n.refs.RUnlock()
	var errs []error
	if err := pp.stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop pprof server: %w", err))
	}
	if api != nil {
		if err := api.shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop http api: %w", err))
		}
	}
	// The runtime stops after the API so no new work arrives, and before
	// the XMTP node and the store it uses.
	if rt != nil {
		if err := rt.stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if xmtp != nil {
		if err := xmtp.stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if ret != nil {
		ret.shutdown(ctx)
	}
	if store != nil {
		store.Close()
	}
	return errors.Join(errs...)
}

// Run starts a node, waits for ctx to end (SIGINT or SIGTERM in the
// binary) or for a component to fail, and stops it within the configured
// shutdown timeout. It returns nil after a clean stop on ctx's end.
func Run(ctx context.Context, opts Options) error {
	n, err := New(opts)
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	if n.onStarted != nil {
		n.onStarted(n)
	}
	waitErr := n.Wait(ctx)
	if waitErr != nil {
		n.log.Error("component failed; stopping", "err", waitErr)
	} else {
		n.log.Info("stop requested; shutting down", "timeout", n.cfg.ShutdownTimeout)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer cancel()
	return errors.Join(waitErr, n.Stop(stopCtx))
}

// openStore migrates the bridge schema and opens the store. Both steps fail
// with the reason when Postgres is unreachable.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*persistence.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	where := config.RedactURL(cfg.DatabaseURL)
	if err := persistence.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return nil, fmt.Errorf("migrate bridge schema in %s: %w", where, err)
	}
	current := persistence.MasterKey{ID: cfg.MasterKey.ID, Key: cfg.MasterKey.Key}
	previous := make([]persistence.MasterKey, len(cfg.PreviousMasterKeys))
	for i, k := range cfg.PreviousMasterKeys {
		previous[i] = persistence.MasterKey{ID: k.ID, Key: k.Key}
	}
	sealer, err := persistence.NewSealer(current, previous...)
	if err != nil {
		return nil, fmt.Errorf("build sealer: %w", err)
	}
	store, err := persistence.Open(ctx, cfg.DatabaseURL, sealer, persistence.MaxConns(cfg.DBMaxConns))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	store.SetQuarantineRows(cfg.QuarantineMaxRows)
	store.SetTombstoneFor(cfg.TombstoneFor)
	if err := store.Ping(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("ping postgres %s: %w", where, err)
	}
	if err := store.CheckSealingKeys(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	if on, err := store.Autovacuum(ctx); err == nil && !on {
		log.Warn("postgres autovacuum is off: the deliveries and reply_outbox tables keep every dead row and are never analysed, so they grow and slow down; turn autovacuum on, or VACUUM ANALYZE them on a schedule",
			"database_url", where)
	}
	log.Info("postgres ready", "database_url", where)
	return store, nil
}

// dialCheck reports whether something accepts TCP connections at addr.
func dialCheck(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Migrate applies the bridge schema and the local XMTP node's schema to
// the database at databaseURL.
func Migrate(ctx context.Context, databaseURL string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	where := config.RedactURL(databaseURL)
	if err := persistence.Migrate(ctx, databaseURL); err != nil {
		return fmt.Errorf("migrate bridge schema in %s: %w", where, err)
	}
	if err := node.Migrate(ctx, databaseURL); err != nil {
		return fmt.Errorf("migrate xmtp node schema in %s: %w", where, err)
	}
	return nil
}
