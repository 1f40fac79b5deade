package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/keys"
	"github.com/xmtpbridge/bridge/xmtp/node"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func testDatabase(t testing.TB) string {
	return pgtest.NewDatabase(t, pgtest.Template{Name: "xmtpapi", Migrate: node.Migrate})
}

// startNode starts a local node on db. Empty addresses mean port 0.
func startNode(t testing.TB, db, grpcAddr string, authn bool) *node.Node {
	return startNodeWith(t, node.Config{DatabaseURL: db, GRPCAddr: grpcAddr, Authn: authn})
}

func startNodeWith(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = "127.0.0.1:0"
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { stopNode(t, n) })
	return n
}

func stopNode(t testing.TB, n *node.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Errorf("stop node: %v", err)
	}
}

func dial(t testing.TB, addr string, opts ...Option) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, opts...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func topic(name string) string { return "/xmtp/0/" + name + "/proto" }

func envAt(name string, ts uint64, msg string) *messagev1.Envelope {
	return &messagev1.Envelope{ContentTopic: topic(name), TimestampNs: ts, Message: []byte(msg)}
}

func TestPublishQuery(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr())
	ctx := testkit.Context(t, 60*time.Second)

	const total = 250
	var envs []*messagev1.Envelope
	for i := 1; i <= total; i++ {
		envs = append(envs, envAt("paged", uint64(i), fmt.Sprint(i)))
	}
	// The node takes at most 16 envelopes per publish.
	for i := 0; i < len(envs); i += 10 {
		if err := c.Publish(ctx, nil, envs[i:min(i+10, len(envs))]...); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	var got []uint64
	if err := c.QueryAll(ctx, topic("paged"), 0, 0, func(e *messagev1.Envelope) error {
		got = append(got, e.TimestampNs)
		return nil
	}); err != nil {
		t.Fatalf("query all: %v", err)
	}
	if len(got) != total || got[0] != 1 || got[total-1] != total {
		t.Fatalf("query all: %d envelopes, first %v", len(got), got[:min(3, len(got))])
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("query all out of order at %d: %v then %v", i, got[i-1], got[i])
		}
	}
	// A closed range, and an error from fn stops the walk.
	got = got[:0]
	stop := errors.New("stop")
	err := c.QueryAll(ctx, topic("paged"), 100, 220, func(e *messagev1.Envelope) error {
		got = append(got, e.TimestampNs)
		if len(got) == 110 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || len(got) != 110 || got[0] != 100 {
		t.Fatalf("range walk: %v, %d envelopes", err, len(got))
	}
	got = got[:0]
	if err := c.QueryAll(ctx, topic("paged"), 100, 220, func(e *messagev1.Envelope) error {
		got = append(got, e.TimestampNs)
		return nil
	}); err != nil || len(got) != 121 || got[120] != 220 {
		t.Fatalf("range: %v, %d envelopes", err, len(got))
	}

	// Query as given: newest first.
	resp, err := c.Query(ctx, &messagev1.QueryRequest{ContentTopics: []string{topic("paged")}, PagingInfo: &messagev1.PagingInfo{Limit: 3}})
	if err != nil || len(resp.Envelopes) != 3 || resp.Envelopes[0].TimestampNs != total {
		t.Fatalf("query: %v %v", err, resp)
	}

	// More queries than one batch holds.
	var reqs []*messagev1.QueryRequest
	for i := 0; i < 60; i++ {
		reqs = append(reqs, &messagev1.QueryRequest{ContentTopics: []string{topic("paged")}, StartTimeNs: uint64(i + 1), EndTimeNs: uint64(i + 1)})
	}
	resps, err := c.BatchQuery(ctx, reqs)
	if err != nil || len(resps) != 60 {
		t.Fatalf("batch query: %v, %d responses", err, len(resps))
	}
	for i, r := range resps {
		if len(r.Envelopes) != 1 || r.Envelopes[0].TimestampNs != uint64(i+1) {
			t.Fatalf("batch response %d: %v", i, r.Envelopes)
		}
	}
}

func TestPublishWithAuthorizer(t *testing.T) {
	n := startNode(t, testDatabase(t), "", true)
	c := dial(t, n.GRPCAddr())
	ctx := testkit.Context(t, 60*time.Second)
	bundle, err := keys.Generate()
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	contact := envAt("contact-"+bundle.Address(), uint64(time.Now().UnixNano()), "bundle")
	if err := c.Publish(ctx, nil, contact); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("publish without auth: got %v", err)
	}
	if err := c.Publish(ctx, keys.NewAuthorizer(bundle), contact); err != nil {
		t.Fatalf("publish with auth: %v", err)
	}
}

// collector gathers a subscription's envelopes by message.
type collector struct {
	ch chan string
}

func collect(s *Subscription) *collector {
	c := &collector{ch: make(chan string, 1000)}
	go func() {
		for e := range s.Envelopes() {
			c.ch <- string(e.Message)
		}
		close(c.ch)
	}()
	return c
}

// expect reads messages until it has seen every wanted one, and fails on a
// message it does not want or on a duplicate.
func (c *collector) expect(t *testing.T, want ...string) {
	t.Helper()
	need := map[string]bool{}
	for _, w := range want {
		need[w] = true
	}
	timeout := time.After(30 * time.Second)
	for len(need) > 0 {
		select {
		case m, ok := <-c.ch:
			if !ok {
				t.Fatalf("subscription ended; still waiting for %v", need)
			}
			if !need[m] {
				t.Fatalf("unexpected or duplicate envelope %q while waiting for %v", m, need)
			}
			delete(need, m)
		case <-timeout:
			t.Fatalf("timed out waiting for %v", need)
		}
	}
}

func now() uint64 { return uint64(time.Now().UnixNano()) }

func TestSubscriptionTopics(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr())
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)

	sub.Add(topic("t1"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	// Published right after Add: delivered by the stream or by the catch-up
	// query, once.
	if err := c.Publish(ctx, nil, envAt("t1", now(), "t1-a"), envAt("t2", now(), "t2-a")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got.expect(t, "t1-a")
	sub.Add(topic("t2"))
	if err := c.Publish(ctx, nil, envAt("t2", now(), "t2-b")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	// t2-a was published before t2 was added, within the skew allowance:
	// a topic starts at its addition less the allowance, so it comes too.
	got.expect(t, "t2-a", "t2-b")
	sub.Remove(topic("t1"))
	if err := c.Publish(ctx, nil, envAt("t1", now(), "t1-b"), envAt("t2", now(), "t2-c")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got.expect(t, "t2-c")
	sub.Close()
	for m := range got.ch {
		t.Fatalf("after close: unexpected %q", m)
	}
}

func TestSubscriptionCatchesUpAfterOutage(t *testing.T) {
	db := testDatabase(t)
	first := startNode(t, db, "", false)
	addr := first.GRPCAddr()
	ctx := testkit.Context(t, 60*time.Second)

	var states []bool
	stateCh := make(chan bool, 100)
	c := dial(t, addr, WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond),
		WithConnectionCallback(func(v bool) { stateCh <- v }))
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	sub.Add(topic("o1"), topic("o2"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	if err := c.Publish(ctx, nil, envAt("o1", now(), "before")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got.expect(t, "before")

	// A real outage: the node the client uses goes away.
	stopNode(t, first)
	testkit.WaitFor(t, 20*time.Second, func() bool { return !sub.Connected() }, "disconnected")

	// Meanwhile another node on the same database takes publishes.
	other := startNode(t, db, "", false)
	oc := dial(t, other.GRPCAddr())
	if err := oc.Publish(ctx, nil, envAt("o1", now(), "during-1"), envAt("o2", now(), "during-2"), envAt("o3", now(), "not-mine")); err != nil {
		t.Fatalf("publish during outage: %v", err)
	}
	if sub.Connected() {
		t.Fatal("subscription connected while its node is down")
	}

	// The node returns on the same address; the subscription reconnects
	// and catches up.
	startNode(t, db, addr, false)
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "reconnected")
	got.expect(t, "during-1", "during-2")
	if err := c.Publish(ctx, nil, envAt("o2", now(), "after")); err != nil {
		t.Fatalf("publish after: %v", err)
	}
	got.expect(t, "after")

	sub.Close()
	close(stateCh)
	for v := range stateCh {
		states = append(states, v)
	}
	// Up, down for the outage, ..., up again, down at Close. A reconnect
	// that reaches the first node while it shuts down may add an up/down
	// pair in the middle.
	k := len(states)
	if k < 4 || k%2 != 0 || !states[0] || states[1] || !states[k-2] || states[k-1] {
		t.Fatalf("connection callbacks: %v", states)
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	c := dial(t, "127.0.0.1:1", WithReconnectBackoff(100*time.Millisecond, 1*time.Second))
	s := &Subscription{c: c}
	for n, step := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		step *= time.Millisecond
		for i := 0; i < 50; i++ {
			if d := s.backoff(n); d < step/2 || d > step {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, step/2, step)
			}
		}
	}
}

func TestSubscriptionSpreadsTopicsOverStreams(t *testing.T) {
	// The node takes at most two topics per request, so five topics need
	// three streams.
	n := startNodeWith(t, node.Config{DatabaseURL: testDatabase(t), MaxTopicsPerRequest: 2})
	c := dial(t, n.GRPCAddr(), WithMaxTopicsPerStream(2))
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	names := []string{"s1", "s2", "s3", "s4", "s5"}
	for _, name := range names {
		sub.Add(topic(name))
	}
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "all streams connected")
	sub.mu.Lock()
	streams := len(sub.streams)
	sub.mu.Unlock()
	if streams != 3 {
		t.Fatalf("streams: got %d want 3", streams)
	}
	for _, name := range names {
		if err := c.Publish(ctx, nil, envAt(name, now(), name+"-msg")); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	got.expect(t, "s1-msg", "s2-msg", "s3-msg", "s4-msg", "s5-msg")

	// A freed place is reused rather than opening a fourth stream.
	sub.Remove(topic("s1"))
	sub.Add(topic("s6"))
	sub.mu.Lock()
	streams = len(sub.streams)
	sub.mu.Unlock()
	if streams != 3 {
		t.Fatalf("streams after remove and add: got %d want 3", streams)
	}
	if err := c.Publish(ctx, nil, envAt("s1", now(), "s1-late"), envAt("s6", now(), "s6-msg")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got.expect(t, "s6-msg")
	// Catch-up queries respect the node's limit too: batches of two.
	resps, err := c.BatchQuery(ctx, []*messagev1.QueryRequest{
		{ContentTopics: []string{topic("s1")}}, {ContentTopics: []string{topic("s2")}}, {ContentTopics: []string{topic("s3")}},
	})
	if err != nil || len(resps) != 3 || len(resps[0].Envelopes) != 2 {
		t.Fatalf("batch query over the node limit: %v, %v", err, resps)
	}
}

func TestSubscriptionRecoversFromSlowConsumerCutOff(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	ctx := testkit.Context(t, 60*time.Second)
	states := make(chan bool, 1000)
	// Small fixed flow-control windows: once the consumer stops reading,
	// the node's sends block and its buffer for this subscriber fills.
	c := dial(t, n.GRPCAddr(),
		WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond),
		WithConnectionCallback(func(v bool) {
			select {
			case states <- v:
			default:
			}
		}),
		WithDialOptions(grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10)))
	sub := c.Subscribe(ctx)
	defer sub.Close()
	sub.Add(topic("flood"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")

	// Nobody reads while 3000 envelopes are published: more than the
	// client buffer, the transport windows and the node's buffer together.
	const total = 3000
	payload := strings.Repeat("p", 2048)
	for i := 0; i < total; i += 10 {
		var envs []*messagev1.Envelope
		for j := i; j < i+10; j++ {
			envs = append(envs, envAt("flood", now(), fmt.Sprintf("%04d%s", j, payload)))
		}
		if err := c.Publish(ctx, nil, envs...); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	seen := map[string]bool{}
	timeout := time.After(45 * time.Second)
	for len(seen) < total {
		select {
		case e := <-sub.Envelopes():
			id := string(e.Message[:4])
			if seen[id] {
				t.Fatalf("envelope %s delivered twice", id)
			}
			seen[id] = true
		case <-timeout:
			t.Fatalf("received %d of %d envelopes", len(seen), total)
		}
	}
	// The node cut the subscriber off at least once on the way.
	sawDown := false
	for len(states) > 0 {
		if !<-states {
			sawDown = true
		}
	}
	if !sawDown {
		t.Fatal("subscription was never cut off; the test did not exercise recovery")
	}
}

func TestClosingClientEndsSubscriptions(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c, err := Dial(context.Background(), n.GRPCAddr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	sub := c.Subscribe(context.Background())
	sub.Add(topic("c"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	if err := c.Close(); err != nil {
		t.Fatalf("close client: %v", err)
	}
	select {
	case _, ok := <-sub.Envelopes():
		if ok {
			t.Fatal("envelope after close")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("subscription still open after its client closed")
	}
	if sub.Connected() {
		t.Fatal("closed subscription reports connected")
	}
	sub.Close()
}

// TestPublishRetriesABusyNode: a node that caps the publishes it reads at
// once refuses one more as Unavailable; the client tries it again a few
// times, so a publish that meets a short burst still goes through, and
// one that meets a node busy for longer fails with the node's status.
func TestPublishRetriesABusyNode(t *testing.T) {
	n := startNodeWith(t, node.Config{DatabaseURL: testDatabase(t), MaxPublishesInFlight: 1})
	c := dial(t, n.GRPCAddr())
	ctx := testkit.Context(t, 30*time.Second)
	const publish = "/xmtp.message_api.v1.MessageApi/Publish"

	// The stalled call's connection is new, so on a loaded machine the node
	// may read its headers while a probe holds the slot, and refuse it: a
	// probe that goes through starts another stalled call. Probes go to a
	// topic of their own, so what they store is not counted below.
	var stalled net.Conn
	testkit.WaitFor(t, 10*time.Second, func() bool {
		if stalled == nil {
			stalled = testkit.StallGRPCCall(t, n.GRPCAddr(), publish, 1<<20)
		}
		_, err := messagev1.NewMessageApiClient(c.conn).Publish(ctx, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{envAt("busy-probe", 1, "probe")}})
		if status.Code(err) == codes.Unavailable {
			return true
		}
		stalled.Close()
		stalled = nil
		return false
	}, "the stalled publish to hold the node's only slot")

	// Busy for longer than the retries last: the node's status comes back.
	err := c.Publish(ctx, nil, envAt("busy", 2, "long"))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("publish while the node stays busy: %v, want Unavailable", err)
	}

	// Busy for a moment: the publish goes through on a later try.
	done := make(chan error, 1)
	go func() { done <- c.Publish(ctx, nil, envAt("busy", 3, "short")) }()
	time.Sleep(30 * time.Millisecond)
	stalled.Close()
	if err := <-done; err != nil {
		t.Fatalf("publish during a short burst: %v", err)
	}
	var got []string
	if err := c.QueryAll(ctx, topic("busy"), 0, 0, func(env *messagev1.Envelope) error {
		got = append(got, string(env.Message))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "short" {
		t.Fatalf("stored on the topic: %q, want only the publish that went through", got)
	}
}
