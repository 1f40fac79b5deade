package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/labstack/echo"
	"go.opentelemetry.io/otel"

	"github.com/xmtpbridge/bridge/actors/supervision"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// Runtime is the actor runtime of one node. Start it once and Stop it once.
type Runtime struct {
	cfg         Config
	log         *slog.Logger
	metrics     *metrics
	supervision *supervision.Metrics

	system  *actor.ActorSystem
	root    *actor.RootContext
	cluster *cluster.Cluster
	ingress *ingress

	stopReconcile chan struct{}
	reconcileDone chan struct{}
	stopRenew     chan struct{}
	renewDone     chan struct{}

	mu       sync.Mutex
	active   map[string]*activation
	bridges  map[string]cachedBridge
	stopping bool
}

type cachedBridge struct {
	b  persistence.Bridge
	at time.Time
}

// New checks cfg and registers the runtime's metrics.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	rt := &Runtime{cfg: cfg, log: cfg.Logger, active: map[string]*activation{}, bridges: map[string]cachedBridge{}}
	var err error
	if rt.metrics, err = newMetrics(cfg.Registerer, rt.backlog); err != nil {
		return nil, err
	}
	if rt.supervision, err = supervision.NewMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	return rt, nil
}

func (rt *Runtime) backlog() float64 {
	if rt.ingress == nil {
		return 0
	}
	return rt.ingress.backlog()
}

// Start opens the node subscription, joins the cluster as a member with the
// kind "bridge", activates every bridge of the store that is not disabled,
// and keeps doing so every ReconcileInterval. The placement reconciler of a
// multi-node cluster replaces that last step.
func (rt *Runtime) Start(ctx context.Context) (err error) {
	cfg := rt.cfg
	mp, err := newMeterProvider(cfg.Registerer)
	if err != nil {
		return err
	}
	// protoactor creates its instruments from the global meter provider,
	// so this is the one global the runtime sets; the last runtime started
	// in a process owns protoactor's metrics.
	otel.SetMeterProvider(mp)
	rt.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return cfg.ProtoactorLogger
	}), actor.WithMetricProviders(mp))
	rt.root = rt.system.Root
	rt.ingress = newIngress(cfg.XMTP.Subscribe(context.Background()), rt.root, rt.log, rt.metrics)

	// The provider's health listener is bound here and handed to its
	// server, so the port it advertises is the port it holds: asking for a
	// free port and letting the provider bind it later races with every
	// other process on the machine, and a lost race only shows as a member
	// that never joins.
	health, err := net.Listen("tcp", net.JoinHostPort(cfg.RemoteHost, strconv.Itoa(cfg.ProviderPort)))
	if err != nil {
		return fmt.Errorf("start actor runtime: listen for cluster health checks: %w", err)
	}
	port := health.Addr().(*net.TCPAddr).Port
	peers := cfg.Peers
	if len(peers) == 0 {
		peers = []string{net.JoinHostPort(cfg.RemoteHost, strconv.Itoa(port))}
	}
	provider := automanaged.NewWithTesting(2*time.Second, port, rt.healthServer(health, port), peers...)
	kind := cluster.NewKind(Kind, actor.PropsFromProducer(func() actor.Actor { return &identity{rt: rt} }))
	ccfg := cluster.Configure(cfg.ClusterName, provider, disthash.New(),
		remote.Configure(cfg.RemoteHost, cfg.RemotePort),
		cluster.WithKinds(kind), cluster.WithRequestTimeout(cfg.ActivationTimeout))
	rt.cluster = cluster.New(rt.system, ccfg)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("start cluster member: %v", p)
		}
	}()
	joined := make(chan struct{})
	var joinOnce sync.Once
	sub := rt.system.EventStream.Subscribe(func(evt any) {
		if topo, ok := evt.(*cluster.ClusterTopology); ok && len(topo.Members) > 0 {
			joinOnce.Do(func() { close(joined) })
		}
	})
	defer rt.system.EventStream.Unsubscribe(sub)
	rt.cluster.StartMember()
	if err := rt.waitForMember(ctx, joined); err != nil {
		return err
	}
	rt.stopRenew = make(chan struct{})
	rt.renewDone = make(chan struct{})
	go rt.renewLoop(rt.stopRenew, rt.renewDone)
	if err := rt.reconcile(ctx); err != nil {
		return err
	}
	rt.stopReconcile = make(chan struct{})
	rt.reconcileDone = make(chan struct{})
	go rt.reconcileLoop()
	return nil
}

// Activate makes sure the bridge's identity is active in the cluster and
// returns the activation's error, if it failed.
func (rt *Runtime) Activate(ctx context.Context, bridgeID string) error {
	if rt.isStopping() {
		return fmt.Errorf("activate %s: %w", bridgeID, ErrStopped)
	}
	res, err := rt.request(ctx, bridgeID, &activateRequest{})
	if err != nil {
		return fmt.Errorf("activate %s: %w", bridgeID, err)
	}
	r, ok := res.(*activateResponse)
	if !ok {
		return fmt.Errorf("activate %s: unexpected answer %T", bridgeID, res)
	}
	return r.err
}

// request asks the grain of bridgeID, within ctx's deadline (or
// ActivationTimeout). An activation request is idempotent, so it is sent
// again every few seconds: a grain that stopped with the request in its
// mailbox never answers, and the next try reaches a fresh activation. Any
// other request is sent once, with protoactor's own retries on dead
// letters.
func (rt *Runtime) request(ctx context.Context, bridgeID string, msg any) (any, error) {
	deadline := time.Now().Add(rt.cfg.ActivationTimeout)
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl
	}
	if _, idempotent := msg.(*activateRequest); !idempotent {
		return rt.cluster.Request(bridgeID, Kind, msg, cluster.WithTimeout(time.Until(deadline)))
	}
	for {
		try := min(time.Until(deadline), activationTry)
		if try <= 0 {
			return nil, fmt.Errorf("request %s: %w", bridgeID, context.DeadlineExceeded)
		}
		res, err := rt.cluster.Request(bridgeID, Kind, msg, cluster.WithTimeout(try))
		if err == nil && res != nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("request %s: %w", bridgeID, ctx.Err())
		}
		if time.Until(deadline) <= 0 {
			return nil, fmt.Errorf("request %s: %w", bridgeID, err)
		}
	}
}

// activationTry bounds one try of an activation request.
const activationTry = 5 * time.Second

// Deactivate stops the bridge's identity on this node, if it is active
// here, and waits until it released its lease.
func (rt *Runtime) Deactivate(ctx context.Context, bridgeID string) error {
	rt.mu.Lock()
	a := rt.active[bridgeID]
	rt.mu.Unlock()
	if a == nil {
		return nil
	}
	return rt.stopGrain(ctx, a)
}

func (rt *Runtime) stopGrain(ctx context.Context, a *activation) error {
	timeout := rt.cfg.DrainTimeout + 10*time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if _, err := rt.root.PoisonFuture(a.self).Result(); err != nil && !errors.Is(err, actor.ErrDeadLetter) && !errors.Is(err, actor.ErrTimeout) {
		return fmt.Errorf("deactivate %s: %w", a.bridgeID, err)
	}
	// The future ends when the identity terminated; its cleanup ran in
	// Stopping, before that.
	deadline := time.Now().Add(timeout)
	for rt.hosts(a) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Send sends content to an address as the bridge identity, through its
// grain (activating it if needed), and returns the message id.
func (rt *Runtime) Send(ctx context.Context, bridgeID, to string, body *content.Content) (string, error) {
	if rt.isStopping() {
		return "", fmt.Errorf("send as %s: %w", bridgeID, ErrStopped)
	}
	res, err := rt.request(ctx, bridgeID, &sendRequest{to: to, body: body})
	if err != nil {
		return "", fmt.Errorf("send as %s: %w", bridgeID, err)
	}
	r, ok := res.(*sendResponse)
	if !ok {
		return "", fmt.Errorf("send as %s: unexpected answer %T", bridgeID, res)
	}
	return r.messageID, r.err
}

// Status returns the status of a bridge identity this node hosts, and
// false when it does not host it.
func (rt *Runtime) Status(bridgeID string) (Status, bool) {
	rt.mu.Lock()
	a := rt.active[bridgeID]
	rt.mu.Unlock()
	if a == nil {
		return Status{}, false
	}
	return a.status(), true
}

// Nudge makes the forward handler of a hosted bridge look for due
// deliveries and replies now rather than at its next sweep, for example
// after a dead letter was replayed. It does nothing for a bridge this node
// does not host.
func (rt *Runtime) Nudge(bridgeID string) {
	rt.mu.Lock()
	a := rt.active[bridgeID]
	rt.mu.Unlock()
	if a != nil && a.forward != nil {
		rt.root.Send(a.forward, &sweepTick{})
	}
}

// Hosted returns the ids of the bridges this node hosts.
func (rt *Runtime) Hosted() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]string, 0, len(rt.active))
	for id := range rt.active {
		out = append(out, id)
	}
	return out
}

// Connected reports whether the node subscription is established, for
// readiness.
func (rt *Runtime) Connected() bool {
	return rt.ingress != nil && rt.ingress.sub.Connected()
}

// Stop stops intake (the node subscription), stops every identity (each
// waits for its running webhook attempts, bounded by DrainTimeout, and
// releases its lease; pending deliveries and replies stay in the store for
// the next activation) and leaves the cluster.
func (rt *Runtime) Stop(ctx context.Context) error {
	rt.mu.Lock()
	if rt.stopping {
		rt.mu.Unlock()
		return nil
	}
	rt.stopping = true
	acts := make([]*activation, 0, len(rt.active))
	for _, a := range rt.active {
		acts = append(acts, a)
	}
	rt.mu.Unlock()
	if rt.stopReconcile != nil {
		close(rt.stopReconcile)
		<-rt.reconcileDone
	}
	if rt.ingress != nil {
		rt.ingress.close(ctx)
	}
	var wg sync.WaitGroup
	for _, a := range acts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rt.stopGrain(ctx, a); err != nil {
				rt.log.Warn("stop identity", "bridge", a.bridgeID, "error", err)
			}
		}()
	}
	wg.Wait()
	// Leases are renewed until every identity has stopped and released
	// its own, however long their drain takes.
	if rt.stopRenew != nil {
		close(rt.stopRenew)
		<-rt.renewDone
	}
	if rt.cluster != nil {
		return rt.leaveCluster()
	}
	return nil
}

// leaveCluster shuts the cluster member down. protoactor panics on some
// half-started states; that becomes an error.
func (rt *Runtime) leaveCluster() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("leave cluster: %v", p)
		}
	}()
	rt.cluster.Shutdown(true)
	return nil
}

func (rt *Runtime) isStopping() bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.stopping || rt.cluster == nil
}

func (rt *Runtime) hosts(a *activation) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.active[a.bridgeID] == a
}

func (rt *Runtime) register(a *activation) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, ok := rt.active[a.bridgeID]; !ok {
		rt.metrics.hosted.Inc()
	}
	rt.active[a.bridgeID] = a
}

// unregister forgets a, unless a newer activation replaced it. The hosted
// gauge moves under the same lock, so it agrees with Status and Hosted.
func (rt *Runtime) unregister(a *activation) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.active[a.bridgeID] != a {
		return
	}
	delete(rt.active, a.bridgeID)
	rt.metrics.hosted.Dec()
}

// bridgeConfig returns the bridge, read from the store at most once a
// second, so configuration changes over REST apply within a second.
func (rt *Runtime) bridgeConfig(ctx context.Context, bridgeID string) (persistence.Bridge, bool) {
	rt.mu.Lock()
	c, ok := rt.bridges[bridgeID]
	rt.mu.Unlock()
	if ok && time.Since(c.at) < time.Second {
		return c.b, true
	}
	b, err := rt.cfg.Store.BridgeByID(ctx, bridgeID)
	if err != nil {
		if ok {
			return c.b, true
		}
		rt.log.Warn("load bridge", "bridge", bridgeID, "error", err)
		return persistence.Bridge{}, false
	}
	rt.mu.Lock()
	rt.bridges[bridgeID] = cachedBridge{b: b, at: time.Now()}
	rt.mu.Unlock()
	return b, true
}

func (rt *Runtime) forgetBridge(bridgeID string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	delete(rt.bridges, bridgeID)
}

// healthServer is the automanaged provider's health endpoint, the one it
// would build itself, without the banner it prints on standard output.
func (rt *Runtime) healthServer(ln net.Listener, providerPort int) *echo.Echo {
	e := echo.New()
	e.Listener = ln
	e.HideBanner = true
	e.HidePort = true
	e.GET("/_health", func(c echo.Context) error {
		host, port, err := rt.system.GetHostPort()
		if err != nil {
			return c.NoContent(http.StatusServiceUnavailable)
		}
		return c.JSON(http.StatusOK, automanaged.NewNode(rt.cfg.ClusterName, rt.system.ID, host, port, providerPort, []string{Kind}))
	})
	return e
}
