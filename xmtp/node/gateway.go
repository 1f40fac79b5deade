package node

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// clientHeaders are the XMTP client headers passed from HTTP to gRPC
// metadata under their own names. Authorization is always passed by the
// gateway as "authorization".
var clientHeaders = map[string]bool{
	"x-app-version":     true,
	"x-client-version":  true,
	"x-libxmtp-version": true,
}

// newGateway returns the HTTP/JSON handler: the official message API
// gateway, registered against conn (a connection back to the node's own
// gRPC listener, so that streams work), wrapped for CORS and gzip.
func newGateway(ctx context.Context, conn *grpc.ClientConn, maxBody int64) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithIncomingHeaderMatcher(matchIncomingHeader),
		runtime.WithForwardResponseOption(flushStreamStart),
	)
	if err := messagev1.RegisterMessageApiHandler(ctx, mux, conn); err != nil {
		return nil, err
	}
	return allowCORS(limitBody(gzipQueries(mux), maxBody)), nil
}

func matchIncomingHeader(key string) (string, bool) {
	if clientHeaders[strings.ToLower(key)] {
		return strings.ToLower(key), true
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

func limitBody(h http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, max)
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
