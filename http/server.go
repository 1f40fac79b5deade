package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/persistence"
)

// DefaultMaxBodyBytes is the request body limit when Options sets none.
const DefaultMaxBodyBytes = 64 << 10

// Defaults of the quotas and limits when Options sets none.
const (
	DefaultTokenFailuresPerMinute = 10
	DefaultMaxBridgesPerAccount   = 100
	DefaultSendRatePerSecond      = 20
	DefaultSendBurst              = 40
)

// DefaultWebhookSecretGrace is how long a rotated-out webhook secret stays
// valid when Options sets no grace period.
const DefaultWebhookSecretGrace = 24 * time.Hour

// Sender sends an XMTP text message from a bridge identity. The runtime
// implements it by routing the request to the bridge's grain.
type Sender interface {
	// Send sends content from the bridge to the address to and returns the
	// id of the message that was published.
	Send(ctx context.Context, bridgeID, to, content string) (messageID string, err error)
}

// Instance is the live state of a bridge identity in the cluster.
type Instance struct {
	// Live is "online" when a node hosts the identity, else "offline".
	Live string
	// Node is the id of the node hosting it, when known.
	Node string
	// Since is when the hosting activation went live; zero when offline.
	Since time.Time
}

// InstanceStatus reports the live state of a bridge identity.
type InstanceStatus interface {
	InstanceStatus(ctx context.Context, bridgeID string) (Instance, error)
}

// BridgeEvents is told about changes to bridges made over the API, so the
// runtime can act at once instead of at its next reconcile. Each method is
// called after the change was stored; it must not fail the request, so it
// returns nothing and handles its own errors.
type BridgeEvents interface {
	// BridgeCreated is called after a bridge was created; the runtime
	// activates its identity.
	BridgeCreated(ctx context.Context, bridgeID string)
	// BridgeUpdated is called after a bridge's name, status or forward
	// configuration changed; the runtime starts or stops its identity
	// to match the status.
	BridgeUpdated(ctx context.Context, bridgeID string)
	// BridgeDeleted is called after a bridge was deleted; the runtime
	// stops its identity.
	BridgeDeleted(ctx context.Context, bridgeID string)
	// DeliveriesQueued is called after dead letters were put back in the
	// queue; the runtime wakes the identity's forward handler.
	DeliveriesQueued(ctx context.Context, bridgeID string)
}

// SystemIdentities are the addresses of the XMTP identities the system
// itself holds.
type SystemIdentities struct {
	// API is the API server's own identity: a message from it to a
	// bridge with the JSON content {targetAddress, message} makes the
	// bridge send message to targetAddress.
	API string
	// Canary is the identity the canary prober sends from.
	Canary string
}

// Options configures a Server.
type Options struct {
	// Store is the Postgres store. Required.
	Store *persistence.Store
	// Logger receives the server's logs. Required.
	Logger *slog.Logger
	// Registry serves /metrics and receives the server's own metrics.
	// Required.
	Registry *prometheus.Registry
	// Ready reports whether the node can serve; /readyz answers 503 while
	// it returns an error. When nil, readiness pings the store.
	Ready func(ctx context.Context) error
	// Dependencies names what Ready checks besides Postgres, as its
	// failures name them with DependencyDown, so that
	// bridge_dependency_up shows each one at 1 while it is up.
	Dependencies []string

	// SignupKey gates POST /v1/accounts (unless SignupOpen) and the
	// relaycc /signup endpoint. It never authorizes anything on a /v1
	// bridge. Empty disables those uses.
	SignupKey string
	// RelayccSharedKey keeps the relaycc seed's behaviour: the signup key
	// also authorizes /hook and /instance for bridges made by relaycc
	// /signup. Off by default; each bridge's hook token always works.
	RelayccSharedKey bool
	// TokenFailuresPerMinute limits failed /hook and /instance token
	// attempts per client address; 0 means DefaultTokenFailuresPerMinute.
	TokenFailuresPerMinute int
	// MaxBridgesPerAccount is the bridge quota of a /v1 account; 0 means
	// DefaultMaxBridgesPerAccount. System accounts (relaycc) have none.
	MaxBridgesPerAccount int
	// SendRatePerSecond and SendBurst are the token bucket of REST sends
	// per account (per bridge for relaycc bridges); 0 means
	// DefaultSendRatePerSecond and DefaultSendBurst.
	SendRatePerSecond int
	SendBurst         int
	// SignupOpen lets anyone create an account without the signup key.
	SignupOpen bool
	// SignupRatePerMinute limits signups per client IP; 0 means 10.
	SignupRatePerMinute int
	// AdminToken guards /v1/admin. Empty disables the admin endpoints.
	AdminToken string
	// AllowPrivateTargets lets forward URLs point at loopback, private and
	// other internal addresses. Only for development and tests.
	AllowPrivateTargets bool
	// MaxBodyBytes limits request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int
	// NodeID names this node in responses and logs.
	NodeID string
	// ProxyHeader names the header that carries the client IP when the
	// server runs behind a reverse proxy (for example X-Forwarded-For).
	// Empty uses the connection's address. Set it only behind a proxy that
	// overwrites the header, or clients can choose their own rate limit key.
	ProxyHeader string
	// TrustedProxies, when not empty, are the addresses and CIDRs of the
	// proxies whose ProxyHeader is believed; a request from any other peer
	// is keyed on its connection's address.
	TrustedProxies []string
	// WebhookSecretGrace is how long a rotated-out webhook secret stays
	// valid; 0 means DefaultWebhookSecretGrace.
	WebhookSecretGrace time.Duration

	// Sender sends messages through the reverse proxy. When nil, send
	// requests answer 503: this node cannot send.
	Sender Sender
	// Instances reports live bridge status for relaycc /instance. When nil,
	// the stored status is reported.
	Instances InstanceStatus
	// Events is told about bridge changes. When nil, nobody is told.
	Events BridgeEvents
	// Cluster serves the admin views of the cluster and node drains. When
	// nil, those endpoints answer 503.
	Cluster Cluster
	// Identities are the system identities' addresses, served at
	// /v1/system/identities.
	Identities SystemIdentities
	// Resolver resolves forward URL hosts for the SSRF check. When nil,
	// net.DefaultResolver is used.
	Resolver *net.Resolver

	// Plugins validates plug-in uploads. When nil, uploads answer 503.
	Plugins PluginValidator
	// MaxPluginBytes bounds a plug-in upload; 0 means
	// DefaultMaxPluginBytes.
	MaxPluginBytes int
	// MaxPluginsPerAccount is an account's plug-in quota; 0 means
	// DefaultMaxPluginsPerAccount.
	MaxPluginsPerAccount int
	// Live serves live consumers at /v1/bridges/:id/live. When nil, that
	// endpoint answers 503.
	Live LiveHub
	// LiveOptions tune the live sockets.
	LiveOptions LiveOptions
}

// Server is the HTTP front of one node.
type Server struct {
	opts    Options
	log     *slog.Logger
	app     *fiber.App
	metrics *metrics
	targets *targetPolicy
	live    liveSockets
}

// New builds a server and registers its routes and metrics.
func New(opts Options) (*Server, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("new http server: Store is required")
	case opts.Logger == nil:
		return nil, errors.New("new http server: Logger is required")
	case opts.Registry == nil:
		return nil, errors.New("new http server: Registry is required")
	case opts.MaxBodyBytes < 0:
		return nil, errors.New("new http server: MaxBodyBytes must not be negative")
	case opts.SignupRatePerMinute < 0:
		return nil, errors.New("new http server: SignupRatePerMinute must not be negative")
	case opts.TokenFailuresPerMinute < 0, opts.MaxBridgesPerAccount < 0, opts.SendRatePerSecond < 0, opts.SendBurst < 0:
		return nil, errors.New("new http server: quotas and limits must not be negative")
	}
	opts.TokenFailuresPerMinute = orDefault(opts.TokenFailuresPerMinute, DefaultTokenFailuresPerMinute)
	opts.MaxBridgesPerAccount = orDefault(opts.MaxBridgesPerAccount, DefaultMaxBridgesPerAccount)
	opts.SendRatePerSecond = orDefault(opts.SendRatePerSecond, DefaultSendRatePerSecond)
	opts.SendBurst = orDefault(opts.SendBurst, DefaultSendBurst)
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	opts.MaxPluginBytes = orDefault(opts.MaxPluginBytes, DefaultMaxPluginBytes)
	opts.MaxPluginsPerAccount = orDefault(opts.MaxPluginsPerAccount, DefaultMaxPluginsPerAccount)
	if opts.SignupRatePerMinute == 0 {
		opts.SignupRatePerMinute = 10
	}
	if opts.WebhookSecretGrace <= 0 {
		opts.WebhookSecretGrace = DefaultWebhookSecretGrace
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("new http server: %w", err)
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		metrics: m,
		targets: &targetPolicy{allowPrivate: opts.AllowPrivateTargets, resolver: opts.Resolver},
	}
	s.app = fiber.New(fiber.Config{
		AppName: "xmtpbridge",
		// fasthttp reads a body within BodyLimit before routing and
		// streams a larger or chunked one; bodyLimit then refuses it on
		// every route but the plug-in upload, which reads its stream
		// after the API key is checked.
		BodyLimit:                    opts.MaxBodyBytes,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		ErrorHandler:                 s.handleError,
		DisableStartupMessage:        true,
		Immutable:                    true,
		ReadTimeout:                  30 * time.Second,
		WriteTimeout:                 30 * time.Second,
		IdleTimeout:                  2 * time.Minute,
		StrictRouting:                true,
		CaseSensitive:                true,
		ProxyHeader:                  opts.ProxyHeader,
		// A header value that is not an IP address is ignored rather
		// than used as a rate-limit key.
		EnableIPValidation:      opts.ProxyHeader != "",
		EnableTrustedProxyCheck: len(opts.TrustedProxies) > 0,
		TrustedProxies:          opts.TrustedProxies,
	})
	s.routes()
	return s, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// App returns the Fiber application, for tests (app.Test).
func (s *Server) App() *fiber.App { return s.app }

// Listen serves on addr (host:port) until Shutdown.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return s.Serve(ln)
}

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("http server listening", "addr", ln.Addr().String())
	if err := s.app.Listener(ln); err != nil {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for requests in flight
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.live.closeAll()
	if err := s.app.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}

// routes registers every route. The OpenAPI test checks this list against
// openapi.json both ways.
func (s *Server) routes() {
	app := s.app
	app.Use(s.observe)
	app.Use(s.bodyLimit)

	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	app.Get("/metrics", s.metricsHandler())
	app.Get("/openapi.json", s.openAPI)

	signupLimit := s.signupLimiter()

	// relaycc-compatible endpoints.
	app.Post("/signup", signupLimit, s.relayccSignup)
	app.Post("/hook", s.relayccHook)
	app.Post("/instance", s.relayccInstance)
	app.Post("/canary", s.relayccCanary)

	v1 := app.Group("/v1")
	v1.Post("/accounts", signupLimit, s.createAccount)

	// Routes of an account; requireAPIKey runs per route, because a Fiber
	// group's middleware would cover every path under its prefix.
	auth := s.requireAPIKey
	v1.Get("/account", auth, s.getAccount)
	v1.Get("/api-keys", auth, s.listAPIKeys)
	v1.Post("/api-keys", auth, s.createAPIKey)
	v1.Delete("/api-keys/:id", auth, s.revokeAPIKey)
	v1.Post("/bridges", auth, s.createBridge)
	v1.Get("/bridges", auth, s.listBridges)
	v1.Get("/bridges/:id", auth, s.getBridge)
	v1.Patch("/bridges/:id", auth, s.updateBridge)
	v1.Delete("/bridges/:id", auth, s.deleteBridge)
	v1.Post("/bridges/:id/webhook-secret/rotate", auth, s.rotateWebhookSecret)
	v1.Post("/bridges/:id/messages", auth, s.sendMessage)
	v1.Get("/bridges/:id/messages", auth, s.listSentMessages)
	v1.Get("/bridges/:id/messages/:messageId", auth, s.getSentMessage)
	v1.Get("/bridges/:id/live", s.liveAuth, auth, s.liveConnect)
	v1.Get("/bridges/:id/subscribers", auth, s.listSubscribers)
	v1.Delete("/bridges/:id/subscribers/:address", auth, s.deleteSubscriber)
	v1.Post("/bridges/:id/broadcasts", auth, s.createBroadcast)
	v1.Get("/bridges/:id/broadcasts/:broadcastId", auth, s.getBroadcast)
	v1.Get("/bridges/:id/deliveries", auth, s.listDeliveries)
	v1.Get("/bridges/:id/deliveries/:deliveryId", auth, s.getDelivery)
	v1.Get("/bridges/:id/dead-letters", auth, s.listDeadLetters)
	v1.Post("/bridges/:id/dead-letters/:deliveryId/replay", auth, s.replayDeadLetter)
	v1.Put("/bridges/:id/plugins/:point", auth, s.bindPlugin)
	v1.Delete("/bridges/:id/plugins/:point", auth, s.unbindPlugin)
	v1.Post("/plugins", auth, s.uploadPlugin)
	v1.Get("/plugins", auth, s.listPlugins)
	v1.Delete("/plugins/:id", auth, s.deletePlugin)

	v1.Get("/system/identities", s.systemIdentities)

	v1.Get("/admin/accounts", s.requireAdmin, s.adminListAccounts)
	v1.Get("/admin/bridges", s.requireAdmin, s.adminListBridges)
	v1.Post("/admin/bridges/:id/move", s.requireAdmin, s.adminMoveBridge)
	v1.Get("/admin/cluster/members", s.requireAdmin, s.adminClusterMembers)
	v1.Get("/admin/cluster/placement", s.requireAdmin, s.adminClusterPlacement)
	v1.Post("/admin/nodes/:id/drain", s.requireAdmin, s.adminDrainNode)
}
