package system

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors"
	"github.com/xmtpbridge/bridge/actors/plugin"
	"github.com/xmtpbridge/bridge/actors/prober"
	"github.com/xmtpbridge/bridge/actors/webhook"
	bridgehttp "github.com/xmtpbridge/bridge/http"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/system/config"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// eventTimeout bounds the work the runtime does for one API request: an
// activation after a bridge was created, a stop after it was deleted.
const eventTimeout = 30 * time.Second

// runtimeParts is the actor runtime of a node and what it needs: the XMTP
// client it publishes and subscribes through, the system identities and the
// canary prober.
type runtimeParts struct {
	log        *slog.Logger
	store      *persistence.Store
	xmtp       *api.Client
	rt         *actors.Runtime
	identities bridgehttp.SystemIdentities
	plugins    *pluginParts

	provider   string
	proberStop context.CancelFunc
	proberDone chan struct{}
}

// proberLeaseIdentity is the lease that elects the one node whose prober
// sends canaries.
const proberLeaseIdentity = "system/canary-prober"

// proberLeader elects the canary prober of the cluster with a lease in
// Postgres: the node that holds it probes, and keeps it by taking it again
// every round; when that node stops or dies, the lease runs out after two
// intervals and another node's prober takes over.
func proberLeader(store *persistence.Store, nodeID string, interval time.Duration) func(context.Context) bool {
	nonce := make([]byte, 6)
	_, _ = rand.Read(nonce)
	owner := nodeID + "/" + hex.EncodeToString(nonce)
	return func(ctx context.Context) bool {
		_, err := store.AcquireLease(ctx, proberLeaseIdentity, owner, 2*interval+5*time.Second)
		return err == nil
	}
}

// startRuntime dials the XMTP node, loads (or creates, once) the system
// identities, starts the actor runtime as a one-member cluster and the
// canary prober. canaryURL is this node's /canary unless the configuration
// names another. A failure of the prober after the start goes to failures.
func startRuntime(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer,
	store *persistence.Store, xmtpAddr, canaryURL string, failures chan<- error) (_ *runtimeParts, err error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout+cfg.LeaseTTL)
	defer cancel()
	opts := []api.Option{api.WithLogger(log.With("component", "xmtp-client"))}
	if cfg.XMTPTLS {
		opts = append(opts, api.WithTLS(xmtpTLSConfig(cfg)))
	}
	xc, err := api.Dial(ctx, xmtpAddr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial xmtp node %s: %w", xmtpAddr, err)
	}
	p := &runtimeParts{log: log, store: store, xmtp: xc}
	defer func() {
		if err != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			p.stop(stopCtx)
		}
	}()

	apiID, err := systemClient(ctx, store, xc, persistence.RoleAPI, log)
	if err != nil {
		return nil, err
	}
	canaryID, err := systemClient(ctx, store, xc, persistence.RoleCanary, log)
	if err != nil {
		return nil, err
	}
	p.identities = bridgehttp.SystemIdentities{API: apiID.Address(), Canary: canaryID.Address()}

	metrics, err := webhook.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	plugins, err := startPlugins(ctx, cfg, log, reg, store)
	if err != nil {
		return nil, err
	}
	p.plugins = plugins
	rlog := log.With("component", "actors")
	rt, err := actors.New(actors.Config{
		NodeID: cfg.NodeID,
		Store:  store,
		XMTP:   xc,
		// The address names the network: pointed at another, the
		// identities publish their contacts there too.
		XMTPNetwork: xmtpAddr,
		Registerer:  reg,
		Logger:      rlog,
		// protoactor logs every cluster step at info; keep its warnings.
		ProtoactorLogger: slog.New(levelFloor{h: expectedStops{h: rlog.Handler()}, min: slog.LevelWarn}).With("component", "protoactor"),
		Deliverer: plugin.NewDeliverer(plugins.host, webhook.NewDeliverer(webhook.Config{
			Client:  webhook.NewClient(webhook.ClientOptions{AllowPrivate: cfg.AllowPrivateTargets}),
			Metrics: metrics,
			Logger:  log.With("component", "webhook"),
		})),
		SendFilter:       plugins.host,
		Answerer:         plugins.host,
		APIAddress:       apiID.Address(),
		TombstoneMessage: tombstoneMessage(cfg),
		CanaryAddress:    canaryID.Address(),
		CanaryURL:        canaryURL,
		LeaseTTL:         cfg.LeaseTTL,
		SweepInterval:    cfg.SweepInterval,
		ReplyLoopLimit:   cfg.ReplyLoopLimit,
		BroadcastRate:    cfg.BroadcastRate,
		Breaker: actors.BreakerConfig{OpenAfter: cfg.BreakerOpenAfter, ProbeMin: cfg.BreakerProbeMin,
			ProbeMax: cfg.BreakerProbeMax, DisableAfter: cfg.BreakerDisableAfter},
		ReconcileInterval: cfg.ReconcileInterval,
		DrainTimeout:      cfg.ShutdownTimeout / 2,
		Provider:          cfg.Cluster.Provider,
		ClusterName:       cfg.Cluster.Name,
		RemoteHost:        cfg.Cluster.Host,
		RemotePort:        cfg.Cluster.Port,
		AdvertisedHost:    cfg.Cluster.AdvertisedHost,
		ProviderPort:      cfg.Cluster.ProviderPort,
		Peers:             cfg.Cluster.Peers,
		EtcdEndpoints:     cfg.Cluster.EtcdEndpoints,
		EtcdPrefix:        cfg.Cluster.EtcdPrefix,
		Listeners:         []actors.Listener{plugins.listener(log)},
	})
	if err != nil {
		return nil, fmt.Errorf("build actor runtime: %w", err)
	}
	if err := rt.Start(ctx); err != nil {
		// Start may have joined the cluster before it failed.
		stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		_ = rt.Stop(stopCtx)
		return nil, fmt.Errorf("start actor runtime: %w", err)
	}
	p.rt = rt
	p.provider = cfg.Cluster.Provider
	log.Info("actor runtime started", "hosted", len(rt.Hosted()), "api_identity", apiID.Address(),
		"canary_identity", canaryID.Address(), "canary_url", canaryURL)

	if cfg.CanaryInterval > 0 {
		pm, err := prober.NewMetrics(reg)
		if err != nil {
			return nil, err
		}
		pr, err := prober.New(prober.Config{
			Store: store, Client: canaryID, Metrics: pm, Logger: log.With("component", "canary"),
			Interval: cfg.CanaryInterval, Sample: cfg.CanarySample,
			Leader: proberLeader(store, cfg.NodeID, cfg.CanaryInterval),
		})
		if err != nil {
			return nil, fmt.Errorf("build canary prober: %w", err)
		}
		pctx, pcancel := context.WithCancel(context.Background())
		p.proberStop, p.proberDone = pcancel, make(chan struct{})
		go func() {
			defer close(p.proberDone)
			if err := pr.Run(pctx); err != nil && pctx.Err() == nil {
				failures <- fmt.Errorf("run canary prober: %w", err)
			}
		}()
	}
	return p, nil
}

// systemClient loads the identity of role, generating and storing it on
// the first start, and publishes its contact bundle.
func systemClient(ctx context.Context, store *persistence.Store, xc *api.Client, role persistence.SystemRole, log *slog.Logger) (*client.Client, error) {
	id, err := store.EnsureSystemIdentity(ctx, role, func() (string, []byte, error) {
		b, err := keys.Generate()
		if err != nil {
			return "", nil, err
		}
		raw, err := b.Marshal()
		if err != nil {
			return "", nil, err
		}
		return b.Address(), raw, nil
	})
	if err != nil {
		return nil, err
	}
	bundle, err := keys.UnmarshalPrivateKeyBundle(id.KeyBundle)
	if err != nil {
		return nil, fmt.Errorf("decode %s identity: %w", role, err)
	}
	c, err := client.New(client.Config{Bundle: bundle, API: xc, Logger: log.With("component", string(role)+"-identity")})
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, fmt.Errorf("publish %s identity contact: %w", role, err)
	}
	return c, nil
}

// connected reports whether the node's XMTP subscription is established
// and the node is a working member (not drained).
func (p *runtimeParts) connected() error {
	if p.rt == nil || !p.rt.Connected() {
		return errors.New("xmtp subscription of the actor runtime is disconnected")
	}
	if p.rt.Draining() {
		return errors.New("node drained: its identities moved to the other members")
	}
	return nil
}

// membershipReady reports whether the cluster's membership engine answers.
func (p *runtimeParts) membershipReady(ctx context.Context) error {
	if p.rt == nil {
		return nil
	}
	return p.rt.MembershipReady(ctx)
}

// nodeLeaseReady reports whether the node lease is being renewed.
func (p *runtimeParts) nodeLeaseReady() error {
	if p.rt == nil {
		return nil
	}
	return p.rt.NodeLeaseReady()
}

// stop ends the prober, then the runtime (it stops intake, lets running
// deliveries finish within its drain time and leaves what is pending in the
// store), then the XMTP connection.
func (p *runtimeParts) stop(ctx context.Context) error {
	if p.proberStop != nil {
		p.proberStop()
		select {
		case <-p.proberDone:
		case <-ctx.Done():
		}
	}
	var errs []error
	if p.rt != nil {
		if err := p.rt.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop actor runtime: %w", err))
		}
	}
	p.plugins.close()
	if p.xmtp != nil {
		if err := p.xmtp.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close xmtp client: %w", err))
		}
	}
	return errors.Join(errs...)
}

// sendTimeout bounds a send over REST, including the retries that carry it
// across a rehome of the identity.
const sendTimeout = 20 * time.Second

// Send implements bridgehttp.Sender through the bridge's grain, on
// whichever member hosts it.
func (p *runtimeParts) Send(ctx context.Context, bridgeID, to, text string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	id, err := p.rt.Send(ctx, bridgeID, to, content.Text(text))
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, actors.ErrPeerNotOnNetwork):
		return "", fmt.Errorf("%w: %w", bridgehttp.ErrRecipientNotOnNetwork, err)
	case errors.Is(err, plugin.ErrRefused) || strings.Contains(err.Error(), plugin.ErrRefused.Error()):
		// The actor wire keeps the text of an error, not its sentinel.
		return "", fmt.Errorf("%w: %w", bridgehttp.ErrSendRefused, err)
	case errors.Is(err, actors.ErrOutcomeUnknown):
		return "", fmt.Errorf("%w: %w", bridgehttp.ErrSendOutcomeUnknown, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, actors.ErrStopped), errors.Is(err, actors.ErrNotActive),
		errors.Is(err, persistence.ErrLeaseHeld):
		return "", fmt.Errorf("%w: %w", bridgehttp.ErrSendUnavailable, err)
	}
	return "", err
}

// InstanceStatus implements bridgehttp.InstanceStatus: this node's own
// activation when it hosts the identity, else the identity's live lease,
// which names the node that does.
func (p *runtimeParts) InstanceStatus(ctx context.Context, bridgeID string) (bridgehttp.Instance, error) {
	if st, ok := p.rt.Status(bridgeID); ok {
		return bridgehttp.Instance{Live: "online", Node: st.Node, Since: st.Since}, nil
	}
	l, err := p.store.LeaseOf(ctx, bridgeID)
	if errors.Is(err, persistence.ErrNotFound) {
		return bridgehttp.Instance{Live: "offline"}, nil
	}
	if err != nil {
		return bridgehttp.Instance{}, err
	}
	if !l.ExpiresAt.After(time.Now()) {
		return bridgehttp.Instance{Live: "offline"}, nil
	}
	return bridgehttp.Instance{Live: "online", Node: bridgehttp.LeaseNode(l.Owner)}, nil
}

// Provider implements bridgehttp.Cluster.
func (p *runtimeParts) Provider() string { return p.provider }

// Members implements bridgehttp.Cluster.
func (p *runtimeParts) Members(ctx context.Context) []bridgehttp.ClusterMember {
	ms := p.rt.Members(ctx)
	out := make([]bridgehttp.ClusterMember, len(ms))
	for i, m := range ms {
		out[i] = bridgehttp.ClusterMember{ID: m.ID, Node: m.Node, Address: m.Address, Self: m.Self, Hosted: m.Hosted, Draining: m.Draining}
	}
	return out
}

// DrainNode implements bridgehttp.Cluster.
func (p *runtimeParts) DrainNode(ctx context.Context, nodeID string) (int, error) {
	n, err := p.rt.DrainNode(ctx, nodeID)
	if errors.Is(err, actors.ErrUnknownNode) {
		return 0, fmt.Errorf("%w: %w", bridgehttp.ErrUnknownNode, err)
	}
	return n, err
}

// BridgeCreated activates the new bridge's identity at once.
func (p *runtimeParts) BridgeCreated(ctx context.Context, bridgeID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventTimeout)
	defer cancel()
	if err := p.rt.Activate(ctx, bridgeID); err != nil {
		// The reconcile loop tries again.
		p.log.Warn("activate new bridge", "bridge", bridgeID, "error", err)
	}
}

// BridgeUpdated starts or stops the identity to match the bridge's status.
func (p *runtimeParts) BridgeUpdated(ctx context.Context, bridgeID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventTimeout)
	defer cancel()
	b, err := p.store.BridgeByID(ctx, bridgeID)
	if err != nil {
		p.log.Warn("load updated bridge", "bridge", bridgeID, "error", err)
		return
	}
	if b.Status == persistence.StatusDisabled {
		err = p.rt.Deactivate(ctx, bridgeID)
	} else {
		err = p.rt.Activate(ctx, bridgeID)
	}
	if err != nil {
		p.log.Warn("apply bridge status", "bridge", bridgeID, "status", b.Status, "error", err)
	}
}

// BridgeDeleted stops the deleted bridge's identity.
func (p *runtimeParts) BridgeDeleted(ctx context.Context, bridgeID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventTimeout)
	defer cancel()
	if err := p.rt.Deactivate(ctx, bridgeID); err != nil {
		p.log.Warn("stop deleted bridge", "bridge", bridgeID, "error", err)
	}
}

// DeliveriesQueued wakes the forward handler of a bridge whose dead
// letters were replayed.
func (p *runtimeParts) DeliveriesQueued(_ context.Context, bridgeID string) {
	p.rt.Nudge(bridgeID)
}

var (
	_ bridgehttp.Sender         = (*runtimeParts)(nil)
	_ bridgehttp.InstanceStatus = (*runtimeParts)(nil)
	_ bridgehttp.BridgeEvents   = (*runtimeParts)(nil)
	_ bridgehttp.Cluster        = (*runtimeParts)(nil)
)

// canaryURLFor returns the canary endpoint the bridges call: the
// configured one, or this node's own /canary at its API listen address,
// with an unspecified host replaced by loopback.
func canaryURLFor(cfg *config.Config, apiAddr net.Addr) string {
	if cfg.CanaryURL != "" {
		return cfg.CanaryURL
	}
	host, port, err := net.SplitHostPort(apiAddr.String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(strings.Trim(host, "[]"), port) + "/canary"
}

// tombstoneMessage is the line deleted bridges answer, or "" when
// BRIDGE_TOMBSTONE_FOR is 0 and they answer nothing.
func tombstoneMessage(cfg *config.Config) string {
	if cfg.TombstoneFor <= 0 {
		return ""
	}
	return cfg.TombstoneMessage
}
