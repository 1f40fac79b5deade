package node

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/xmtp/keys"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// gatewayStatus is the gateway's JSON error.
type gatewayStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// countingReader yields n bytes of filler and counts what was read.
type countingReader struct {
	left int64
	read atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	for i := range p {
		p[i] = ' '
	}
	c.left -= int64(len(p))
	c.read.Add(int64(len(p)))
	return len(p), nil
}

// publishBody is a valid publish of count envelopes of size bytes each on
// topic.
func publishBody(topic string, count, size int) string {
	msg := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("m", size)))
	var b strings.Builder
	b.WriteString(`{"envelopes":[`)
	for i := 0; i < count; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"contentTopic":%q,"timestampNs":"%d","message":"%s"}`, topic, i+1, msg)
	}
	b.WriteString(`]}`)
	return b.String()
}

func TestGatewayBodyLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{MaxEnvelopeBytes: 4096, MaxEnvelopesPerPublish: 4, MaxTopicsPerRequest: 10, Registerer: reg}
	n := startNode(t, testDatabase(t), cfg, nil)
	tooLarge := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "bridge_xmtpnode_requests_rejected_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "reason" && l.GetValue() == reasonBodyTooLarge {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	ctx := testkit.Context(t, 30*time.Second)
	limit := publishBodyLimit(n.cfg)

	// The largest valid publish fits: the most envelopes, each of the
	// largest size, on the longest topic.
	long := "/xmtp/0/" + strings.Repeat("a", maxTopicBytes-len("/xmtp/0/")-len("/proto")) + "/proto"
	body := publishBody(long, 4, 4096)
	if int64(len(body)) > limit {
		t.Fatalf("largest valid publish is %d bytes, over the limit %d", len(body), limit)
	}
	resp := postJSON(t, ctx, n, pathPublish, body, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("largest valid publish: status %d", resp.StatusCode)
	}

	cases := []struct {
		name, path string
		chunked    bool
		size       int64
	}{
		{"publish with a content length", pathPublish, false, limit + 1},
		{"chunked publish", pathPublish, true, 50 * limit},
		{"query", "/message/v1/query", true, requestBodyLimit(n.cfg) + 1},
		{"batch query", "/message/v1/batch-query", false, requestBodyLimit(n.cfg) + 1},
		{"subscribe", pathSubscribe, true, requestBodyLimit(n.cfg) + 1},
	}
	for _, tc := range cases {
		src := &countingReader{left: tc.size}
		var rd io.Reader = src
		if !tc.chunked {
			rd = io.LimitReader(src, tc.size) // a *LimitedReader: no length known
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.HTTPAddr()+tc.path, rd)
		if !tc.chunked {
			req.ContentLength = tc.size
		}
		before := tooLarge()
		resp, err := http.DefaultClient.Do(req)
		if err != nil && tc.chunked && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
			// The node answered 413 and closed while the client was still
			// writing, so the client saw the reset before the answer: the
			// refusal shows in the node's count and in what it read.
			if tooLarge() != before+1 {
				t.Fatalf("%s: %v, and the node did not count a body_too_large refusal", tc.name, err)
			}
			if got := src.read.Load(); got > limit+4<<20 {
				t.Errorf("%s: client sent %d bytes of %d", tc.name, got, tc.size)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var st gatewayStatus
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			resp.Body.Close()
			t.Fatalf("%s: status %d, want 413", tc.name, resp.StatusCode)
		}
		readJSON(t, resp, &st)
		if st.Code != int(codes.InvalidArgument) || !strings.Contains(st.Message, "request body too large") {
			t.Fatalf("%s: error %+v", tc.name, st)
		}
		// The node stopped reading near the limit (the client may have
		// sent a little more into the socket before it saw the answer).
		if got := src.read.Load(); got > limit+4<<20 {
			t.Errorf("%s: client sent %d bytes of %d", tc.name, got, tc.size)
		}
	}
	if got := metricValue(t, n.metrics.rejected.WithLabelValues(reasonBodyTooLarge)); got != float64(len(cases)) {
		t.Errorf("body too large rejections: got %v want %d", got, len(cases))
	}

	// gRPC has the same bound.
	c := dialNode(t, n.GRPCAddr(), grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20)))
	huge := make([]*messagev1.Envelope, 4)
	for i := range huge {
		huge[i] = &messagev1.Envelope{ContentTopic: topic("huge"), TimestampNs: 1, Message: make([]byte, int(limit))}
	}
	if _, err := c.Publish(ctx, &messagev1.PublishRequest{Envelopes: huge}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized grpc publish: got %v, want ResourceExhausted", err)
	}
}

func TestPublishTokenCheckedBeforeBody(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{Authn: true}, nil)
	ctx := testkit.Context(t, 30*time.Second)
	me, err := keys.Generate()
	if err != nil {
		t.Fatalf("generate bundle: %v", err)
	}
	token, err := me.AuthToken(time.Now())
	if err != nil {
		t.Fatalf("auth token: %v", err)
	}

	// A body far larger than any valid publish, with no token or a bad
	// one: the answer is 401 and the node reads almost none of it.
	for _, auth := range []string{"", "Bearer bm90IGEgdG9rZW4="} {
		src := &countingReader{left: 1 << 30}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.HTTPAddr()+pathPublish, src)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		// Forged gateway metadata changes nothing.
		req.Header.Set("Grpc-Metadata-X-Xmtpnode-Wallet", me.Address())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("publish %q: %v", auth, err)
		}
		var st gatewayStatus
		if resp.StatusCode != http.StatusUnauthorized {
			resp.Body.Close()
			t.Fatalf("publish %q: status %d", auth, resp.StatusCode)
		}
		readJSON(t, resp, &st)
		if st.Code != int(codes.Unauthenticated) {
			t.Fatalf("publish %q: %+v", auth, st)
		}
		if got := src.read.Load(); got > 8<<20 {
			t.Errorf("publish %q: client sent %d bytes before the answer", auth, got)
		}
	}

	// Over gRPC the check runs when the headers arrive, and forged
	// gateway metadata does not pass for a token.
	c := dialNode(t, n.GRPCAddr())
	forged := metadata.AppendToOutgoingContext(ctx, mdGateway, "guess", mdWallet, me.Address())
	_, err = c.Publish(forged, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{env("contact-"+me.Address(), 1, "x")}})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("grpc publish with forged metadata: %v", err)
	}
	withToken := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	if _, err := c.Publish(withToken, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{env("contact-"+me.Address(), 1, "x")}}); err != nil {
		t.Fatalf("grpc publish with token: %v", err)
	}
	// Through the gateway, the wallet the gateway verified still decides
	// which contact topic may be written.
	other, _ := keys.Generate()
	resp := postJSON(t, ctx, n, pathPublish, publishBody(topic("contact-"+other.Address()), 1, 8),
		http.Header{"Authorization": {"Bearer " + token}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("gateway publish to another wallet's contact topic: status %d", resp.StatusCode)
	}
}

// dialFrom opens a raw HTTP connection to addr from local IP src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rawSubscribe sends a gateway subscription on conn and returns the
// status line and headers of the answer; it reads nothing more.
func rawSubscribe(t *testing.T, conn net.Conn, topics string, extra string) (*bufio.Reader, *http.Response) {
	t.Helper()
	body := `{"contentTopics":[` + topics + `]}`
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", pathSubscribe, extra, len(body), body)
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read subscribe answer: %v", err)
	}
	return br, resp
}

func TestSubscriptionCaps(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{MaxSubscriptionsPerClient: 3, MaxSubscriptions: 5}, nil)
	ctx := testkit.Context(t, 30*time.Second)
	topics := `"` + topic("cap") + `"`

	// Three from 127.0.0.1: two over HTTP, one over gRPC.
	for i := 0; i < 2; i++ {
		_, resp := rawSubscribe(t, dialFrom(t, "127.0.0.1", n.HTTPAddr()), topics, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("subscription %d: status %d", i, resp.StatusCode)
		}
	}
	grpcCtx, cancelGRPC := context.WithCancel(ctx)
	s, err := dialNode(t, n.GRPCAddr()).Subscribe(grpcCtx, &messagev1.SubscribeRequest{ContentTopics: []string{topic("cap")}})
	if err != nil {
		t.Fatalf("grpc subscribe: %v", err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatalf("grpc subscribe header: %v", err)
	}

	// The fourth is refused over either API, and a forged client address
	// in gateway metadata does not help.
	_, resp := rawSubscribe(t, dialFrom(t, "127.0.0.1", n.HTTPAddr()), topics, "Grpc-Metadata-X-Xmtpnode-Client: 10.9.9.9\r\n")
	var st gatewayStatus
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth subscription: status %d", resp.StatusCode)
	}
	readJSON(t, resp, &st)
	if st.Code != int(codes.ResourceExhausted) || !strings.Contains(st.Message, "too many subscriptions from this client (limit 3)") {
		t.Fatalf("fourth subscription: %+v", st)
	}
	s4, err := dialNode(t, n.GRPCAddr()).Subscribe2(ctx)
	if err == nil {
		_, err = s4.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("fourth grpc subscription: %v", err)
	}

	// Another client address has its own count, up to the node's total.
	for i := 0; i < 2; i++ {
		_, resp := rawSubscribe(t, dialFrom(t, "127.0.0.2", n.HTTPAddr()), topics, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("127.0.0.2 subscription %d: status %d", i, resp.StatusCode)
		}
	}
	_, resp = rawSubscribe(t, dialFrom(t, "127.0.0.2", n.HTTPAddr()), topics, "")
	readJSON(t, resp, &st)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(st.Message, "too many subscriptions on this node (limit 5)") {
		t.Fatalf("sixth subscription: status %d %+v", resp.StatusCode, st)
	}
	if got := metricValue(t, n.metrics.refused.WithLabelValues(refusedPerClient)); got != 2 {
		t.Errorf("per-client refusals: %v", got)
	}
	if got := metricValue(t, n.metrics.refused.WithLabelValues(refusedNodeTotal)); got != 1 {
		t.Errorf("node-total refusals: %v", got)
	}

	// A closed subscription frees its slot.
	cancelGRPC()
	testkit.WaitFor(t, 20*time.Second, func() bool { streams, _ := n.limits.open(); return streams == 4 }, "grpc slot released")
	_, resp = rawSubscribe(t, dialFrom(t, "127.0.0.1", n.HTTPAddr()), topics, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscription after a release: status %d", resp.StatusCode)
	}
}

// TestPublishesInFlightAreBounded: tokens are free to make, so the
// gateway also bounds the body bytes of the publishes it reads at once.
// Stalled publishes of the largest size fill the room; another
// publish waits, then gets 503 (code 14) instead of more memory; once the
// stalled bodies miss their read deadline the room is free again.
func TestPublishesInFlightAreBounded(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{MaxEnvelopeBytes: 4096, MaxEnvelopesPerPublish: 2}, func(n *Node) {
		n.publishWait = 300 * time.Millisecond
		n.publishReadTimeout = 2 * time.Second
	})
	ctx := testkit.Context(t, 30*time.Second)
	for i := 0; i < publishesInFlight; i++ {
		// A chunked body weighs the whole limit; it sends a little and
		// stalls.
		conn := dialFrom(t, "127.0.0.1", n.HTTPAddr())
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"env\r\n", pathPublish)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		if !n.gw.decoding.TryAcquire(1) {
			return true
		}
		n.gw.decoding.Release(1)
		return false
	}, "the room to be full")
	start := time.Now()
	resp := postJSON(t, ctx, n, pathPublish, publishBody(topic("busy"), 1, 8), nil)
	var st gatewayStatus
	if resp.StatusCode != http.StatusServiceUnavailable {
		resp.Body.Close()
		t.Fatalf("publish while the room is full: status %d", resp.StatusCode)
	}
	readJSON(t, resp, &st)
	if st.Code != int(codes.Unavailable) || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("publish while the room is full: %+v after %v", st, time.Since(start))
	}
	if got := metricValue(t, n.metrics.rejected.WithLabelValues(reasonBusy)); got != 1 {
		t.Fatalf("busy rejections: %v", got)
	}
	// The stalled bodies time out and free the room.
	testkit.WaitFor(t, 20*time.Second, func() bool {
		resp := postJSON(t, ctx, n, pathPublish, publishBody(topic("busy"), 1, 8), nil)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "a publish to pass again")
}

// TestGRPCPublishesInFlightAreBounded: gRPC reads a request whole, up to
// the largest valid publish, before the service sees it, so the node
// counts the publishes it is reading for direct clients. Stalled
// publishes that declare the largest size take every slot; another
// publish is refused at once with Unavailable (retry later) and counted as busy,
// while the gateway (which has its own budget) still publishes; when the
// stalled calls are cut off mid-message their slots come back.
func TestGRPCPublishesInFlightAreBounded(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{MaxEnvelopeBytes: 64 << 10, MaxEnvelopesPerPublish: 4, MaxPublishesInFlight: 2}, nil)
	ctx := testkit.Context(t, 30*time.Second)
	var stalled []net.Conn
	for i := 0; i < 2; i++ {
		stalled = append(stalled, testkit.StallGRPCCall(t, n.GRPCAddr(), publishMethod, uint32(n.maxRecvBytes())))
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return n.publishes.inFlight() == 2 }, "both stalled publishes to hold a slot")

	c := dialNode(t, n.GRPCAddr())
	_, err := c.Publish(ctx, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{env("grpc-busy", 1, "x")}})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "limit 2") {
		t.Fatalf("grpc publish while every slot is taken: %v, want Unavailable naming the limit", err)
	}
	if got := metricValue(t, n.metrics.rejected.WithLabelValues(reasonBusy)); got != 1 {
		t.Fatalf("busy rejections: %v, want 1", got)
	}
	resp := postJSON(t, ctx, n, pathPublish, publishBody(topic("gateway-ok"), 1, 8), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gateway publish while the gRPC slots are taken: status %d", resp.StatusCode)
	}

	for _, conn := range stalled {
		conn.Close()
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return n.publishes.inFlight() == 0 }, "the cut-off publishes to give their slots back")
	for i := 0; i < 5; i++ {
		publish(t, ctx, c, env("grpc-busy", uint64(i+1), "x"))
	}
	if got := n.publishes.inFlight(); got != 0 {
		t.Fatalf("slots held after five answered publishes: %d", got)
	}
}

// TestGRPCPublishRefusedByTokenReleasesItsSlot: a publish refused for its
// token in the tap never gets a stream, so the tap gives its slot back.
func TestGRPCPublishRefusedByTokenReleasesItsSlot(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{Authn: true, MaxPublishesInFlight: 1}, nil)
	ctx := testkit.Context(t, 30*time.Second)
	c := dialNode(t, n.GRPCAddr())
	for i := 0; i < 3; i++ {
		_, err := c.Publish(ctx, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{env("no-token", 1, "x")}})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("publish %d without a token: %v, want Unauthenticated (a leaked slot would make it Unavailable)", i, err)
		}
	}
	if got := n.publishes.inFlight(); got != 0 {
		t.Fatalf("slots held after refused publishes: %d", got)
	}
}
