package node

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Sizes that bound one request. A request body is never read past the
// largest valid request: a publish of the most envelopes, each of the
// largest size, in JSON (base64 message, escaped topic), or a query or
// subscription naming the most topics.
const (
	// envelopeJSONOverhead is the room one envelope needs in JSON besides
	// its base64 message: field names, a topic of which every byte may be
	// escaped, a timestamp, separators.
	envelopeJSONOverhead = 2*maxTopicBytes + 128
	// topicJSONOverhead is the room one topic of a query, a batch query or
	// a subscription needs, with the paging fields of its request.
	topicJSONOverhead = 2*maxTopicBytes + 256
	// requestJSONOverhead is the room of the request's own braces,
	// whitespace and fields.
	requestJSONOverhead = 4 << 10
)

// publishBodyLimit is the largest body of a valid publish.
func publishBodyLimit(cfg Config) int64 {
	per := int64(base64.StdEncoding.EncodedLen(cfg.MaxEnvelopeBytes)) + envelopeJSONOverhead
	return int64(cfg.MaxEnvelopesPerPublish)*per + requestJSONOverhead
}

// requestBodyLimit is the largest body of a valid query, batch query or
// subscription request.
func requestBodyLimit(cfg Config) int64 {
	return int64(cfg.MaxTopicsPerRequest)*topicJSONOverhead + requestJSONOverhead
}

// publishBudget counts the publishes the node's gRPC listener is reading
// or handling for clients other than its gateway. gRPC reads a request
// whole, up to the largest valid publish, before any handler sees it, and
// a token proves only that its sender has a key, which anyone can make;
// so the count of such calls, times the largest publish, is what bounds
// the memory they hold. A call over the cap is refused rather than made
// to wait: the tap that admits it runs on the connection's reader, and
// waiting there would stall every other call of the connection.
type publishBudget struct {
	mu    sync.Mutex
	held  int
	limit int
}

// admit takes a slot, or reports that none is free. release gives it
// back; it may be called more than once.
func (b *publishBudget) admit() (release func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held >= b.limit {
		return nil, false
	}
	b.held++
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.held--
			b.mu.Unlock()
		})
	}, true
}

// inFlight returns the slots taken.
func (b *publishBudget) inFlight() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

// Reasons a subscription is refused, used as the reason label of
// bridge_xmtpnode_subscriptions_refused_total.
const (
	refusedPerClient = "per_client"
	refusedNodeTotal = "node_total"
)

// subscriptionLimits counts the open subscription streams, per client
// address and in total. An entry exists only while its client holds a
// stream, so the map never outgrows the open streams.
type subscriptionLimits struct {
	maxPerClient int
	maxTotal     int

	mu       sync.Mutex
	total    int
	byClient map[string]int
}

func newSubscriptionLimits(perClient, total int) *subscriptionLimits {
	return &subscriptionLimits{maxPerClient: perClient, maxTotal: total, byClient: map[string]int{}}
}

// acquire takes a stream slot for client. It returns a release function
// to call once when the stream ends, or the refusal reason and message.
func (l *subscriptionLimits) acquire(client string) (release func(), reason, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal {
		return nil, refusedNodeTotal, fmt.Sprintf("too many subscriptions on this node (limit %d)", l.maxTotal)
	}
	if l.byClient[client] >= l.maxPerClient {
		return nil, refusedPerClient, fmt.Sprintf("too many subscriptions from this client (limit %d)", l.maxPerClient)
	}
	l.total++
	l.byClient[client]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.byClient[client]--; l.byClient[client] <= 0 {
				delete(l.byClient, client)
			}
		})
	}, "", ""
}

// open returns the number of open streams and of clients holding one.
func (l *subscriptionLimits) open() (streams, clients int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, len(l.byClient)
}

// Metadata the gateway adds to the calls it forwards to the node's own
// gRPC listener. The node believes the client address and wallet only
// next to the gateway's secret, which is random per node and never leaves
// the process; the gateway never forwards client headers with these
// names.
const (
	mdPrefix  = "x-xmtpnode-"
	mdGateway = mdPrefix + "gateway"
	mdClient  = mdPrefix + "client"
	mdWallet  = mdPrefix + "wallet"
)

// clientOf returns the key a gRPC call counts against: the HTTP client's
// address for a call forwarded by the gateway, otherwise the peer's IP.
func (n *Node) clientOf(ctx context.Context) string {
	if md, _ := metadata.FromIncomingContext(ctx); n.trustedGateway(md) {
		if c := md.Get(mdClient); len(c) == 1 && c[0] != "" {
			return c[0]
		}
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	return hostOf(p.Addr.String())
}

// hostOf returns the host part of a host:port address, or addr itself.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
