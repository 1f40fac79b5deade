package cluster

// The node: this process's membership of the cluster. It joins the
// protoactor cluster with the identity kind the runtime registers, keeps
// the node's view of the topology, runs the placement reconciler, the
// lease renewer and the etcd repair, answers the node actor's requests and
// drains the node on request. What it needs of the identities it hosts, it
// asks of its Host.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmtpbridge/bridge/persistence"
)

// Host is what the cluster needs of the node's actor runtime: the
// identities it hosts, and activating and stopping them. The actors
// package implements it.
type Host interface {
	// Activate activates the identity of bridgeID on whichever member
	// owns it, once: a lease held elsewhere is an error, not a wait.
	Activate(ctx context.Context, bridgeID string) error
	// Hosts reports whether this node hosts the identity of bridgeID.
	Hosts(bridgeID string) bool
	// Hosted returns the bridge ids of the identities this node hosts.
	Hosted() []string
	// DeactivateLocal stops the identity of bridgeID if this node hosts
	// it, and waits until it released its lease.
	DeactivateLocal(ctx context.Context, bridgeID string) error
	// StopAll stops every hosted identity and returns how many.
	StopAll(ctx context.Context) int
	// Leases returns the lease holder of every hosted identity.
	Leases() []LeaseHolder
}

// LeaseHolder is one hosted identity as the lease renewer sees it.
type LeaseHolder interface {
	// Lease is the lease the identity holds now.
	Lease() persistence.Lease
	// Renewed hands the identity its lease as the renewer last checked
	// it, still valid.
	Renewed(l persistence.Lease)
	// Fenced tells the identity that the lease of epoch is no longer
	// valid (its node lease ran out, or another owner took it over): it
	// stops as stale.
	Fenced(epoch int64)
}

// Store is the part of the Postgres store the cluster uses.
type Store interface {
	EnabledBridgeIDs(ctx context.Context) ([]string, error)
	EnabledBridgeIDsAmong(ctx context.Context, ids []string) ([]string, error)
	StartNodeLease(ctx context.Context, node, member string, ttl time.Duration) (persistence.NodeLease, error)
	RenewNodeLease(ctx context.Context, nl persistence.NodeLease, ttl time.Duration) (persistence.NodeLease, error)
	EndNodeLease(ctx context.Context, nl persistence.NodeLease) error
	CheckLeases(ctx context.Context, ls []persistence.Lease) (map[string]persistence.Lease, error)
}

var _ Store = (*persistence.Store)(nil)

// The membership engines a node can use.
const (
	ProviderAutomanaged = "automanaged"
	ProviderEtcd        = "etcd"
	ProviderKubernetes  = "kubernetes"
)

// Config configures a Node. Zero values take the documented defaults.
type Config struct {
	// NodeID names this node (BRIDGE_NODE_ID); required.
	NodeID string
	// Kind is the cluster kind of the identity grains; required.
	Kind string
	// Store lists bridges and keeps the node lease; required.
	Store Store
	// Registerer receives the cluster metrics; required.
	Registerer prometheus.Registerer
	// Logger receives the cluster's logs; nil discards them.
	Logger *slog.Logger

	// Provider is the membership engine: ProviderAutomanaged (default),
	// ProviderEtcd or ProviderKubernetes.
	Provider string
	// ClusterName names the protoactor cluster; default "xmtp-bridge".
	ClusterName string
	// RemoteHost and RemotePort are the protoactor remote listen address;
	// default 127.0.0.1 and 0 (any free port). AdvertisedHost is the host
	// other members dial, when it differs from RemoteHost.
	RemoteHost     string
	RemotePort     int
	AdvertisedHost string
	// EtcdEndpoints and EtcdPrefix configure the etcd provider.
	EtcdEndpoints []string
	EtcdPrefix    string
	// ProviderPort is the automanaged provider's health port; 0 picks a
	// free port. Peers lists the host:port of every member's provider;
	// empty means this node alone.
	ProviderPort int
	Peers        []string

	// LeaseTTL is the node lease's lifetime, renewed every third of it;
	// default 30s.
	LeaseTTL time.Duration
	// ActivationTimeout bounds one activation and a request to a grain;
	// default 60s.
	ActivationTimeout time.Duration
	// ReconcileInterval is how often placement runs; default 15s.
	ReconcileInterval time.Duration
	// DrainTimeout bounds how long a stopping identity waits for its
	// running webhook attempts; default 15s.
	DrainTimeout time.Duration
}

func (c *Config) defaults() error {
	var missing []string
	if c.NodeID == "" {
		missing = append(missing, "NodeID")
	}
	if c.Kind == "" {
		missing = append(missing, "Kind")
	}
	if c.Store == nil {
		missing = append(missing, "Store")
	}
	if c.Registerer == nil {
		missing = append(missing, "Registerer")
	}
	if len(missing) > 0 {
		return fmt.Errorf("cluster config: missing %v", missing)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.ActivationTimeout <= 0 {
		c.ActivationTimeout = 60 * time.Second
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = 15 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 15 * time.Second
	}
	if c.ClusterName == "" {
		c.ClusterName = "xmtp-bridge"
	}
	switch c.Provider {
	case "":
		c.Provider = ProviderAutomanaged
	case ProviderAutomanaged, ProviderEtcd, ProviderKubernetes:
	default:
		return fmt.Errorf("actor runtime config: unknown cluster provider %q", c.Provider)
	}
	if len(c.EtcdEndpoints) == 0 {
		c.EtcdEndpoints = []string{"127.0.0.1:2379"}
	}
	if c.EtcdPrefix == "" {
		c.EtcdPrefix = "/xmtp-bridge"
	}
	if c.RemoteHost == "" {
		c.RemoteHost = "127.0.0.1"
	}
	return nil
}

// Node is this process's member of the cluster. Start it once and Stop it
// once; New registers its metrics.
type Node struct {
	cfg     Config
	host    Host
	log     *slog.Logger
	metrics *metrics

	system  *actor.ActorSystem
	root    *actor.RootContext
	cluster *cluster.Cluster

	topo *topology
	// etcd answers readiness checks with the etcd provider.
	etcd    *clientv3.Client
	topoSub *eventstream.Subscription
	// kick asks the reconciler to run now, after a topology or bridge
	// change.
	kick chan struct{}
	// eventsLive is set while bridge_changed events reach the node
	// (placement.go); placeMu guards changed (the bridges named since the
	// last pass), fullDue (the next pass is a full one) and lastFull
	// (when the last complete full pass started).
	eventsLive atomic.Bool
	placeMu    sync.Mutex
	changed    map[string]struct{}
	fullDue    bool
	lastFull   time.Time
	// rest is what a full pass cut short by its budget left, in the
	// topology it saw; restPending is set from that pass until the
	// passes that go on with it have placed it all.
	rest        []string
	restPending bool

	stopReconcile chan struct{}
	reconcileDone chan struct{}
	haltOnce      sync.Once
	stopRenew     chan struct{}
	renewDone     chan struct{}

	// nodeLease is the node lease every hosted identity's lease lives
	// under (leases.go).
	nodeLease atomic.Pointer[persistence.NodeLease]
	// renewedAt is when the last renewal that reached Postgres was sent;
	// lapseFenced is set once the identities were fenced because no
	// renewal reached Postgres for a LeaseTTL. Start, then the renewer
	// alone, use them.
	renewedAt   time.Time
	lapseFenced bool
	// renewedNs is renewedAt in Unix nanoseconds, for readiness, which
	// runs on other goroutines (NodeLeaseReady).
	renewedNs atomic.Int64

	mu       sync.Mutex
	stopping bool
	// draining is set by Drain; drained closes when it is done; left is
	// set once the member left the cluster.
	draining bool
	drained  chan struct{}
	left     bool
}

// New checks cfg and registers the cluster metrics; host is the runtime
// whose identities the node places.
func New(cfg Config, host Host) (*Node, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, host: host, log: cfg.Logger, kick: make(chan struct{}, 1), fullDue: true}
	var err error
	gauges := nodeGauges{
		members: func() float64 {
			if n.topo == nil {
				return 0
			}
			return n.topo.size()
		},
		placementLag: func() float64 {
			if n.topo == nil {
				return 0
			}
			return n.topo.lag(time.Now())
		},
	}
	if n.metrics, err = newMetrics(cfg.Registerer, gauges); err != nil {
		return nil, err
	}
	return n, nil
}

// Start joins the cluster as a member with kind through the configured
// provider, on system, after it took its node lease, and starts the
// placement reconciler, which activates every bridge this member owns, the
// lease renewer and, with etcd, the etcd repair.
func (n *Node) Start(ctx context.Context, system *actor.ActorSystem, kind *cluster.Kind) (err error) {
	cfg := n.cfg
	if err := n.etcdReachable(ctx); err != nil {
		return fmt.Errorf("start actor runtime: %w", err)
	}
	n.system = system
	n.root = system.Root
	n.topo = &topology{kind: cfg.Kind}
	n.drained = make(chan struct{})
	if err := n.startNodeLease(ctx); err != nil {
		return fmt.Errorf("start actor runtime: %w", err)
	}

	provider, err := n.newProvider()
	if err != nil {
		return fmt.Errorf("start actor runtime: %w", err)
	}
	remoteOpts := []remote.ConfigOption{}
	if cfg.AdvertisedHost != "" {
		remoteOpts = append(remoteOpts, remote.WithAdvertisedHost(net.JoinHostPort(cfg.AdvertisedHost, strconv.Itoa(cfg.RemotePort))))
	}
	ccfg := cluster.Configure(cfg.ClusterName, provider, disthash.New(),
		remote.Configure(cfg.RemoteHost, cfg.RemotePort, remoteOpts...),
		cluster.WithKinds(kind), cluster.WithRequestTimeout(cfg.ActivationTimeout))
	c := cluster.New(n.system, ccfg)
	n.mu.Lock()
	n.cluster = c
	n.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("start cluster member (provider %s): %v", cfg.Provider, p)
		}
	}()
	joined := make(chan struct{})
	var joinOnce sync.Once
	n.topoSub = n.system.EventStream.Subscribe(func(evt any) {
		topo, ok := evt.(*cluster.ClusterTopology)
		if !ok {
			return
		}
		n.onTopology(topo)
		// Member ids are the provider's own (etcd prefixes the cluster
		// name, Kubernetes makes its own), so the address tells this
		// member.
		for _, m := range topo.Members {
			if m.Address() == n.system.Address() {
				joinOnce.Do(func() { close(joined) })
			}
		}
	})
	if _, err := n.root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &nodeActor{n: n} }), NodeActorName); err != nil {
		return fmt.Errorf("start node actor: %w", err)
	}
	n.cluster.StartMember()
	n.stopRenew = make(chan struct{})
	n.renewDone = make(chan struct{})
	go n.renewLoop(n.stopRenew, n.renewDone)
	if cfg.Provider == ProviderKubernetes {
		// The Kubernetes provider lists only pods whose containers are
		// ready, and the pod turns ready once the node serves /readyz,
		// after Start: waiting here for this member would wait forever.
		// The reconciler places identities when the topology arrives.
		n.log.Info("joining cluster", "provider", cfg.Provider, "cluster", cfg.ClusterName, "address", n.system.Address())
	} else {
		if err := n.waitForMember(ctx, joined); err != nil {
			return err
		}
		n.log.Info("joined cluster", "provider", cfg.Provider, "cluster", cfg.ClusterName, "member", n.system.ID,
			"address", n.system.Address())
		// A pass cut short by its budget kicks the loop, which goes on.
		start := time.Now()
		n.nextPass(start)
		complete, err := n.reconcile(ctx)
		n.passDone(true, start, complete, err)
		if err != nil {
			return err
		}
	}
	n.stopReconcile = make(chan struct{})
	n.reconcileDone = make(chan struct{})
	go n.reconcileLoop(n.stopReconcile, n.reconcileDone)
	if n.etcd != nil {
		go n.etcdRepairLoop()
	}
	return nil
}

// BeginStop marks the node stopping and stops the placement reconciler;
// it reports false when the node was already stopping. The runtime then
// stops its intake and its identities, and calls Stop.
func (n *Node) BeginStop() bool {
	n.mu.Lock()
	if n.stopping {
		n.mu.Unlock()
		return false
	}
	n.stopping = true
	n.mu.Unlock()
	n.haltReconciler()
	return true
}

// Stop ends what BeginStop began, once every identity has stopped: it
// stops the lease renewer (the node lease is renewed until every identity
// released its own, however long their drain takes), ends the node lease,
// leaves the cluster and closes the etcd client.
func (n *Node) Stop() error {
	if n.stopRenew != nil {
		close(n.stopRenew)
		<-n.renewDone
		n.endNodeLease()
	}
	if n.topoSub != nil {
		n.system.EventStream.Unsubscribe(n.topoSub)
	}
	err := n.leaveCluster()
	if n.etcd != nil {
		_ = n.etcd.Close()
	}
	return err
}

// haltReconciler stops the placement reconciler and waits for it, once,
// whether Drain or Stop (or both at once) asks.
func (n *Node) haltReconciler() {
	n.haltOnce.Do(func() {
		if n.stopReconcile != nil {
			close(n.stopReconcile)
			<-n.reconcileDone
		}
	})
}

// Leaving reports whether the node does not take requests for grains: it
// has not started, or it is draining or stopping.
func (n *Node) Leaving() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopping || n.draining || n.cluster == nil
}

// Grain returns the grain of the identity, activating it on its owner;
// nil when no member can take it now.
func (n *Node) Grain(identity string) *actor.PID {
	if pid, ok := n.cluster.PidCache.Get(identity, n.cfg.Kind); ok && pid != nil {
		return pid
	}
	pid := n.cluster.Get(identity, n.cfg.Kind)
	if pid != nil {
		n.cluster.PidCache.Set(identity, n.cfg.Kind, pid)
	}
	return pid
}

// Forget drops the cached grain of the identity, after a request to it
// failed, so the next one asks the cluster again.
func (n *Node) Forget(identity string) {
	n.cluster.PidCache.Remove(identity, n.cfg.Kind)
}

// CountTakeover counts a lease this node took over after it expired
// unreleased.
func (n *Node) CountTakeover() { n.metrics.takeovers.Inc() }

// CountFencedWrite counts a write, send or attempt refused because the
// activation no longer held the current lease.
func (n *Node) CountFencedWrite() { n.metrics.fencedWrites.Inc() }
