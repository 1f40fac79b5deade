package node

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestStuckSubscribersAreCutOffByBytes: subscribers that stop reading,
// over gRPC and over the gateway, are cut off once the bytes waiting for
// them pass their budget, long before the envelope count would, and their
// streams end on the node at once although the clients still read
// nothing. A reading subscriber gets everything.
func TestStuckSubscribersAreCutOffByBytes(t *testing.T) {
	cfg := Config{MaxEnvelopeBytes: 32 << 10, SubscriberBufferBytes: 256 << 10, StreamWriteTimeout: time.Second}
	n := startNode(t, testDatabase(t), cfg, nil)
	ctx := testkit.Context(t, 30*time.Second)
	pub := dialNode(t, n.GRPCAddr())
	req := &messagev1.SubscribeRequest{ContentTopics: []string{topic("stuck")}}

	// A gRPC subscriber with small fixed windows that never reads.
	stuck := dialNode(t, n.GRPCAddr(), grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	stuckStream, err := stuck.Subscribe(ctx, req)
	if err != nil {
		t.Fatalf("stuck subscribe: %v", err)
	}
	if _, err := stuckStream.Header(); err != nil {
		t.Fatalf("stuck header: %v", err)
	}
	// A gateway subscriber that never reads past its headers, with a
	// small receive buffer.
	conn := dialFrom(t, "127.0.0.1", n.HTTPAddr())
	conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	if _, resp := rawSubscribe(t, conn, `"`+topic("stuck")+`"`, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("gateway subscribe: status %d", resp.StatusCode)
	}
	fastStream, err := dialNode(t, n.GRPCAddr()).Subscribe(ctx, req)
	if err != nil {
		t.Fatalf("fast subscribe: %v", err)
	}
	if _, err := fastStream.Header(); err != nil {
		t.Fatalf("fast header: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return metricValue(t, n.metrics.subscribers) == 3 }, "three subscribers")

	const total = 400 // 400 × 32 KiB = 12.5 MiB, far past the 256 KiB budget; the count limit is 1024
	got := make(chan int, 1)
	go func() {
		count := 0
		for count < total {
			if _, err := fastStream.Recv(); err != nil {
				break
			}
			count++
		}
		got <- count
	}()
	payload := strings.Repeat("p", 32<<10)
	for i := 0; i < total; i++ {
		publish(t, ctx, pub, env("stuck", uint64(i+1), payload))
	}
	if count := <-got; count != total {
		t.Fatalf("reading subscriber got %d of %d", count, total)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return metricValue(t, n.metrics.cutOff) == 2 }, "both stuck subscribers cut off")
	// Neither stuck client has read anything, yet the node has ended both
	// streams and holds nothing for them.
	testkit.WaitFor(t, 20*time.Second, func() bool { return metricValue(t, n.metrics.subscribers) == 1 }, "stuck streams ended on the node")
	if streams, clients := n.limits.open(); streams != 1 || clients != 1 {
		t.Fatalf("open subscriptions after the cut: %d streams, %d clients", streams, clients)
	}
	// When the gRPC client reads at last, it learns why.
	var rerr error
	for rerr == nil {
		_, rerr = stuckStream.Recv()
	}
	if status.Code(rerr) != codes.ResourceExhausted {
		t.Fatalf("stuck grpc subscriber: %v, want ResourceExhausted", rerr)
	}
}

// TestResourcesReturnAfterDisconnect: many subscribers over both APIs,
// then all of them leave; the node's goroutines, subscription slots and
// fan-out entries return to where they were.
func TestResourcesReturnAfterDisconnect(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{}, nil)
	ctx := testkit.Context(t, 30*time.Second)
	pub := dialNode(t, n.GRPCAddr())
	// Connections live longer than subscriptions: open the gRPC one that
	// carries the subscriptions before counting.
	gc := dialNode(t, n.GRPCAddr())
	publish(t, ctx, pub, env("warm", 1, "x"))
	publish(t, ctx, gc, env("warm", 2, "x"))
	testkit.WaitFor(t, 20*time.Second, func() bool { return metricValue(t, n.metrics.subscribers) == 0 }, "settled")
	baseline := runtime.NumGoroutine()

	const each = 60
	subCtx, cancel := context.WithCancel(ctx)
	var conns []net.Conn
	for i := 0; i < each; i++ {
		c := dialFrom(t, "127.0.0.1", n.HTTPAddr())
		if _, resp := rawSubscribe(t, c, `"`+topic("leave")+`"`, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("gateway subscribe %d: status %d", i, resp.StatusCode)
		}
		conns = append(conns, c)
	}
	for i := 0; i < each; i++ {
		s, err := gc.Subscribe2(subCtx)
		if err != nil {
			t.Fatalf("subscribe2 %d: %v", i, err)
		}
		if err := s.Send(&messagev1.SubscribeRequest{ContentTopics: []string{topic("leave")}}); err != nil {
			t.Fatalf("subscribe2 send %d: %v", i, err)
		}
		if _, err := s.Header(); err != nil {
			t.Fatalf("subscribe2 header %d: %v", i, err)
		}
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return n.fanout.subscriberCount(topic("leave")) == 2*each }, "every subscriber registered")
	for i := 0; i < 20; i++ {
		publish(t, ctx, pub, env("leave", uint64(i+1), strings.Repeat("y", 64<<10)))
	}
	if during := runtime.NumGoroutine(); during < baseline+2*each {
		t.Fatalf("goroutines while subscribed: %d, baseline %d", during, baseline)
	}

	cancel()
	for _, c := range conns {
		c.Close()
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		streams, clients := n.limits.open()
		return metricValue(t, n.metrics.subscribers) == 0 && streams == 0 && clients == 0 &&
			n.fanout.subscriberCount(topic("leave")) == 0
	}, "subscribers gone")
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > baseline+4 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.fanout.mu.RLock()
	topics, all := len(n.fanout.byTopic), len(n.fanout.all)
	n.fanout.mu.RUnlock()
	if topics != 0 || all != 0 {
		t.Fatalf("fan-out keeps %d topics and %d subscribe-all entries", topics, all)
	}
}

// TestGatewayStreamWriteTimeout: a gateway subscriber that reads nothing
// is disconnected once a write has waited StreamWriteTimeout, even while
// its byte budget has room, and is counted as cut off.
func TestGatewayStreamWriteTimeout(t *testing.T) {
	cfg := Config{SubscriberBufferBytes: 64 << 20, StreamWriteTimeout: time.Second}
	n := startNode(t, testDatabase(t), cfg, nil)
	ctx := testkit.Context(t, 30*time.Second)
	conn := dialFrom(t, "127.0.0.1", n.HTTPAddr())
	conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	if _, resp := rawSubscribe(t, conn, `"`+topic("timeout")+`"`, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: status %d", resp.StatusCode)
	}
	// A subscriber that reads, idle for longer than the timeout before
	// the first envelope, is not affected.
	reader := postJSON(t, ctx, n, pathSubscribe, `{"contentTopics":["`+topic("timeout")+`"]}`, nil)
	defer reader.Body.Close()
	testkit.WaitFor(t, 20*time.Second, func() bool { return metricValue(t, n.metrics.subscribers) == 2 }, "two subscribers")
	time.Sleep(1500 * time.Millisecond) // idle past the write timeout on purpose
	pub := dialNode(t, n.GRPCAddr())
	payload := strings.Repeat("t", 1<<20)
	const total = 12 // 12 MiB: more than the sockets hold, less than the budget
	got := make(chan int, 1)
	go func() {
		r := bufio.NewReaderSize(reader.Body, 64<<10)
		count := 0
		for count < total {
			if _, err := r.ReadBytes('\n'); err != nil {
				break
			}
			count++
		}
		got <- count
	}()
	for i := 0; i < total; i++ {
		publish(t, ctx, pub, env("timeout", uint64(i+1), payload))
	}
	if count := <-got; count != total {
		t.Fatalf("reading subscriber got %d of %d", count, total)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		return metricValue(t, n.metrics.subscribers) == 1 && metricValue(t, n.metrics.cutOff) == 1
	}, "the stuck stream to end")
}
