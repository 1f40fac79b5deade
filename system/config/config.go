// Package config reads every setting of the bridge from the environment
// into one typed Config, fills in defaults, and checks the values against
// each other. Each variable is documented once, in Vars.
package config

import (
	"crypto/x509"
	"log/slog"
	"os"
	"time"
)

// Mode names what the binary has been asked to run; it decides which
// variables are required and which defaults apply.
type Mode string

// The modes of the bridge binary.
const (
	// ModeNode is a production node: every secret must be given.
	ModeNode Mode = "node"
	// ModeDev is a single development node: secrets and the database get
	// safe local defaults, and the local XMTP node runs in-process.
	ModeDev Mode = "dev"
	// ModeXMTPNode runs only the local XMTP node.
	ModeXMTPNode Mode = "xmtp-node"
	// ModeMigrate applies the database migrations and exits.
	ModeMigrate Mode = "migrate"
)

// DefaultTombstoneMessage is what a deleted bridge's address answers
// unless BRIDGE_TOMBSTONE_MESSAGE says otherwise.
const DefaultTombstoneMessage = "This address no longer takes messages."

// DevDatabaseURL is the database dev mode uses when DATABASE_URL is unset:
// the machine's Postgres with trust authentication.
const DevDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// MasterKey is one key that seals secrets at rest, with the identifier
// stored next to each ciphertext it produced.
type MasterKey struct {
	ID  string
	Key []byte
}

// Config is every setting of a bridge process.
type Config struct {
	// Mode is what the process runs; it is not read from the environment.
	Mode Mode

	// DatabaseURL is the Postgres URL. It may carry a password.
	DatabaseURL string
	// HTTPAddr is the listen address of the HTTP API.
	HTTPAddr string
	// NodeID names this node.
	NodeID string
	// LogLevel is the lowest level logged.
	LogLevel slog.Level
	// LogFormat is "text" or "json".
	LogFormat string
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration

	// MasterKey seals new secrets; its Key is nil until set or, in dev
	// mode, until PrepareDev fills it.
	MasterKey MasterKey
	// PreviousMasterKeys still open secrets sealed before a rotation.
	PreviousMasterKeys []MasterKey
	// AdminToken guards the admin endpoints.
	AdminToken string
	// SignupKey must be presented by signup requests unless SignupOpen.
	SignupKey string
	// SignupOpen allows signup without SignupKey.
	SignupOpen bool
	// SignupRatePerMinute limits signups per IP address.
	SignupRatePerMinute int
	// RelayccSharedKey lets the signup key authorize /hook and /instance
	// for bridges made by relaycc /signup, as the relaycc seed did.
	RelayccSharedKey bool
	// TokenFailuresPerMinute limits failed /hook and /instance token
	// attempts per IP address.
	TokenFailuresPerMinute int
	// MaxBridgesPerAccount is the bridge quota of a /v1 account.
	MaxBridgesPerAccount int
	// SendRatePerSecond and SendBurst are the token bucket of an
	// account's sends.
	SendRatePerSecond int
	SendBurst         int
	// AllowPrivateTargets turns off the SSRF check of forward targets.
	AllowPrivateTargets bool
	// MaxBodyBytes is the largest request body the API accepts.
	MaxBodyBytes int
	// ProxyHeader carries the client address behind a reverse proxy.
	ProxyHeader string
	// TrustedProxies are the proxies whose ProxyHeader is believed.
	TrustedProxies []string

	// XMTPNode is the host:port of a remote XMTP gRPC endpoint; empty
	// means the local node (dev) or, in node mode, is an error.
	XMTPNode string
	// XMTPTLS dials XMTPNode with TLS.
	XMTPTLS bool
	// XMTPCAFile names the PEM file of the authorities trusted for
	// XMTPNode's certificate; empty trusts the system's roots.
	XMTPCAFile string
	// XMTPRootCAs holds the certificates of XMTPCAFile, read at load;
	// nil means the system's roots.
	XMTPRootCAs *x509.CertPool
	// XMTPNodeGRPCAddr is the local XMTP node's gRPC listen address.
	XMTPNodeGRPCAddr string
	// XMTPNodeHTTPAddr is the local XMTP node's HTTP gateway address.
	XMTPNodeHTTPAddr string
	// XMTPNodeAuthn makes the local node verify auth tokens on publish.
	XMTPNodeAuthn bool
	// PprofAddr is where the node serves /debug/pprof/; empty serves none.
	PprofAddr string
	// XMTPNodeOpsAddr is where `bridge xmtp-node` serves its probes and
	// metrics; empty serves none.
	XMTPNodeOpsAddr string
	// XMTPMaxEnvelopeBytes is the local node's envelope size limit.
	XMTPMaxEnvelopeBytes int
	// XMTPMaxTopicsPerRequest is the local node's topic count limit.
	XMTPMaxTopicsPerRequest int
	// XMTPMaxEnvelopesPerPublish is the local node's envelope count limit
	// of one publish.
	XMTPMaxEnvelopesPerPublish int
	// XMTPSubscriberBufferBytes bounds the envelopes waiting for one
	// subscriber of the local node.
	XMTPSubscriberBufferBytes int
	// XMTPMaxSubscriptionsPerClient caps the local node's subscription
	// streams per client address.
	XMTPMaxSubscriptionsPerClient int
	// XMTPMaxSubscriptions caps the local node's subscription streams.
	XMTPMaxSubscriptions int
	// XMTPMaxPublishesInFlight caps the gRPC publishes the local node
	// reads and handles at once (its gateway's excepted).
	XMTPMaxPublishesInFlight int
	// XMTPNodeMaxConns caps the local node's Postgres connections.
	XMTPNodeMaxConns int
	// DBMaxConns caps the node's Postgres connections (a pool_max_conns
	// parameter of DatabaseURL wins over it).
	DBMaxConns int

	// CanaryInterval is the time between canary rounds; 0 turns the
	// prober off.
	CanaryInterval time.Duration
	// CanarySample is how many bridges a round probes; 0 means all.
	CanarySample int
	// CanaryURL is the canary endpoint the bridges call; empty means this
	// node's own /canary, derived from the API's listen address.
	CanaryURL string
	// LeaseTTL is the lifetime of the node lease the identities' fencing
	// leases live under.
	LeaseTTL time.Duration
	// ReconcileInterval is how often the runtime activates missing
	// identities.
	ReconcileInterval time.Duration
	// SweepInterval is how often identities look for due deliveries.
	SweepInterval time.Duration
	// BreakerOpenAfter, BreakerProbeMin, BreakerProbeMax and
	// BreakerDisableAfter configure the endpoint breaker.
	BreakerOpenAfter    int
	BreakerProbeMin     time.Duration
	BreakerProbeMax     time.Duration
	BreakerDisableAfter time.Duration
	// PayloadRetention is how long the content of final deliveries and
	// sent replies is kept.
	PayloadRetention time.Duration
	// QuarantineRetention is how long quarantined messages are kept.
	QuarantineRetention time.Duration
	// QuarantineMaxRows is how many quarantined messages a bridge keeps.
	QuarantineMaxRows int
	// RetentionInterval is how often the node's retention sweep runs.
	RetentionInterval time.Duration
	// TombstoneFor is how long a deleted bridge's address answers
	// senders with TombstoneMessage; 0 answers nothing.
	TombstoneFor time.Duration
	// TombstoneMessage is the line a deleted bridge's address answers.
	TombstoneMessage string
	// ReplyLoopLimit is the most automatic replies a bridge sends in one
	// conversation per minute; 0 means no limit.
	ReplyLoopLimit int
	// LiveRetention is how long a live message waits for an
	// acknowledgement before it is a dead letter.
	LiveRetention time.Duration
	// LiveWindow is the default window of a live consumer.
	LiveWindow int
	// LiveClaimTTL is how long a live consumer's claims outlive their
	// node's last renewal.
	LiveClaimTTL time.Duration
	// BroadcastRate is how many broadcast copies a bridge queues a second.
	BroadcastRate int

	// Cluster is how the node finds and joins the other nodes.
	Cluster Cluster

	// Plugins configures the Wasm plug-in runtime.
	Plugins Plugins
}

// Cluster providers.
const (
	ProviderAutomanaged = "automanaged"
	ProviderEtcd        = "etcd"
	ProviderKubernetes  = "kubernetes"
)

// Cluster is the membership configuration of a node.
type Cluster struct {
	// Provider is automanaged, etcd or kubernetes.
	Provider string
	// Name is the cluster's name; nodes of one cluster share it.
	Name string
	// Host and Port are where the actor remote listens; Port 0 takes a
	// free port.
	Host string
	Port int
	// AdvertisedHost is what other members dial; empty means Host.
	AdvertisedHost string
	// ProviderPort is the automanaged health port (0: any free port).
	ProviderPort int
	// Peers are the automanaged health endpoints of every node.
	Peers []string
	// EtcdEndpoints are the etcd client endpoints.
	EtcdEndpoints []string
	// EtcdPrefix is the etcd key prefix of the members.
	EtcdPrefix string
}

// RunsLocalXMTPNode reports whether this process starts the local XMTP
// node in-process.
func (c *Config) RunsLocalXMTPNode() bool {
	return c.Mode == ModeXMTPNode || (c.Mode == ModeDev && c.XMTPNode == "")
}

// Load reads the configuration for mode from lookup (os.LookupEnv in the
// binary), fills defaults, parses every value and checks them against each
// other. All problems are returned at once as a *ValidationError; each
// names its variable, says what is wrong and gives an example value.
// Without a mode option, Load checks the configuration of ModeNode.
func Load(lookup func(string) (string, bool), opts ...Option) (*Config, error) {
	o := options{mode: ModeNode, hostname: os.Hostname}
	for _, opt := range opts {
		opt(&o)
	}
	p := &parser{lookup: lookup}
	c := &Config{Mode: o.mode}

	c.DatabaseURL = p.databaseURL(EnvDatabaseURL)
	c.HTTPAddr = p.hostPort(EnvHTTPAddr, "127.0.0.1:8080")
	c.NodeID = p.nodeID(EnvNodeID, defaultNodeID(o.hostname))
	c.LogLevel = p.logLevel(EnvLogLevel)
	c.LogFormat = p.oneOf(EnvLogFormat, "text", "text", "json")
	c.ShutdownTimeout = p.duration(EnvShutdownTimeout, 30*time.Second, time.Second, time.Hour)

	c.MasterKey = MasterKey{ID: p.keyID(EnvMasterKeyID, "k1"), Key: p.masterKey(EnvMasterKey)}
	c.PreviousMasterKeys = p.previousKeys(EnvMasterKeysPrevious)
	c.AdminToken = p.token(EnvAdminToken)
	c.SignupKey = p.token(EnvSignupKey)
	c.SignupOpen = p.boolean(EnvSignupOpen, false)
	c.SignupRatePerMinute = p.integer(EnvSignupRate, 10, 1, 1_000_000)
	c.RelayccSharedKey = p.boolean(EnvRelayccSharedKey, false)
	c.TokenFailuresPerMinute = p.integer(EnvTokenFailureRate, 10, 1, 1_000_000)
	c.MaxBridgesPerAccount = p.integer(EnvMaxBridgesPerAccount, 100, 1, 10_000_000)
	c.SendRatePerSecond = p.integer(EnvSendRate, 20, 1, 1_000_000)
	c.SendBurst = p.integer(EnvSendBurst, 40, 1, 1_000_000)
	c.AllowPrivateTargets = p.boolean(EnvAllowPrivateTargets, o.mode == ModeDev)
	c.MaxBodyBytes = p.integer(EnvMaxBodyBytes, 1<<20, 1<<10, 64<<20)
	c.ProxyHeader = p.headerName(EnvProxyHeader)
	c.TrustedProxies = p.addressList(EnvTrustedProxies)

	c.XMTPNode = p.hostPort(EnvXMTPNode, "")
	c.XMTPTLS = p.boolean(EnvXMTPTLS, false)
	c.XMTPCAFile, c.XMTPRootCAs = p.certPool(EnvXMTPCAFile)
	c.XMTPNodeGRPCAddr = p.hostPort(EnvXMTPNodeGRPCAddr, "127.0.0.1:5556")
	c.XMTPNodeHTTPAddr = p.hostPort(EnvXMTPNodeHTTPAddr, "127.0.0.1:5555")
	c.XMTPNodeAuthn = p.boolean(EnvXMTPNodeAuthn, true)
	c.XMTPNodeOpsAddr = p.hostPort(EnvXMTPNodeOpsAddr, "")
	c.PprofAddr = p.hostPort(EnvPprofAddr, "")
	c.XMTPMaxEnvelopeBytes = p.integer(EnvXMTPMaxEnvelopeBytes, 1<<20, 1<<10, 64<<20)
	c.XMTPMaxTopicsPerRequest = p.integer(EnvXMTPMaxTopicsPerRequest, 1000, 1, 100_000)
	c.XMTPMaxEnvelopesPerPublish = p.integer(EnvXMTPMaxEnvelopesPerPub, 16, 1, 1000)
	c.XMTPSubscriberBufferBytes = p.integer(EnvXMTPSubscriberBuffer, 8<<20, 1<<10, 1<<30)
	c.XMTPMaxSubscriptionsPerClient = p.integer(EnvXMTPMaxSubsPerClient, 256, 1, 1_000_000)
	c.XMTPMaxSubscriptions = p.integer(EnvXMTPMaxSubscriptions, 10_000, 1, 1_000_000)
	c.XMTPMaxPublishesInFlight = p.integer(EnvXMTPMaxPublishes, 256, 1, 100_000)
	c.XMTPNodeMaxConns = p.integer(EnvXMTPNodeMaxConns, 16, 1, 10_000)
	c.DBMaxConns = p.integer(EnvDBMaxConns, 8, 1, 10_000)

	c.CanaryInterval = p.duration(EnvCanaryInterval, time.Minute, 0, 24*time.Hour)
	c.CanarySample = p.integer(EnvCanarySample, 0, 0, 1_000_000)
	c.CanaryURL = p.httpURL(EnvCanaryURL)
	c.LeaseTTL = p.duration(EnvLeaseTTL, 15*time.Second, time.Second, time.Hour)
	c.ReconcileInterval = p.duration(EnvReconcileInterval, 15*time.Second, 100*time.Millisecond, time.Hour)
	c.SweepInterval = p.duration(EnvSweepInterval, 5*time.Second, 50*time.Millisecond, time.Hour)
	c.BreakerOpenAfter = p.integer(EnvBreakerOpenAfter, 5, 1, 1000)
	c.BreakerProbeMin = p.duration(EnvBreakerProbeMin, 5*time.Second, 50*time.Millisecond, 24*time.Hour)
	c.BreakerProbeMax = p.duration(EnvBreakerProbeMax, 5*time.Minute, 50*time.Millisecond, 24*time.Hour)
	if !p.failed(EnvBreakerProbeMin) && !p.failed(EnvBreakerProbeMax) && c.BreakerProbeMax < c.BreakerProbeMin {
		p.problem(EnvBreakerProbeMax, "must be at least "+EnvBreakerProbeMin+" ("+c.BreakerProbeMin.String()+")")
	}
	c.BreakerDisableAfter = p.duration(EnvBreakerDisableAfter, 120*time.Hour, time.Second, 100_000*time.Hour)
	c.PayloadRetention = p.duration(EnvPayloadRetention, 720*time.Hour, time.Second, 100_000*time.Hour)
	c.QuarantineRetention = p.duration(EnvQuarantineRetention, 168*time.Hour, time.Second, 100_000*time.Hour)
	c.QuarantineMaxRows = p.integer(EnvQuarantineMaxRows, 1000, 1, 1_000_000)
	c.RetentionInterval = p.duration(EnvRetentionInterval, 10*time.Minute, 100*time.Millisecond, 24*time.Hour)
	c.TombstoneFor = p.duration(EnvTombstoneFor, 168*time.Hour, 0, 100_000*time.Hour)
	c.TombstoneMessage = p.line(EnvTombstoneMessage, DefaultTombstoneMessage, 500)
	c.ReplyLoopLimit = p.integer(EnvReplyLoopLimit, 20, 0, 1_000_000)
	c.LiveRetention = p.duration(EnvLiveRetention, 168*time.Hour, time.Second, 100_000*time.Hour)
	c.LiveWindow = p.integer(EnvLiveWindow, 100, 1, 1000)
	c.LiveClaimTTL = p.duration(EnvLiveClaimTTL, 15*time.Second, time.Second, time.Hour)
	c.BroadcastRate = p.integer(EnvBroadcastRate, 50, 1, 100_000)

	c.Cluster.Provider = p.oneOf(EnvClusterProvider, ProviderAutomanaged, ProviderAutomanaged, ProviderEtcd, ProviderKubernetes)
	c.Cluster.Name = p.name(EnvClusterName, "xmtp-bridge")
	c.Cluster.Host = p.host(EnvClusterHost, "127.0.0.1")
	c.Cluster.Port = p.integer(EnvClusterPort, 0, 0, 65535)
	c.Cluster.AdvertisedHost = p.host(EnvClusterAdvertisedHost, "")
	c.Cluster.ProviderPort = p.integer(EnvClusterProviderPort, 0, 0, 65535)
	c.Cluster.Peers = p.hostPortList(EnvClusterPeers, nil)
	c.Cluster.EtcdEndpoints = p.hostPortList(EnvEtcdEndpoints, []string{"127.0.0.1:2379"})
	c.Cluster.EtcdPrefix = p.keyPrefix(EnvEtcdPrefix, "/xmtp-bridge")

	c.Plugins = p.plugins()

	c.check(p)
	if len(p.problems) > 0 {
		return nil, &ValidationError{Problems: p.problems}
	}
	return c, nil
}

// Option changes how Load reads the configuration.
type Option func(*options)

type options struct {
	mode     Mode
	hostname func() (string, error)
}

// WithMode makes Load check the configuration for mode.
func WithMode(mode Mode) Option {
	return func(o *options) { o.mode = mode }
}

// WithHostname replaces os.Hostname as the source of the default node id.
func WithHostname(hostname func() (string, error)) Option {
	return func(o *options) { o.hostname = hostname }
}

func defaultNodeID(hostname func() (string, error)) string {
	h, err := hostname()
	if err != nil || !validNodeID(h) {
		return "bridge"
	}
	return h
}

// check applies the defaults of the mode and the rules that involve more
// than one variable.
func (c *Config) check(p *parser) {
	needs := func(name string, ok bool, why string) {
		if !ok && !p.failed(name) {
			p.problem(name, "is required "+why)
		}
	}
	switch c.Mode {
	case ModeNode:
		needs(EnvDatabaseURL, c.DatabaseURL != "", "in node mode")
		needs(EnvMasterKey, c.MasterKey.Key != nil, "in node mode")
		needs(EnvAdminToken, c.AdminToken != "", "in node mode")
		needs(EnvSignupKey, c.SignupKey != "" || c.SignupOpen, "in node mode unless BRIDGE_SIGNUP_OPEN=true")
		needs(EnvXMTPNode, c.XMTPNode != "", "in node mode (run `bridge xmtp-node` for a local one)")
	case ModeDev:
		if c.DatabaseURL == "" && !p.failed(EnvDatabaseURL) {
			c.DatabaseURL = DevDatabaseURL
		}
	case ModeXMTPNode, ModeMigrate:
		needs(EnvDatabaseURL, c.DatabaseURL != "", "in "+string(c.Mode)+" mode")
	default:
		p.problem("mode", "is unknown: "+quote(string(c.Mode)))
	}

	if c.Cluster.Provider != ProviderAutomanaged && len(c.Cluster.Peers) > 0 && !p.failed(EnvClusterPeers) {
		p.problem(EnvClusterPeers, "is set but BRIDGE_CLUSTER_PROVIDER is "+quote(c.Cluster.Provider)+": peers are for the automanaged provider")
	}
	if c.Cluster.Provider == ProviderAutomanaged && len(c.Cluster.Peers) > 1 && c.Cluster.ProviderPort == 0 && !p.failed(EnvClusterProviderPort) {
		p.problem(EnvClusterProviderPort, "is 0 but BRIDGE_CLUSTER_PEERS lists several nodes: the peers need a fixed port to poll")
	}
	if (c.Cluster.Host == "0.0.0.0" || c.Cluster.Host == "::" || c.Cluster.Host == "") && c.Cluster.AdvertisedHost == "" &&
		!p.failed(EnvClusterHost) && !p.failed(EnvClusterAdvertisedHost) {
		p.problem(EnvClusterAdvertisedHost, "is required when BRIDGE_CLUSTER_HOST listens on every interface: other members need a host to dial")
	}
	if c.CanaryInterval > 0 && c.CanaryInterval < time.Second {
		p.problem(EnvCanaryInterval, quote(c.CanaryInterval.String())+" is shorter than 1s (0 turns the prober off)")
	}
	if c.XMTPTLS && c.XMTPNode == "" && !p.failed(EnvXMTPNode) {
		p.problem(EnvXMTPTLS, "is true but BRIDGE_XMTP_NODE is unset: TLS applies to a remote node only")
	}
	if c.XMTPCAFile != "" && !c.XMTPTLS && !p.failed(EnvXMTPTLS) {
		p.problem(EnvXMTPCAFile, "is set but BRIDGE_XMTP_TLS is false: the authorities apply to a TLS connection only")
	}
	for _, prev := range c.PreviousMasterKeys {
		if prev.ID == c.MasterKey.ID && c.MasterKey.ID != "" {
			p.problem(EnvMasterKeysPrevious, "repeats the current key id "+quote(prev.ID)+" of BRIDGE_MASTER_KEY_ID")
		}
	}
	if c.RunsLocalXMTPNode() && c.Mode == ModeDev {
		if sameListenAddr(c.HTTPAddr, c.XMTPNodeGRPCAddr) {
			p.problem(EnvXMTPNodeGRPCAddr, "is the same address as BRIDGE_HTTP_ADDR")
		}
		if sameListenAddr(c.HTTPAddr, c.XMTPNodeHTTPAddr) {
			p.problem(EnvXMTPNodeHTTPAddr, "is the same address as BRIDGE_HTTP_ADDR")
		}
	}
	if c.RunsLocalXMTPNode() && sameListenAddr(c.XMTPNodeGRPCAddr, c.XMTPNodeHTTPAddr) {
		p.problem(EnvXMTPNodeHTTPAddr, "is the same address as BRIDGE_XMTP_NODE_GRPC_ADDR")
	}
	if c.XMTPSubscriberBufferBytes < c.XMTPMaxEnvelopeBytes && !p.failed(EnvXMTPSubscriberBuffer) && !p.failed(EnvXMTPMaxEnvelopeBytes) {
		p.problem(EnvXMTPSubscriberBuffer, "is smaller than BRIDGE_XMTP_MAX_ENVELOPE_BYTES: one full envelope would cut off every subscriber")
	}
	if c.XMTPMaxSubscriptionsPerClient > c.XMTPMaxSubscriptions && !p.failed(EnvXMTPMaxSubsPerClient) && !p.failed(EnvXMTPMaxSubscriptions) {
		p.problem(EnvXMTPMaxSubsPerClient, "is larger than BRIDGE_XMTP_MAX_SUBSCRIPTIONS")
	}
	if c.Mode == ModeXMTPNode && (sameListenAddr(c.XMTPNodeOpsAddr, c.XMTPNodeGRPCAddr) || sameListenAddr(c.XMTPNodeOpsAddr, c.XMTPNodeHTTPAddr)) {
		p.problem(EnvXMTPNodeOpsAddr, "is the same address as a listener of the local XMTP node")
	}
}

// sameListenAddr reports whether two fixed listen addresses collide. Port 0
// asks the kernel for a free port, so it never collides.
func sameListenAddr(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	_, pa, _ := splitHostPort(a)
	return a == b && pa != "0"
}
