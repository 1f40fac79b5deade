// Package node is the local XMTP node: a message API v1 server that stores
// envelopes in Postgres and serves them over gRPC and over the HTTP/JSON
// gateway that JavaScript clients use, compatible with xmtp-node-go as
// xmtp-js 12 uses it.
//
// Envelopes are stored first and handed to live subscribers of the same
// process after the transaction commits. Each subscriber has a buffer
// bounded in envelopes and in bytes; one that falls behind is cut off with
// ResourceExhausted and never slows publishers or other subscribers.
//
// Hostile input is bounded before it costs memory: a request body (HTTP)
// or message (gRPC) is never read past the largest valid request, a
// publish without a valid token on a node with authn ends when its headers
// arrive, and subscriptions are capped per client address and per node.
package node

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Config configures a Node. Zero values take the defaults.
type Config struct {
	// DatabaseURL is the Postgres database holding the envelopes.
	DatabaseURL string
	// GRPCAddr is the gRPC listen address; default 127.0.0.1:5556.
	GRPCAddr string
	// HTTPAddr is the HTTP/JSON gateway listen address; default
	// 127.0.0.1:5555.
	HTTPAddr string
	// Authn makes Publish require a valid "Authorization: Bearer" token and
	// restricts contact and private-store topics to their own wallet.
	Authn bool
	// MaxEnvelopeBytes bounds an envelope's message; default 1 MiB.
	MaxEnvelopeBytes int
	// MaxTopicsPerRequest bounds the topics of a query or subscription
	// request and the queries of a batch; default 1000. The api client
	// spreads a larger topic set over several Subscribe2 streams
	// (api.WithMaxTopicsPerStream).
	MaxTopicsPerRequest int
	// MaxEnvelopesPerPublish bounds the envelopes of one publish; default
	// 16. With MaxEnvelopeBytes it sets the largest publish body the
	// gateway reads and the largest gRPC message the node receives.
	MaxEnvelopesPerPublish int
	// SubscriberBufferBytes bounds the bytes of envelopes waiting for one
	// subscriber; one that falls further behind is cut off. Default 8 MiB,
	// and never less than one envelope of MaxEnvelopeBytes.
	SubscriberBufferBytes int
	// MaxPublishesInFlight caps the publishes the node's gRPC listener
	// reads and handles at once for clients other than its own gateway
	// (which has its own budget). gRPC reads a message whole before any
	// handler runs, up to the largest valid publish, so this many times
	// that size bounds the memory direct publishes can hold; a publish
	// past the cap is refused at once with Unavailable. Default 256: a node serving many bridges and senders keeps more than a hundred publishes in flight, and the bound, 256 of the largest publish, is one an operator tightens with this or with the envelope limits.
	MaxPublishesInFlight int
	// MaxSubscriptionsPerClient caps the open subscription streams of one
	// client address (the HTTP client's for the gateway); default 256.
	MaxSubscriptionsPerClient int
	// MaxSubscriptions caps the node's open subscription streams; default
	// 10000.
	MaxSubscriptions int
	// MaxConns caps the connections of the node's Postgres pool; default
	// 16. pgx's own default, four on a machine with two cores or fewer,
	// kept the queries and publishes of thousands of identities
	// activating at once waiting for a connection. It overrides a
	// pool_max_conns in DatabaseURL.
	MaxConns int
	// StreamWriteTimeout bounds each write of a gateway subscription
	// stream; a client that reads nothing for that long is disconnected.
	// Default 10s.
	StreamWriteTimeout time.Duration
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the node's metrics; nil keeps them private.
	Registerer prometheus.Registerer
}

// Defaults of Config.
const (
	DefaultGRPCAddr             = "127.0.0.1:5556"
	DefaultHTTPAddr             = "127.0.0.1:5555"
	DefaultMaxEnvelopeBytes     = 1 << 20
	DefaultMaxTopicsPerRequest  = 1000
	DefaultMaxEnvelopesPerPub   = 16
	DefaultSubscriberBytes      = 8 << 20
	DefaultMaxSubsPerClient     = 256
	DefaultMaxPublishesInFlight = 256
	DefaultMaxSubscriptions     = 10_000
	DefaultMaxConns             = 16
	DefaultStreamWriteTimeout   = 10 * time.Second
	// defaultSubscriberBuffer is how many envelopes may wait for one
	// subscriber before it is cut off.
	defaultSubscriberBuffer = 1024
)

// ErrNoDatabase reports a Config without a DatabaseURL.
var ErrNoDatabase = errors.New("node config: DatabaseURL is empty")

// ErrNotStarted reports a call that needs a started node.
var ErrNotStarted = errors.New("node not started")

// Node is one local XMTP node. Start it once, and Stop it once.
type Node struct {
	cfg              Config
	log              *slog.Logger
	metrics          *metrics
	fanout           *fanout
	limits           *subscriptionLimits
	publishes        *publishBudget
	svc              *service
	subscriberBuffer int
	subscriberBytes  int64
	// publishWait and publishReadTimeout bound a gateway publish's wait
	// for decoding room and the arrival of its body.
	publishWait        time.Duration
	publishReadTimeout time.Duration
	// gatewaySecret marks the gateway's calls to the node's own gRPC
	// listener; see trustedGateway.
	gatewaySecret string

	mu         sync.Mutex
	store      *store
	grpcServer *grpc.Server
	grpcLis    net.Listener
	httpServer *http.Server
	httpLis    net.Listener
	gwConn     *grpc.ClientConn
	gw         *gateway
	closing    chan struct{}
	wg         sync.WaitGroup
	started    bool
	stopped    bool
}

// New checks cfg, fills in its defaults and returns a node that is not
// listening yet.
func New(cfg Config) (*Node, error) {
	if cfg.DatabaseURL == "" {
		return nil, ErrNoDatabase
	}
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = DefaultGRPCAddr
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	if cfg.MaxEnvelopeBytes <= 0 {
		cfg.MaxEnvelopeBytes = DefaultMaxEnvelopeBytes
	}
	if cfg.MaxTopicsPerRequest <= 0 {
		cfg.MaxTopicsPerRequest = DefaultMaxTopicsPerRequest
	}
	if cfg.MaxEnvelopesPerPublish <= 0 {
		cfg.MaxEnvelopesPerPublish = DefaultMaxEnvelopesPerPub
	}
	if cfg.SubscriberBufferBytes <= 0 {
		cfg.SubscriberBufferBytes = DefaultSubscriberBytes
	}
	cfg.SubscriberBufferBytes = max(cfg.SubscriberBufferBytes, cfg.MaxEnvelopeBytes+maxTopicBytes+64)
	if cfg.MaxSubscriptionsPerClient <= 0 {
		cfg.MaxSubscriptionsPerClient = DefaultMaxSubsPerClient
	}
	if cfg.MaxPublishesInFlight <= 0 {
		cfg.MaxPublishesInFlight = DefaultMaxPublishesInFlight
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register node metrics: %w", err)
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("make gateway secret: %w", err)
	}
	n := &Node{
		cfg:                cfg,
		log:                cfg.Logger,
		metrics:            m,
		limits:             newSubscriptionLimits(cfg.MaxSubscriptionsPerClient, cfg.MaxSubscriptions),
		publishes:          &publishBudget{limit: cfg.MaxPublishesInFlight},
		subscriberBuffer:   defaultSubscriberBuffer,
		subscriberBytes:    int64(cfg.SubscriberBufferBytes),
		publishWait:        defaultPublishWait,
		publishReadTimeout: defaultPublishReadTimeout,
		gatewaySecret:      hex.EncodeToString(secret),
		closing:            make(chan struct{}),
	}
	n.svc = &service{n: n, tokens: newTokenCache(maxCachedTokens)}
	n.fanout = newFanout(m.cutOff.Inc)
	n.fanout.onDrop = m.ephemeralDropped.Inc
	return n, nil
}

// maxSendBytes bounds one gRPC message the node sends: a full page of
// query results.
func (n *Node) maxSendBytes() int {
	return max(16<<20, defaultPageSize*(n.cfg.MaxEnvelopeBytes+1024))
}

// maxRecvBytes bounds one gRPC message the node receives: the largest
// valid request, as for the gateway's bodies (protobuf is never larger
// than the JSON of the same request).
func (n *Node) maxRecvBytes() int {
	return int(max(publishBodyLimit(n.cfg), requestBodyLimit(n.cfg)))
}

// trustedGateway reports whether md carries the gateway's secret.
func (n *Node) trustedGateway(md metadata.MD) bool {
	got := md.Get(mdGateway)
	return len(got) == 1 && subtle.ConstantTimeCompare([]byte(got[0]), []byte(n.gatewaySecret)) == 1
}

// Start migrates the database, opens the pool, and starts the gRPC server
// and the HTTP gateway. It returns once both listeners accept connections.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return errors.New("start node: already started")
	}
	n.started = true
	if err := Migrate(ctx, n.cfg.DatabaseURL); err != nil {
		return fmt.Errorf("start node: migrate: %w", err)
	}
	poolCfg, err := pgxpool.ParseConfig(n.cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("start node: parse database url: %w", err)
	}
	poolCfg.MaxConns = int32(min(n.cfg.MaxConns, 1<<20))
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("start node: open pool: %w", err)
	}
	n.store = &store{pool: pool}
	if err := n.store.ping(ctx); err != nil {
		pool.Close()
		return fmt.Errorf("start node: %w", err)
	}

	grpcLis, err := net.Listen("tcp", n.cfg.GRPCAddr)
	if err != nil {
		pool.Close()
		return fmt.Errorf("start node: listen grpc: %w", err)
	}
	n.grpcLis = grpcLis
	n.grpcServer = grpc.NewServer(
		grpc.MaxRecvMsgSize(n.maxRecvBytes()),
		grpc.MaxSendMsgSize(n.maxSendBytes()),
		grpc.InTapHandle(n.svc.tap),
		// Fixed flow-control windows turn off gRPC's bandwidth-delay
		// estimator, which on a near link pings a client for nearly
		// every data frame it sends (a publish), and the client acks
		// each: a frame to read and one to write per message on both
		// sides. A stream may send 1 MiB, a connection 4 MiB, before the
		// node's reads open them again.
		grpc.InitialWindowSize(1<<20),
		grpc.InitialConnWindowSize(4<<20),
	)
	messagev1.RegisterMessageApiServer(n.grpcServer, n.svc)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.grpcServer.Serve(grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("serve grpc", "err", err)
		}
	}()

	// The gateway's own connection has fixed flow-control windows: an HTTP
	// Subscribe2 client that stops reading leaves at most one window of
	// envelopes in the gateway, not the growing window of a fast link.
	conn, err := grpc.Dial("passthrough:///"+grpcLis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10),
		grpc.WithInitialConnWindowSize(4<<20),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(n.maxSendBytes()),
			grpc.MaxCallSendMsgSize(n.maxRecvBytes()),
		),
	)
	if err != nil {
		n.abortStart()
		return fmt.Errorf("start node: dial own grpc: %w", err)
	}
	n.gwConn = conn
	handler, err := newGateway(context.Background(), n, n.svc, conn)
	if err != nil {
		n.abortStart()
		return fmt.Errorf("start node: register gateway: %w", err)
	}
	httpLis, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		n.abortStart()
		return fmt.Errorf("start node: listen http: %w", err)
	}
	n.httpLis = httpLis
	n.httpServer = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.httpServer.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("serve http", "err", err)
		}
	}()
	n.log.Info("xmtp node started", "grpc", grpcLis.Addr().String(), "http", httpLis.Addr().String())
	return nil
}

// abortStart undoes a partial Start; n.mu is held.
func (n *Node) abortStart() {
	if n.gwConn != nil {
		n.gwConn.Close()
	}
	n.grpcServer.Stop()
	n.wg.Wait()
	n.store.pool.Close()
	n.stopped = true
}

// GRPCAddr returns the address the gRPC server listens on, or "" before
// Start.
func (n *Node) GRPCAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.grpcLis == nil {
		return ""
	}
	return n.grpcLis.Addr().String()
}

// HTTPAddr returns the address the HTTP gateway listens on, or "" before
// Start.
func (n *Node) HTTPAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.httpLis == nil {
		return ""
	}
	return n.httpLis.Addr().String()
}

// Ready returns nil while the node is started and Postgres answers.
func (n *Node) Ready(ctx context.Context) error {
	n.mu.Lock()
	st, stopped := n.store, n.stopped
	n.mu.Unlock()
	if st == nil || stopped {
		return ErrNotStarted
	}
	return st.ping(ctx)
}

// Stop ends every subscription stream, lets unary calls in flight finish
// until ctx ends, closes both listeners and the database pool.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started || n.stopped {
		return nil
	}
	n.stopped = true
	close(n.closing)

	var errs []error
	if err := n.httpServer.Shutdown(ctx); err != nil {
		n.httpServer.Close()
		errs = append(errs, fmt.Errorf("stop http: %w", err))
	}
	n.gwConn.Close()
	done := make(chan struct{})
	go func() {
		n.grpcServer.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		n.grpcServer.Stop()
		<-done
		errs = append(errs, fmt.Errorf("stop grpc: %w", ctx.Err()))
	}
	n.wg.Wait()
	n.store.pool.Close()
	n.log.Info("xmtp node stopped")
	return errors.Join(errs...)
}
