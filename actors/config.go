package actors

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors/supervision"
	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/cluster"
	"github.com/xmtpbridge/bridge/persistence"
)

// Kind is the cluster kind of the identity grains.
const Kind = "bridge"

// Config configures a Runtime. Zero values take the documented defaults.
type Config struct {
	// NodeID names this node in leases and status; required.
	NodeID string
	// Store is the Postgres store; required.
	Store Store
	// XMTP is the message API client; required.
	XMTP Transport
	// XMTPNetwork names the XMTP network XMTP reaches, such as its node's
	// address. The store remembers which contact bundle each identity
	// published on which network, so an identity publishes its contact
	// again when the node is pointed at another network; empty names one
	// unnamed network.
	XMTPNetwork string
	// Deliverer calls owners' endpoints; required.
	Deliverer Deliverer
	// SendFilter, when set, sees reverse-proxy content before it is sent.
	SendFilter SendFilter
	// Answerer, when set, lets a bridge without an endpoint take the
	// messages its on_message plug-in answers.
	Answerer Answerer
	// Registerer receives the runtime's metrics; required.
	Registerer prometheus.Registerer
	// Logger receives the runtime's logs; nil discards them.
	Logger *slog.Logger
	// ProtoactorLogger receives protoactor's own logs; nil means Logger.
	ProtoactorLogger *slog.Logger

	// APIAddress is the API server's own XMTP identity: its messages are
	// reverse commands and are never forwarded.
	APIAddress string
	// CanaryAddress is the canary identity: its messages go to the canary
	// child and are never forwarded.
	CanaryAddress string
	// CanaryURL is the API server's canary endpoint; empty disables the
	// canary handler.
	CanaryURL string
	// CanaryClient calls CanaryURL; nil means a client with a 10s timeout.
	CanaryClient *http.Client
	// TombstoneMessage is the line a deleted bridge's address answers,
	// once per conversation, while the store keeps its tombstone; empty
	// answers nothing. The node's tombstone responder reloads the
	// tombstones every ReconcileInterval.
	TombstoneMessage string

	// Retry schedules webhook retries; zero values take webhook's
	// defaults.
	Retry webhook.RetryPolicy
	// Breaker opens, probes and disables endpoints that keep failing;
	// zero values take BreakerConfig's defaults.
	Breaker BreakerConfig
	// ChildBackoff spaces restarts of a failing child; zero means
	// supervision.DefaultBackoff.
	ChildBackoff supervision.Backoff
	// PoisonThreshold is how many failures on one message quarantine it;
	// 0 means supervision's default.
	PoisonThreshold int
	// LeaseTTL is the node lease's lifetime, renewed every third of it;
	// default 30s. The identities' leases live under the node lease.
	LeaseTTL time.Duration
	// ActivationTimeout bounds an activation and its catch-up; default 60s.
	ActivationTimeout time.Duration
	// SweepInterval is how often the node's scheduler looks for work due
	// on any bridge it hosts: deliveries, replies and broadcast copies
	// (due.go); default 5s.
	SweepInterval time.Duration
	// ReplyLoopLimit is the most automatic replies one bridge sends in one
	// conversation within a minute (see loopguard.go); 0 means no limit.
	ReplyLoopLimit int
	// BroadcastRate is how many copies of a broadcast a bridge queues a
	// second (BRIDGE_BROADCAST_RATE); DefaultBroadcastRate when 0.
	BroadcastRate int
	// ReconcileInterval is how often the runtime activates bridges that
	// should be online and are not, and stops disabled ones; default 15s.
	ReconcileInterval time.Duration
	// DrainTimeout bounds how long a stopping identity waits for its
	// running webhook attempts; default 15s.
	DrainTimeout time.Duration
	// OnForward, when set, is called by the forward child with each
	// delivery it takes, on the child's goroutine, before the attempt.
	// A panic in it is a failure of the child, handled by supervision.
	// Tracing and fault-injection tests use it. While it is set, no
	// webhook call starts before its delivery is recorded (early.go).
	OnForward func(persistence.Delivery)
	// Listeners are the notification channels of other parts of the
	// node, carried by the runtime's one LISTEN connection (events.go).
	Listeners []Listener

	// earlyOff starts no webhook call early (early.go); earlySettle
	// replaces the package's earlySettle; seenSize is the size of an
	// identity's seen window (8192 when 0). Tests set them.
	earlyOff    bool
	earlySettle time.Duration
	seenSize    int

	// The fields below configure the node's member of the cluster; New
	// passes them on in a cluster.Config, which documents their defaults.

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
}

// The membership engines a runtime can use (package cluster's).
const (
	ProviderAutomanaged = cluster.ProviderAutomanaged
	ProviderEtcd        = cluster.ProviderEtcd
	ProviderKubernetes  = cluster.ProviderKubernetes
)

// clusterConfig is the configuration of the node's member of the cluster:
// the membership fields of c, and the timings placement, fencing and drain
// share with the identities.
func (c *Config) clusterConfig() cluster.Config {
	return cluster.Config{
		NodeID: c.NodeID, Kind: Kind, Store: c.Store, Registerer: c.Registerer, Logger: c.Logger,
		Provider: c.Provider, ClusterName: c.ClusterName,
		RemoteHost: c.RemoteHost, RemotePort: c.RemotePort, AdvertisedHost: c.AdvertisedHost,
		EtcdEndpoints: c.EtcdEndpoints, EtcdPrefix: c.EtcdPrefix, ProviderPort: c.ProviderPort, Peers: c.Peers,
		LeaseTTL: c.LeaseTTL, ActivationTimeout: c.ActivationTimeout, ReconcileInterval: c.ReconcileInterval,
		DrainTimeout: c.DrainTimeout,
	}
}

func (c *Config) defaults() error {
	var missing []string
	if c.NodeID == "" {
		missing = append(missing, "NodeID")
	}
	if c.Store == nil {
		missing = append(missing, "Store")
	}
	if c.XMTP == nil {
		missing = append(missing, "XMTP")
	}
	if c.Deliverer == nil {
		missing = append(missing, "Deliverer")
	}
	if c.Registerer == nil {
		missing = append(missing, "Registerer")
	}
	if len(missing) > 0 {
		return fmt.Errorf("actor runtime config: missing %v", missing)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ProtoactorLogger == nil {
		c.ProtoactorLogger = c.Logger.With("component", "protoactor")
	}
	if c.CanaryClient == nil {
		c.CanaryClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.ActivationTimeout <= 0 {
		c.ActivationTimeout = 60 * time.Second
	}
	if c.BroadcastRate <= 0 {
		c.BroadcastRate = DefaultBroadcastRate
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 5 * time.Second
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = 15 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 15 * time.Second
	}
	if c.earlySettle <= 0 {
		c.earlySettle = earlySettle
	}
	if c.seenSize <= 0 {
		c.seenSize = 8192
	}
	// The membership fields take their defaults in cluster.Config.
	return nil
}
