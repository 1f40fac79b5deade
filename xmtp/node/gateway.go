package node

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Gateway paths handled before the grpc-gateway mux.
const (
	pathPublish      = "/message/v1/publish"
	pathSubscribe    = "/message/v1/subscribe"
	pathSubscribeAll = "/message/v1/subscribe-all"
)

// clientHeaders are the XMTP client headers passed from HTTP to gRPC
// metadata under their own names. Authorization is always passed by the
// gateway as "authorization".
var clientHeaders = map[string]bool{
	"x-app-version":     true,
	"x-client-version":  true,
	"x-libxmtp-version": true,
}

// gateway is the HTTP/JSON handler. Before anything is decoded it bounds
// the request body to the largest valid request of its path (413 past
// that), on a node with authn checks a publish's token (401 without a
// valid one), and makes a publish wait for room in the bytes being decoded
// at once (503 when none comes). An HTTP Subscribe2 stream shares one
// request limit across all the topic updates of its body. Subscriptions are streamed from the fan-out directly, so
// that a client that stops reading holds no more than its byte budget;
// every other call goes through the official message API gateway to the
// node's own gRPC listener, with the client's address and verified wallet
// in metadata that only the gateway can set.
type gateway struct {
	n            *Node
	svc          *service
	mux          *runtime.ServeMux
	next         http.Handler
	publishLimit int64
	requestLimit int64
	// decoding bounds the body bytes of the publishes being read and
	// decoded at once; see admitPublish.
	decoding *semaphore.Weighted
}

// Bounds of the publishes in flight. A token proves only that its sender
// has a key, which anyone can make, so the gateway also bounds how many
// body bytes all publishes together may be reading and decoding at once:
// room for publishesInFlight of the largest. A publish waits for room
// (Node.publishWait at most, then 503), and its body must arrive within
// Node.publishReadTimeout so that slow senders cannot hold the room.
const (
	publishesInFlight         = 2
	defaultPublishWait        = 30 * time.Second
	defaultPublishReadTimeout = 30 * time.Second
)

// requestState is what the gateway learned about one request before
// handing it on.
type requestState struct {
	client   string
	wallet   string
	limit    int64
	tooLarge atomic.Bool
}

type requestStateKey struct{}

func stateOf(r *http.Request) *requestState {
	st, _ := r.Context().Value(requestStateKey{}).(*requestState)
	return st
}

// errBodyTooLarge ends the read of a body past its limit.
var errBodyTooLarge = errors.New("request body too large")

// limitedBody reads at most limit bytes of a body and marks the request
// too large when there is more.
type limitedBody struct {
	io.ReadCloser
	left  int64
	state *requestState
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.state.tooLarge.Load() {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if int64(n) > b.left {
		b.state.tooLarge.Store(true)
		n, b.left = int(b.left), 0
		return n, errBodyTooLarge
	}
	b.left -= int64(n)
	return n, err
}

// newGateway returns the HTTP/JSON handler of node n, whose gRPC calls go
// over conn (a connection back to the node's own gRPC listener, so that
// streams work), wrapped for CORS and gzip.
func newGateway(ctx context.Context, n *Node, svc *service, conn *grpc.ClientConn) (http.Handler, error) {
	g := &gateway{
		n:            n,
		svc:          svc,
		publishLimit: publishBodyLimit(n.cfg),
		requestLimit: requestBodyLimit(n.cfg),
	}
	g.decoding = semaphore.NewWeighted(publishesInFlight * g.publishLimit)
	g.mux = runtime.NewServeMux(
		runtime.WithIncomingHeaderMatcher(matchIncomingHeader),
		runtime.WithForwardResponseOption(flushStreamStart),
		runtime.WithMetadata(g.forwardedMetadata),
		runtime.WithErrorHandler(g.handleError),
	)
	if err := messagev1.RegisterMessageApiHandler(ctx, g.mux, conn); err != nil {
		return nil, err
	}
	g.next = gzipQueries(g.mux)
	n.gw = g
	return allowCORS(g), nil
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	limit := g.requestLimit
	if r.URL.Path == pathPublish {
		limit = g.publishLimit
	}
	state := &requestState{client: hostOf(r.RemoteAddr), limit: limit}
	if r.ContentLength > limit {
		g.tooLarge(w, r, state)
		return
	}
	r.Body = &limitedBody{ReadCloser: r.Body, left: limit, state: state}
	if r.URL.Path == pathPublish && r.Method == http.MethodPost && g.n.cfg.Authn {
		wallet, st := g.svc.authenticate(r.Header.Values("Authorization"))
		if st != nil {
			g.writeStatus(w, r, http.StatusUnauthorized, st)
			return
		}
		state.wallet = wallet
	}
	if r.URL.Path == pathPublish && r.Method == http.MethodPost {
		done, ok := g.admitPublish(w, r, state)
		if !ok {
			return
		}
		defer done()
	}
	r = r.WithContext(context.WithValue(r.Context(), requestStateKey{}, state))
	if r.Method == http.MethodPost {
		switch r.URL.Path {
		case pathSubscribe:
			g.subscribe(w, r, state, false)
			return
		case pathSubscribeAll:
			g.subscribe(w, r, state, true)
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

// admitPublish waits until the publish's body fits in the decoding
// budget, weighed by its Content-Length (the limit when it has none), and
// gives the body publishReadTimeout to arrive. It answers 503 when there
// is no room within publishWait. done releases the room.
func (g *gateway) admitPublish(w http.ResponseWriter, r *http.Request, state *requestState) (done func(), ok bool) {
	weight := state.limit
	if r.ContentLength >= 0 {
		weight = max(r.ContentLength, 1)
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.n.publishWait)
	defer cancel()
	if err := g.decoding.Acquire(ctx, weight); err != nil {
		if r.Context().Err() == nil {
			g.n.metrics.rejected.WithLabelValues(reasonBusy).Inc()
			g.writeStatus(w, r, http.StatusServiceUnavailable, status.New(codes.Unavailable, "too many large publishes in flight; retry later"))
		}
		return nil, false
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(g.n.publishReadTimeout))
	return func() {
		_ = rc.SetReadDeadline(time.Time{})
		g.decoding.Release(weight)
	}, true
}

// tooLarge answers 413 for a body past its limit and closes the
// connection, whose rest of the body is never read.
func (g *gateway) tooLarge(w http.ResponseWriter, r *http.Request, state *requestState) {
	g.n.metrics.rejected.WithLabelValues(reasonBodyTooLarge).Inc()
	w.Header().Set("Connection", "close")
	g.writeStatus(w, r, http.StatusRequestEntityTooLarge, status.New(codes.InvalidArgument,
		fmt.Sprintf("request body too large: the limit of %s is %d bytes", r.URL.Path, state.limit)))
}

// writeStatus writes st in the gateway's error format with HTTP status
// code.
func (g *gateway) writeStatus(w http.ResponseWriter, r *http.Request, code int, st *status.Status) {
	_, out := runtime.MarshalerForRequest(g.mux, r)
	buf, err := out.Marshal(st.Proto())
	if err != nil {
		buf = []byte(`{"code":13,"message":"marshal error"}`)
	}
	w.Header().Set("Content-Type", out.ContentType(st.Proto()))
	w.WriteHeader(code)
	_, _ = w.Write(buf)
}

// handleError is the mux's error handler: a body that hit its limit while
// the gateway decoded it is a 413, everything else the default answer.
func (g *gateway) handleError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if st := stateOf(r); st != nil && st.tooLarge.Load() {
		g.tooLarge(w, r, st)
		return
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// forwardedMetadata tells the node's gRPC side who the HTTP client is.
func (g *gateway) forwardedMetadata(_ context.Context, r *http.Request) metadata.MD {
	st := stateOf(r)
	if st == nil {
		return metadata.Pairs(mdGateway, g.n.gatewaySecret, mdClient, hostOf(r.RemoteAddr))
	}
	md := metadata.Pairs(mdGateway, g.n.gatewaySecret, mdClient, st.client)
	if st.wallet != "" {
		md.Set(mdWallet, st.wallet)
	}
	return md
}

// matchIncomingHeader passes the XMTP client headers and the gateway's
// defaults, but never a client's attempt at the gateway's own metadata.
func matchIncomingHeader(key string) (string, bool) {
	lower := strings.ToLower(key)
	if clientHeaders[lower] {
		return lower, true
	}
	if strings.HasPrefix(lower, strings.ToLower(runtime.MetadataHeaderPrefix)+mdPrefix) {
		return "", false
	}
	return runtime.DefaultHeaderMatcher(key)
}

// flushStreamStart sends the response headers of a stream as soon as the
// gRPC side has sent its own, before the first envelope. The gateway calls
// forward-response options with a nil message only at the start of a
// stream.
func flushStreamStart(_ context.Context, w http.ResponseWriter, resp proto.Message) error {
	if resp != nil {
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// corsHeaders are the request headers browsers may send, as xmtp-node-go
// lists them.
const corsHeaders = "Content-Type,Accept,Authorization,X-App-Version,X-Client-Version,X-Libxmtp-Version,Baggage,DNT,Sec-CH-UA,Sec-CH-UA-Mobile,Sec-CH-UA-Platform,Sentry-Trace,User-Agent"

func allowCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Headers", corsHeaders)
			w.Header().Set("Access-Control-Allow-Methods", "GET,HEAD,POST,PUT,PATCH,DELETE")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// gzipQueries compresses query answers when the client accepts gzip.
// Streams are never compressed: many clients buffer a compressed stream
// and would not see envelopes as they arrive.
func gzipQueries(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !(strings.HasSuffix(r.URL.Path, "/query") || strings.HasSuffix(r.URL.Path, "/batch-query")) ||
			!strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		gz := gzip.NewWriter(w)
		defer gz.Close()
		h.ServeHTTP(&gzipWriter{ResponseWriter: w, w: gz}, r)
	})
}

type gzipWriter struct {
	http.ResponseWriter
	w io.Writer
}

// Write drops the Content-Length of the uncompressed body that newer
// gateways set before their first write, without calling WriteHeader.
func (g *gzipWriter) Write(b []byte) (int, error) {
	g.ResponseWriter.Header().Del("Content-Length")
	return g.w.Write(b)
}

// WriteHeader drops the Content-Length the gateway may set for the
// uncompressed body.
func (g *gzipWriter) WriteHeader(code int) {
	g.ResponseWriter.Header().Del("Content-Length")
	g.ResponseWriter.WriteHeader(code)
}
