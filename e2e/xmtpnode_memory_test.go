package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// xmtpNodeProc is a `bridge xmtp-node` process with its defaults (authn
// on, 1 MiB envelopes) on a database of its own.
type xmtpNodeProc struct {
	*proc
	grpc, http, ops string
}

func startXMTPNodeProc(t *testing.T, extra ...string) *xmtpNodeProc {
	t.Helper()
	x := &xmtpNodeProc{grpc: freeport.Addr(t), http: freeport.Addr(t), ops: freeport.Addr(t)}
	env := map[string]string{
		"DATABASE_URL": pgtest.NewDatabase(t, template), "BRIDGE_XMTP_NODE_GRPC_ADDR": x.grpc,
		"BRIDGE_XMTP_NODE_HTTP_ADDR": x.http, "BRIDGE_XMTP_NODE_OPS_ADDR": x.ops, "BRIDGE_LOG_LEVEL": "error",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	x.proc = start(t, "xmtp-node", t.TempDir(), env, "xmtp-node")
	x.waitHTTP("http://"+x.ops+"/readyz", 30*time.Second)
	return x
}

// rss returns the process's resident set size in bytes, from
// /proc/<pid>/status.
func (x *xmtpNodeProc) rss(t *testing.T) int64 {
	t.Helper()
	v, err := testkit.RSS(x.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// metric returns the value of an unlabelled series (or a series with its
// labels, as written) from the node's /metrics.
func (x *xmtpNodeProc) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + x.ops + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("parse %s: %v", sc.Text(), err)
			}
			return v
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}

// rssPeak samples the process's RSS every 10ms until stop is called and
// returns the highest value seen.
func (x *xmtpNodeProc) rssPeak(t *testing.T) (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			if v := x.rss(t); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

// spaces is an endless body of filler.
type spaces struct{ left int64 }

func (s *spaces) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	for i := range p {
		p[i] = ' '
	}
	s.left -= int64(len(p))
	return len(p), nil
}

const mib = 1 << 20

// isReset reports a write that failed because the server closed the
// connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// TestXMTPNodeOversizedPublishesStayBounded is finding 3 of issue 10:
// four parallel publishes of 200 MB took the node to 3.6 GB because the
// gateway buffered about 210 MB of each before it checked the token. Now
// eight parallel publishes of 200 MB without a valid token are answered
// 401 before their bodies are read, and twelve with a valid token (anyone
// can make one) are cut at the largest valid publish (16 envelopes of
// 1 MiB in JSON, about 22 MiB) with 413, at most two being read at once.
// The node's RSS stays within 384 MiB of where it started (about 130 MiB
// in practice).
func TestXMTPNodeOversizedPublishesStayBounded(t *testing.T) {
	x := startXMTPNodeProc(t)
	me, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	token, err := me.AuthToken(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	baseline := x.rss(t)
	stop := x.rssPeak(t)

	const bodySize = 200 * mib
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := 0; w < 4; w++ {
		for _, auth := range []string{"", "Bearer not-a-token", "Bearer " + token, "Bearer " + token, "Bearer " + token} {
			wg.Add(1)
			go func(auth string) {
				defer wg.Done()
				want := http.StatusUnauthorized
				if strings.HasSuffix(auth, token) {
					want = http.StatusRequestEntityTooLarge
				}
				req, _ := http.NewRequest(http.MethodPost, "http://"+x.http+"/message/v1/publish", &spaces{left: bodySize})
				req.Header.Set("Content-Type", "application/json")
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil && want == http.StatusRequestEntityTooLarge && isReset(err) {
					// The node answered 413 and closed the connection
					// while the client was still writing; the metric
					// below counts the answer.
					return
				}
				if err != nil {
					errs <- fmt.Errorf("publish (%q): %w", auth[:min(len(auth), 12)], err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					errs <- fmt.Errorf("publish (%q): status %d, want %d", auth[:min(len(auth), 12)], resp.StatusCode, want)
				}
			}(auth)
		}
	}
	wg.Wait()
	peak := stop()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("rss: baseline %d MiB, peak %d MiB", baseline/mib, peak/mib)
	if peak-baseline > 384*mib {
		t.Fatalf("rss rose by %d MiB during the oversized publishes (bound 384 MiB)", (peak-baseline)/mib)
	}
	if got := x.metric(t, `bridge_xmtpnode_requests_rejected_total{reason="unauthenticated"}`); got != 8 {
		t.Errorf("unauthenticated rejections: %v, want 8", got)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return x.metric(t, `bridge_xmtpnode_requests_rejected_total{reason="body_too_large"}`) == 12
	}, "twelve body-too-large rejections")
}

// TestXMTPNodeStuckSubscribersStayBounded is finding 4 of issue 10: 200
// gateway subscribers that never read, plus 160 publishes of 1 MB, took
// the node from 193 MB to 4.7 GB, and the memory stayed after they
// disconnected. Now each subscriber's buffer is bounded in bytes (8 MiB
// by default) and shares the envelopes with the others, a stuck one is cut
// off and its writes time out, the node's RSS stays within 512 MiB of
// where it started, and after the clients leave the subscribers, the
// goroutines and the RSS come back.
func TestXMTPNodeStuckSubscribersStayBounded(t *testing.T) {
	x := startXMTPNodeProc(t)
	me, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	token, err := me.AuthToken(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.Dial(x.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := messagev1.NewMessageApiClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	const topic = "/xmtp/0/stuck-subscribers/proto"
	if _, err := api.Publish(authed, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{{ContentTopic: topic, TimestampNs: 1, Message: []byte("warm")}}}); err != nil {
		t.Fatalf("warm-up publish: %v", err)
	}
	baseline := x.rss(t)
	baseGoroutines := x.metric(t, "go_goroutines")

	const subscribers = 200
	body := `{"contentTopics":["` + topic + `"]}`
	var conns []net.Conn
	for i := 0; i < subscribers; i++ {
		c, err := net.Dial("tcp", x.http)
		if err != nil {
			t.Fatalf("dial subscriber %d: %v", i, err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(64 << 10)
		fmt.Fprintf(c, "POST /message/v1/subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("subscriber %d: %v %v", i, err, resp)
		}
		conns = append(conns, c) // never read again
	}
	if got := x.metric(t, "bridge_xmtpnode_subscribers"); got != subscribers {
		t.Fatalf("open subscribers: %v", got)
	}

	stop := x.rssPeak(t)
	msg := make([]byte, mib)
	for i := 0; i < 160; i++ {
		msg[0] = byte(i)
		env := &messagev1.Envelope{ContentTopic: topic, TimestampNs: uint64(i + 2), Message: msg}
		if _, err := api.Publish(authed, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{env}}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	peak := stop()
	t.Logf("rss: baseline %d MiB, peak %d MiB during 160 publishes to 200 stuck subscribers", baseline/mib, peak/mib)
	if peak-baseline > 512*mib {
		t.Fatalf("rss rose by %d MiB (bound 512 MiB)", (peak-baseline)/mib)
	}
	if got := x.metric(t, "bridge_xmtpnode_subscribers_cut_off_total"); got < subscribers/2 {
		t.Errorf("slow subscribers cut off: %v", got)
	}

	for _, c := range conns {
		c.Close()
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		return x.metric(t, "bridge_xmtpnode_subscribers") == 0 && x.metric(t, "go_goroutines") <= baseGoroutines+5
	}, "subscribers and goroutines to go")
	testkit.WaitFor(t, 20*time.Second, func() bool {
		return x.rss(t)-baseline < 128*mib
	}, "rss to come back within 128 MiB of the baseline")
	t.Logf("rss after the clients left: %d MiB", x.rss(t)/mib)
}

// TestXMTPNodeSubscriptionCapFromEnvironment: the cap on subscriptions per
// client set in the environment reaches `bridge xmtp-node`; over it, a
// subscription is refused with 429 and code 8 (ResourceExhausted), and the
// refusal is counted.
func TestXMTPNodeSubscriptionCapFromEnvironment(t *testing.T) {
	x := startXMTPNodeProc(t, "BRIDGE_XMTP_MAX_SUBSCRIPTIONS_PER_CLIENT", "2")
	body := `{"contentTopics":["/xmtp/0/capped/proto"]}`
	subscribe := func() *http.Response {
		c, err := net.Dial("tcp", x.http)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /message/v1/subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for i := 0; i < 2; i++ {
		if resp := subscribe(); resp.StatusCode != http.StatusOK {
			t.Fatalf("subscription %d: status %d", i, resp.StatusCode)
		}
	}
	resp := subscribe()
	raw, _ := io.ReadAll(resp.Body)
	var st struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(raw, &st); err != nil || resp.StatusCode != http.StatusTooManyRequests || st.Code != 8 || !strings.Contains(st.Message, "limit 2") {
		t.Fatalf("third subscription: status %d: %s", resp.StatusCode, raw)
	}
	if got := x.metric(t, `bridge_xmtpnode_subscriptions_refused_total{reason="per_client"}`); got != 1 {
		t.Fatalf("per-client refusals: %v", got)
	}
}

// TestXMTPNodeGRPCPublishesStayBounded: the gateway's decoding budget
// does not cover the node's gRPC listener, which reads each message whole
// (up to the largest valid publish, about 22 MiB) before any handler
// runs. Forty-eight parallel gRPC publishes of 16 envelopes of 1 MiB,
// with a valid token but to another wallet's contact topic, so that the
// node reads and decodes each one and then refuses it, would hold about
// 1.7 GB at once. With BRIDGE_XMTP_MAX_PUBLISHES_IN_FLIGHT=4 the node
// reads at most four; the rest are refused at once with
// UNAVAILABLE (retry later) and counted as busy, and the RSS stays within
// 256 MiB of where it started.
func TestXMTPNodeGRPCPublishesStayBounded(t *testing.T) {
	x := startXMTPNodeProc(t, "BRIDGE_XMTP_MAX_PUBLISHES_IN_FLIGHT", "4")
	me, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	token, err := me.AuthToken(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(x.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := messagev1.NewMessageApiClient(conn)
	envs := make([]*messagev1.Envelope, 16)
	for i := range envs {
		envs[i] = &messagev1.Envelope{ContentTopic: "/xmtp/0/contact-" + other.Address() + "/proto",
			TimestampNs: uint64(i + 1), Message: []byte(strings.Repeat("m", 1<<20))}
	}
	req := &messagev1.PublishRequest{Envelopes: envs}
	ctx := metadata.AppendToOutgoingContext(testkit.Context(t, 2*time.Minute), "authorization", "Bearer "+token)

	baseline := x.rss(t)
	stop := x.rssPeak(t)
	var wg sync.WaitGroup
	var refusedBusy, forbidden atomic.Int64
	errs := make(chan error, 48)
	for i := 0; i < 48; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := api.Publish(ctx, req)
			switch status.Code(err) {
			case codes.Unavailable:
				refusedBusy.Add(1)
			case codes.PermissionDenied:
				forbidden.Add(1)
			default:
				errs <- fmt.Errorf("publish: %v, want Unavailable or PermissionDenied", err)
			}
		}()
	}
	wg.Wait()
	peak := stop()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("rss: baseline %d MiB, peak %d MiB; %d read and refused for the topic, %d refused as busy",
		baseline/mib, peak/mib, forbidden.Load(), refusedBusy.Load())
	if peak-baseline > 256*mib {
		t.Fatalf("rss rose by %d MiB during the gRPC publishes (bound 256 MiB)", (peak-baseline)/mib)
	}
	if refusedBusy.Load() == 0 || forbidden.Load() == 0 {
		t.Fatalf("%d refused as busy and %d read: the cap was not reached, or nothing was read", refusedBusy.Load(), forbidden.Load())
	}
	if got := x.metric(t, `bridge_xmtpnode_requests_rejected_total{reason="busy"}`); got != float64(refusedBusy.Load()) {
		t.Errorf("busy rejections counted: %v, want %d", got, refusedBusy.Load())
	}
}
