// Package api is a client of the XMTP message API v1 over gRPC. It works
// the same against the project's local node (xmtp/node) and against
// xmtp-node-go: publish with an optional auth token, query with paging,
// batch query, and a reconnecting Subscribe2 subscription that catches up
// on what it missed while disconnected.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	// pageSize is the page size of QueryAll and of catch-up queries; it is
	// the largest page xmtp-node-go serves.
	pageSize = 100
	// maxBatch is the most queries sent in one BatchQuery; xmtp-node-go
	// rejects more than 50.
	maxBatch = 50
	// maxMessageBytes bounds a message received from the node: a full
	// page of the largest envelopes.
	maxMessageBytes = 256 << 20
	// streamWindowBytes and connWindowBytes are the fixed gRPC
	// flow-control windows of a stream and of the connection (Dial).
	streamWindowBytes = 4 << 20
	connWindowBytes   = 16 << 20
)

// ErrClosed reports a call on a closed client.
var ErrClosed = errors.New("api client closed")

// Authorizer supplies the auth token sent with a publish.
type Authorizer interface {
	AuthToken(ctx context.Context) (string, error)
}

// Option configures Dial.
type Option func(*options)

type options struct {
	tls        *tls.Config
	logger     *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration
	settle     time.Duration
	skew       time.Duration
	buffer     int
	perStream  int
	// Bounds of the envelopes held per topic and per subscription
	// (hold.go).
	holdEnvelopes  int
	holdBytes      int
	holdTotalBytes int
	onConnected    func(connected bool)
	dialOpts       []grpc.DialOption
	// proofs: each topic set a subscription sends carries a proof topic
	// of its own, and one envelope is published to it with proofAuth
	// (proof.go).
	proofs    bool
	proofAuth Authorizer
}

// WithTLS makes the client use TLS with cfg instead of a plain connection.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithLogger sets the logger of the client and its subscriptions.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithReconnectBackoff sets the first and the longest wait between
// reconnection attempts of a subscription, and between its tries of a
// failing catch-up query; defaults 100ms and 10s. Each wait is drawn with
// jitter between half and all of the current step.
func WithReconnectBackoff(min, max time.Duration) Option {
	return func(o *options) { o.minBackoff, o.maxBackoff = min, max }
}

// WithClockSkew sets how far before the last seen timestamp of a topic the
// catch-up after a reconnection starts, to allow for senders' clocks;
// default 30s. Overlapping envelopes are delivered once.
func WithClockSkew(d time.Duration) Option { return func(o *options) { o.skew = d } }

// WithConnectionCallback registers fn, called with true each time a
// subscription becomes connected (all its streams established) and with
// false each time it stops being so. Calls for one subscription are
// sequential; fn must not block.
func WithConnectionCallback(fn func(connected bool)) Option {
	return func(o *options) { o.onConnected = fn }
}

// WithMaxTopicsPerStream sets how many topics one Subscribe2 stream
// carries; default 1000, the local node's default limit per request. A
// subscription with more topics opens one more stream per that many
// topics.
func WithMaxTopicsPerStream(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.perStream = n
		}
	}
}

// WithSetProofs makes every topic set a subscription sends prove itself:
// the set also carries a fresh, private proof topic, and the subscription
// publishes one small envelope to it, authorised by auth (nil: no token,
// for a node without authn). When the stream brings it back, the node has
// applied the set and every earlier one, so the holds of their topics end
// after one catch-up, and idle topics need no probes (proof.go). Each
// stream then carries one topic fewer than WithMaxTopicsPerStream. Without
// it, or while proof publishes fail, held topics are probed as before.
func WithSetProofs(auth Authorizer) Option {
	return func(o *options) { o.proofs, o.proofAuth = true, auth }
}

// WithDialOptions adds raw gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// Client is a message API v1 client. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	api  messagev1.MessageApiClient
	opts options
}

// Dial returns a client of the node at target ("host:port"). The
// connection is plain unless WithTLS is given, and is made lazily: a node
// that is down shows up as an Unavailable error on the first call.
func Dial(ctx context.Context, target string, opts ...Option) (*Client, error) {
	o := options{
		minBackoff: 100 * time.Millisecond,
		maxBackoff: 10 * time.Second,
		settle:     time.Second,
		skew:       30 * time.Second,
		buffer:     256,
		perStream:  1000,

		holdEnvelopes:  defaultHoldEnvelopes,
		holdBytes:      defaultHoldBytes,
		holdTotalBytes: defaultHoldTotalBytes,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes)),
		// Received messages are read into pooled buffers: every envelope
		// of the node's subscription would otherwise allocate its frame.
		// Unmarshalling copies what it keeps, so a buffer is free again
		// once its message is decoded.
		experimental.WithRecvBufferPool(grpc.NewSharedBufferPool()),
		// Fixed flow-control windows turn off gRPC's bandwidth-delay
		// estimator. With it, every data frame that arrives while no
		// estimate is under way sends a window update and a ping, whose
		// ack comes back at once on a near link: at a thousand envelopes
		// a second, thousands of frames and writes a second to measure a
		// link the fixed windows below already carry (4 MiB a stream,
		// 16 MiB the connection, what the estimator would grow them to
		// at most: 16 MiB). WithDialOptions may set others.
		grpc.WithInitialWindowSize(streamWindowBytes),
		grpc.WithInitialConnWindowSize(connWindowBytes),
	}, o.dialOpts...)
	conn, err := grpc.DialContext(ctx, target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("dial xmtp node %s: %w", target, err)
	}
	return &Client{conn: conn, api: messagev1.NewMessageApiClient(conn), opts: o}, nil
}

// Close closes the connection. Subscriptions of the client end.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("close xmtp connection: %w", err)
	}
	return nil
}

// Publish publishes envelopes. With a non-nil auth it sends
// "authorization: Bearer <token>" metadata, as nodes with authn require.
// Errors keep their gRPC status (status.Code works on them).
func (c *Client) Publish(ctx context.Context, auth Authorizer, envs ...*messagev1.Envelope) error {
	if auth != nil {
		token, err := auth.AuthToken(ctx)
		if err != nil {
			return fmt.Errorf("publish envelopes: get auth token: %w", err)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	req := &messagev1.PublishRequest{Envelopes: envs}
	for try := 0; ; try++ {
		_, err := c.api.Publish(ctx, req)
		if err == nil {
			return nil
		}
		if status.Code(err) != codes.Unavailable || try+1 >= publishTries {
			return fmt.Errorf("publish envelopes: %w", err)
		}
		// Unavailable is a node that is busy (it caps the publishes it
		// reads at once) or briefly unreachable. A publish stores the
		// same envelopes again at most, which the node keeps once, so
		// it is tried again a few times, a little later each time; a
		// longer outage is the caller's (the outbox retries).
		step := publishRetryStep << try
		select {
		case <-time.After(step/2 + rand.N(step/2+1)):
		case <-ctx.Done():
			return fmt.Errorf("publish envelopes: %w", err)
		}
	}
}

// A publish refused as Unavailable is tried publishTries times in all,
// waiting about publishRetryStep, then twice that, and so on, between
// tries (under a third of a second in all).
const (
	publishTries     = 6
	publishRetryStep = 10 * time.Millisecond
)

// Query runs one query request as given.
func (c *Client) Query(ctx context.Context, req *messagev1.QueryRequest) (*messagev1.QueryResponse, error) {
	resp, err := c.api.Query(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("query envelopes: %w", err)
	}
	return resp, nil
}

// QueryAll calls fn for every envelope of topic with a timestamp in
// [start, end] (0 leaves an end open), oldest first, paging through the
// whole range. An error from fn stops the walk and is returned.
func (c *Client) QueryAll(ctx context.Context, topic string, start, end uint64, fn func(*messagev1.Envelope) error) error {
	req := &messagev1.QueryRequest{
		ContentTopics: []string{topic},
		StartTimeNs:   start,
		EndTimeNs:     end,
		PagingInfo:    &messagev1.PagingInfo{Limit: pageSize, Direction: messagev1.SortDirection_SORT_DIRECTION_ASCENDING},
	}
	for {
		resp, err := c.Query(ctx, req)
		if err != nil {
			return err
		}
		for _, env := range resp.Envelopes {
			if err := fn(env); err != nil {
				return err
			}
		}
		cursor := resp.GetPagingInfo().GetCursor()
		if cursor == nil || len(resp.Envelopes) == 0 {
			return nil
		}
		req.PagingInfo.Cursor = cursor
	}
}

// BatchQuery runs several queries and returns their responses in order. It
// sends them in batches small enough for xmtp-node-go (50 queries) and for
// the topic limit set by WithMaxTopicsPerStream.
func (c *Client) BatchQuery(ctx context.Context, reqs []*messagev1.QueryRequest) ([]*messagev1.QueryResponse, error) {
	out := make([]*messagev1.QueryResponse, 0, len(reqs))
	for start := 0; start < len(reqs); {
		end, topics := start, 0
		for end < len(reqs) && end-start < maxBatch {
			n := len(reqs[end].GetContentTopics())
			if end > start && topics+n > c.opts.perStream {
				break
			}
			topics += n
			end++
		}
		chunk := reqs[start:end]
		start = end
		resp, err := c.api.BatchQuery(ctx, &messagev1.BatchQueryRequest{Requests: chunk})
		if err != nil {
			return nil, fmt.Errorf("batch query envelopes: %w", err)
		}
		if len(resp.Responses) != len(chunk) {
			return nil, fmt.Errorf("batch query envelopes: got %d responses for %d queries", len(resp.Responses), len(chunk))
		}
		out = append(out, resp.Responses...)
	}
	return out, nil
}
