package api

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/xmtp/node"
	"google.golang.org/grpc"
)

// orderRun publishes stored envelopes to a topic, then adds the topic
// while a sender keeps publishing to it, batch envelopes per publish, and
// returns the sequence numbers the subscription delivered for it, in
// order, once it has them all. pause spaces the live publishes, so that
// they go on after the node has the topic.
func orderRun(t *testing.T, c *Client, sub *Subscription, got <-chan *messagev1.Envelope, name string, stored, live, batch int, pause time.Duration) []int {
	t.Helper()
	ctx := testkit.Context(t, 60*time.Second)
	seq := 0
	publish := func(k int) {
		envs := make([]*messagev1.Envelope, 0, k)
		for range k {
			envs = append(envs, envAt(name, now(), fmt.Sprintf("%s %06d", name, seq)))
			seq++
		}
		if err := c.Publish(ctx, nil, envs...); err != nil {
			t.Errorf("publish: %v", err)
		}
	}
	for seq < stored {
		publish(min(10, stored-seq))
	}
	total := stored + live
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq < total {
			publish(min(batch, total-seq))
			time.Sleep(pause)
		}
	}()
	sub.Add(topic(name))
	var out []int
	timeout := time.After(45 * time.Second)
	for len(out) < total {
		select {
		case env, ok := <-got:
			if !ok {
				t.Fatalf("subscription ended after %d of %d envelopes", len(out), total)
			}
			n, err := strconv.Atoi(strings.TrimPrefix(string(env.Message), name+" "))
			if err != nil {
				t.Fatalf("envelope %q", env.Message)
			}
			out = append(out, n)
		case <-timeout:
			t.Fatalf("%s: %d of %d envelopes after 45 s", name, len(out), total)
		}
	}
	<-done
	return out
}

// checkOrder fails unless got is 0, 1, ..., len(got)-1.
func checkOrder(t *testing.T, name string, got []int) {
	t.Helper()
	for i, n := range got {
		if n != i {
			t.Fatalf("%s: envelope %d delivered as the %dth (around it: %v); want every envelope once, in order", name, n, i, got[max(0, i-3):min(len(got), i+4)])
		}
	}
}

// TestSubscriptionKeepsTheOrderOfNewTopics adds a topic that already holds
// envelopes while a sender keeps publishing to it, as a conversation does
// when the identity that hosts it is activated on a node: the catch-up
// delivers what was stored, the stream what comes after, and the
// conversation's envelopes must reach the consumer in the order they were
// published, each once.
func TestSubscriptionKeepsTheOrderOfNewTopics(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr())
	ctx := testkit.Context(t, 120*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	sub.Add(topic("warm"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	for i := range 5 {
		name := fmt.Sprintf("order-%d", i)
		checkOrder(t, name, orderRun(t, c, sub, sub.Envelopes(), name, 300, 100, 1, 0))
	}
}

// TestSubscriptionHoldOverflowLosesNothing: with holds of two envelopes,
// a topic added while ten envelopes at a time are published to it
// overflows its hold; the held envelopes are dropped and the topic queried
// again, so every envelope still arrives once and in order. The same with
// a bound on the whole subscription's held bytes, and with a bound no
// envelope fits in and a settle delay longer than the test: there only the
// query made on overflow brings the envelopes.
func TestSubscriptionHoldOverflowLosesNothing(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	for _, tc := range []struct {
		name       string
		envs, size int
		settle     time.Duration
	}{
		{"per-topic", 2, 0, 0},
		{"per-subscription", 0, 300, 0},
		{"nothing-fits", 0, 1, 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, n.GRPCAddr())
			if tc.envs > 0 {
				c.opts.holdEnvelopes = tc.envs
			}
			if tc.size > 0 {
				c.opts.holdTotalBytes = tc.size
			}
			if tc.settle > 0 {
				c.opts.settle = tc.settle
			}
			ctx := testkit.Context(t, 120*time.Second)
			sub := c.Subscribe(ctx)
			defer sub.Close()
			sub.Add(topic("warm-" + tc.name))
			testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
			for i := range 3 {
				name := fmt.Sprintf("%s-%d", tc.name, i)
				checkOrder(t, name, orderRun(t, c, sub, sub.Envelopes(), name, 200, 300, 10, 10*time.Millisecond))
			}
			if sub.overflows.Load() == 0 {
				t.Fatal("no hold overflowed; the test did not exercise the bound")
			}
			t.Logf("%d overflows", sub.overflows.Load())
			// Envelopes that the queries delivered may still wait in a
			// hold, as seen, for the query that releases it.
			held := func() int {
				sub.mu.Lock()
				defer sub.mu.Unlock()
				return sub.heldBytes
			}
			testkit.WaitFor(t, 10*time.Second, func() bool { return held() == 0 }, "no bytes counted as held")
		})
	}
}

// TestSubscriptionSendsFewTopicSetsWhileTopicsArrive adds topics one at a
// time, as identities do when they activate one after another. Each set
// sent replaces the last whole, so the stream must not send one per
// topic; and every topic, published to right after its Add, still gets
// its envelope once. The node counts the sets it receives.
func TestSubscriptionSendsFewTopicSetsWhileTopicsArrive(t *testing.T) {
	reg := prometheus.NewRegistry()
	n := startNodeWith(t, node.Config{DatabaseURL: testDatabase(t), Registerer: reg})
	c := dial(t, n.GRPCAddr())
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	sub.Add(topic("first"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	before := topicSets(t, reg)

	const topics = 300
	var want []string
	start := time.Now()
	for i := range topics {
		name := fmt.Sprintf("burst-%d", i)
		sub.Add(topic(name))
		if err := c.Publish(ctx, nil, envAt(name, now(), name)); err != nil {
			t.Fatalf("publish: %v", err)
		}
		want = append(want, name)
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	got.expect(t, want...)
	sets := topicSets(t, reg) - before
	// One set per 50 ms while topics arrive, and the last one's.
	if limit := int(took/(50*time.Millisecond)) + 2; sets > limit {
		t.Fatalf("the stream sent %d topic sets for %d topics added over %s; want at most %d", sets, topics, took, limit)
	}
	t.Logf("%d topic sets for %d topics added over %s", sets, topics, took)
}

// topicSets reads bridge_xmtpnode_subscribe_topic_sets_total from reg.
func topicSets(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "bridge_xmtpnode_subscribe_topic_sets_total" {
			return int(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	t.Fatal("no bridge_xmtpnode_subscribe_topic_sets_total")
	return 0
}

// TestSubscriptionHoldOverflowKeepsEnvelopesOfASlowClock: senders set an
// envelope's timestamp, and one whose clock is ten seconds behind sends
// envelopes below the topic's last delivered one. When such envelopes
// overflow a hold and are dropped, the query made again must start no
// later than the oldest of them, or they are never fetched again. The
// topic is held as a reconnect holds it, with a bound no envelope fits.
func TestSubscriptionHoldOverflowKeepsEnvelopesOfASlowClock(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr())
	c.opts.holdBytes = 1
	c.opts.settle = 10 * time.Minute
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	name := "slow-clock"
	sub.Add(topic(name))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	// A first envelope, on time, overflows the topic's first hold and is
	// fetched by the query made then; from then on the node streams the
	// topic.
	if err := c.Publish(ctx, nil, envAt(name, now(), "on time")); err != nil {
		t.Fatal(err)
	}
	select {
	case env := <-sub.Envelopes():
		if string(env.Message) != "on time" {
			t.Fatalf("got %q first", env.Message)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the first envelope did not arrive")
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.holds[topic(name)] == nil
	}, "the first hold ended")
	sub.mu.Lock()
	sub.holdTopic(topic(name), sub.topics[topic(name)].stream)
	sub.mu.Unlock()
	// Ten seconds behind, within the clock-skew allowance: stamped
	// after where the topic's catch-up starts, so they are held (one
	// stamped before it goes as it comes).
	behind := now() - uint64(10*time.Second)
	const count = 5
	for i := range count {
		if err := c.Publish(ctx, nil, envAt(name, behind+uint64(i), fmt.Sprintf("behind %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range count {
		select {
		case env := <-sub.Envelopes():
			if want := fmt.Sprintf("behind %d", i); string(env.Message) != want {
				t.Fatalf("got %q, want %q", env.Message, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d envelopes from the slow clock arrived; the query after the overflow started past them", i, count)
		}
	}
	if sub.overflows.Load() < 2 {
		t.Fatalf("%d overflows; the test did not exercise the bound", sub.overflows.Load())
	}
}

// TestSubscriptionFloodedTopicPagesForward: a sender floods a topic, more
// envelopes per catch-up than its hold keeps, from before the topic
// is added until long after. Each overflow drops the hold, and the query
// that fetches the dropped envelopes must page on from where the topic's
// catch-up got to rather than read the flood again from the clock-skew
// allowance before its last delivered envelope; and a topic added during
// the flood must not wait behind the flooded topic's pages. Every
// envelope of both still arrives once, in order.
func TestSubscriptionFloodedTopicPagesForward(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr())
	// Holds of eight envelopes: the sender's publishes of sixteen
	// overflow the topic's hold faster than its catch-up can release it.
	c.opts.holdEnvelopes = 8
	ctx := testkit.Context(t, 120*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	sub.Add(topic("warm"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")

	// Four senders, each publishing sixteen envelopes at a time.
	const name, other, senders, stored, flood, otherStored = "flood", "zz-other", 4, 50, 1500, 5
	publish := func(sender, from, k int) {
		envs := make([]*messagev1.Envelope, 0, k)
		for i := from; i < from+k; i++ {
			envs = append(envs, envAt(name, now(), fmt.Sprintf("%s %d %06d", name, sender, i)))
		}
		if err := c.Publish(ctx, nil, envs...); err != nil {
			t.Errorf("publish: %v", err)
		}
	}
	for sender := range senders {
		for i := 0; i < stored; i += 10 {
			publish(sender, i, min(10, stored-i))
		}
	}
	for i := range otherStored {
		if err := c.Publish(ctx, nil, envAt(other, now(), fmt.Sprintf("%s %06d", other, i))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for sender := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := stored; i < stored+flood && ctx.Err() == nil; i += 16 {
				publish(sender, i, min(16, stored+flood-i))
			}
		}()
	}
	sub.Add(topic(name))
	chased := func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.chases[topic(other)] != nil
	}
	added := false
	var pagesAtOther, pagesWaited int64 = -1, -1
	floodGot := make([][]int, senders)
	var floodCount int
	var otherGot []int
	const total = senders * (stored + flood)
	timeout := time.After(90 * time.Second)
	for floodCount < total || len(otherGot) < otherStored {
		if !added && (sub.overflows.Load() > 2 || floodCount >= total/2) {
			// The flood is overflowing the hold: a new topic now.
			added = true
			sub.Add(topic(other))
		}
		if added && pagesAtOther < 0 && (chased() || len(otherGot) > 0) {
			// Its catch-up is queued once its set is sent: the pages
			// count from then (or from its first envelope, if the
			// catch-up went by between two looks).
			pagesAtOther = sub.pages.Load()
		}
		select {
		case env := <-sub.Envelopes():
			f := strings.Fields(string(env.Message))
			k, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				t.Fatalf("envelope %q", env.Message)
			}
			if f[0] == other {
				otherGot = append(otherGot, k)
				if len(otherGot) == otherStored {
					pagesWaited = sub.pages.Load() - pagesAtOther
				}
			} else {
				sender, _ := strconv.Atoi(f[1])
				floodGot[sender] = append(floodGot[sender], k)
				floodCount++
			}
		case <-timeout:
			t.Fatalf("%d of %d flooded and %d of %d other envelopes after 90 s (%d overflows)", floodCount, total, len(otherGot), otherStored, sub.overflows.Load())
		}
	}
	wg.Wait()
	for sender, got := range floodGot {
		checkOrder(t, fmt.Sprintf("%s sender %d", name, sender), got)
	}
	checkOrder(t, other, otherGot)
	// Once the flood's catch-up has caught up, the hold may end before
	// it overflows again.
	if sub.overflows.Load() == 0 {
		t.Fatal("no overflow; the flood did not overflow the hold")
	}
	read := sub.queried.Load()
	t.Logf("%d overflows; catch-ups read %d envelopes for %d published, in %d pages; the new topic waited %d pages", sub.overflows.Load(), read, total+otherStored, sub.pages.Load(), pagesWaited)
	// Each envelope is read about once by the catch-ups: those the hold
	// dropped, and a page's worth around each overflow.
	if limit := int64(2 * (total + otherStored)); read > limit {
		t.Fatalf("catch-ups read %d envelopes for %d published; want at most %d: the flood is read again after each overflow", read, total+otherStored, limit)
	}
	// The new topic's catch-up goes in the next round of pages, beside
	// one page of the flooded topic (and of the idle topic's probe), not
	// after all of its pages.
	if pagesWaited > 6 {
		t.Fatalf("the topic added during the flood waited %d pages for its envelopes; want its catch-up beside the flood's next page", pagesWaited)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.holds[topic(name)] == nil && sub.heldBytes == 0
	}, "the flooded topic's hold ended after the flood")
}

// queriesSeen returns how many queries the node has answered, from its
// bridge_xmtpnode_query_duration_seconds histogram in reg.
func queriesSeen(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, mf := range mfs {
		if mf.GetName() == "bridge_xmtpnode_query_duration_seconds" {
			for _, m := range mf.GetMetric() {
				total += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return total
}

// syncBuffer is a log sink tests read while the subscription writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSubscriptionOverflowDuringQueryOutageKeepsTheBackoff: while its
// catch-up queries fail, a held topic's hold overflows again and again.
// The failure is logged as a warning, and the failed catch-up waits out
// its backoff (an hour here) before it is tried again, however many
// overflows want it sooner. The queries fail for real: the client refuses
// answers larger than 2 KiB, which a page of the topic's stored envelopes
// is, while each envelope the stream brings is smaller.
func TestSubscriptionOverflowDuringQueryOutageKeepsTheBackoff(t *testing.T) {
	reg := prometheus.NewRegistry()
	n := startNodeWith(t, node.Config{DatabaseURL: testDatabase(t), Registerer: reg})
	logs := &syncBuffer{}
	c := dial(t, n.GRPCAddr(),
		WithReconnectBackoff(time.Hour, time.Hour),
		WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		WithDialOptions(grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(2048))))
	c.opts.holdEnvelopes = 2
	c.opts.settle = 50 * time.Millisecond
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	sub.Add(topic("warm"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	const name = "outage"
	pad := strings.Repeat("x", 200)
	for i := range 20 {
		if err := c.Publish(ctx, nil, envAt(name, now(), fmt.Sprintf("stored %d %s", i, pad))); err != nil {
			t.Fatal(err)
		}
	}
	sub.Add(topic(name))
	testkit.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(logs.String(), "catch-up") }, "a log of the failed catch-up")
	before := queriesSeen(t, reg)
	for i := range 60 {
		if err := c.Publish(ctx, nil, envAt(name, now(), fmt.Sprintf("live %d", i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return sub.overflows.Load() >= 10 }, "ten overflows")
	// The settle delay's probes have long passed as well.
	time.Sleep(500 * time.Millisecond)
	if q := queriesSeen(t, reg) - before; q > 0 {
		t.Fatalf("the node answered %d catch-up queries after the first failed, during %d overflows; want none, the backoff being an hour", q, sub.overflows.Load())
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"xmtp catch-up failing") {
		t.Fatalf("the failed catch-up was not logged as a warning:\n%s", logs.String())
	}
}

// TestSubscriptionEmptyHoldEndsOnEvidence: a topic nothing is published
// to stays held, however many catch-ups run past the settle delay, until
// the stream shows that the node has applied the set that carries it: an
// envelope of that topic, or of a topic first carried by that set or a
// later one. A node that applied the set after the last of those
// catch-ups would otherwise have streamed nothing of what it stored in
// between, and nothing would have fetched it.
func TestSubscriptionEmptyHoldEndsOnEvidence(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr())
	c.opts.settle = 10 * time.Millisecond
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	sub.Add(topic("warm"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	held := func(name string) bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.holds[topic(name)] != nil
	}
	sent := func(name string) bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.setSent(topic(name))
	}
	seq := func() uint64 {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.catchSeq
	}
	// Three idle topics, each in a set of its own.
	from := seq()
	for _, name := range []string{"idle-a", "idle-b", "idle-c"} {
		sub.Add(topic(name))
		testkit.WaitFor(t, 10*time.Second, func() bool { return sent(name) }, "%s sent", name)
		time.Sleep(60 * time.Millisecond)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return seq() >= from+4 }, "four catch-ups")
	// Those after the settle delay have run too.
	time.Sleep(100 * time.Millisecond)
	for _, name := range []string{"idle-a", "idle-b", "idle-c"} {
		if !held(name) {
			t.Fatalf("%s: its hold ended without any sign that the node streams it", name)
		}
	}
	// An envelope of idle-b shows that the node applied idle-b's set,
	// and with it the earlier one of idle-a; idle-c's set may still wait.
	if err := c.Publish(ctx, nil, envAt("idle-b", now(), "b")); err != nil {
		t.Fatal(err)
	}
	got.expect(t, "b")
	testkit.WaitFor(t, 10*time.Second, func() bool { return !held("idle-a") && !held("idle-b") }, "the holds of idle-a and idle-b ended")
	if !held("idle-c") {
		t.Fatal("idle-c: its hold ended on an envelope of a topic of an earlier set")
	}
	if err := c.Publish(ctx, nil, envAt("idle-a", now(), "a"), envAt("idle-c", now(), "c")); err != nil {
		t.Fatal(err)
	}
	got.expect(t, "a", "c")
	testkit.WaitFor(t, 10*time.Second, func() bool { return !held("idle-c") }, "the hold of idle-c ended")
}

// TestSubscriptionTopicAddedAgainIsDeliveredWithoutProof: a topic removed
// and added again on the same connection proves nothing by its own
// envelopes, which may come from the set that carried it before; with no
// other traffic its hold stays, and each envelope the stream brings is
// fetched by a catch-up queued then, not at the next of the backed-off
// catch-ups (ten minutes away here).
func TestSubscriptionTopicAddedAgainIsDeliveredWithoutProof(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr())
	c.opts.settle = 10 * time.Minute
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	const name = "again"
	sub.Add(topic(name))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	held := func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.holds[topic(name)] != nil
	}
	// The first hold ends on an envelope the node streams: one
	// published before it applied the set is only fetched.
	for k := 0; held(); k++ {
		if k == 100 {
			t.Fatal("the first hold did not end")
		}
		msg := fmt.Sprintf("first %d", k)
		if err := c.Publish(ctx, nil, envAt(name, now(), msg)); err != nil {
			t.Fatal(err)
		}
		got.expect(t, msg)
		time.Sleep(20 * time.Millisecond)
	}
	sub.Remove(topic(name))
	time.Sleep(100 * time.Millisecond)
	sub.Add(topic(name))
	testkit.WaitFor(t, 10*time.Second, func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.setSent(topic(name))
	}, "the set carrying it again sent")
	time.Sleep(100 * time.Millisecond)
	for i := range 3 {
		msg := fmt.Sprintf("again %d", i)
		if err := c.Publish(ctx, nil, envAt(name, now(), msg)); err != nil {
			t.Fatal(err)
		}
		got.expect(t, msg)
	}
	if !held() {
		t.Fatal("the hold of the topic added again ended on its own envelopes")
	}
	// The catch-ups delivered what the hold kept: it keeps none of it,
	// or holds waiting for proof would fill the subscription's bound
	// with duplicates.
	testkit.WaitFor(t, 10*time.Second, func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		h := sub.holds[topic(name)]
		return h != nil && len(h.envs) == 0 && sub.heldBytes == 0
	}, "the hold waiting for proof empty of what the catch-ups delivered")
}

// TestSubscriptionLateSetLosesNothing: the node applies a topic set some
// time after the stream sends it, here because each set carries thousands
// of long topics, which the node must read, check and index, while the
// queries sent after it are small; the settle delay is shorter than that.
// A topic added while a sender keeps publishing to it must still get every
// envelope, in order: its hold may not end before the stream shows that
// the node streams it, or what the node stored between the last catch-up
// and applying the set would be neither streamed nor fetched.
func TestSubscriptionLateSetLosesNothing(t *testing.T) { lateSetRun(t) }

// TestSubscriptionLateSetWithProofsLosesNothing is
// TestSubscriptionLateSetLosesNothing with set proofs (proof.go): a
// proof published before the node applies its set is stored, not
// streamed, and proves nothing; the probes and the proofs published
// again with them still get every envelope, in order.
func TestSubscriptionLateSetWithProofsLosesNothing(t *testing.T) { lateSetRun(t, WithSetProofs(nil)) }

func lateSetRun(t *testing.T, opts ...Option) {
	const topics = 4000
	n := startNodeWith(t, node.Config{DatabaseURL: testDatabase(t), MaxTopicsPerRequest: topics + 10})
	c := dial(t, n.GRPCAddr(), append(opts, WithMaxTopicsPerStream(topics+10))...)
	c.opts.settle = time.Millisecond
	ctx := testkit.Context(t, 120*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	pad := strings.Repeat("p", 270)
	padding := make([]string, 0, topics)
	for i := range topics {
		padding = append(padding, topic(fmt.Sprintf("pad-%04d-%s", i, pad)))
	}
	sub.Add(padding...)
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	for i := range 10 {
		name := fmt.Sprintf("late-%d", i)
		checkOrder(t, name, orderRun(t, c, sub, sub.Envelopes(), name, 0, 300, 1, 0))
	}
}

// TestSubscriptionEnvelopesStampedInThePastDoNotStallAHold: the node
// takes any timestamp, and a hostile sender publishes batches of sixteen
// envelopes with the same sixteen stamps into a topic while it is held,
// more at a time than its hold keeps: stamped 1 to 16 ns, before where the
// topic's catch-up starts, or twenty seconds before the test, within the
// clock-skew allowance of that start. Their order against the topic's
// other envelopes means nothing, and they must neither restart the topic's
// catch-up from their stamps again and again nor keep its hold from
// ending: an honest sender's envelopes still all arrive, once and in
// order, the catch-ups read each envelope about once (those stored within
// the allowance are read by the topic's first catch-up and by the one of
// its proof), and the hold ends.
func TestSubscriptionEnvelopesStampedInThePastDoNotStallAHold(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	start := now()
	for _, tc := range []struct {
		name  string
		stamp uint64
		// limit is the most envelopes the catch-ups may read, given
		// how many were published in the past.
		limit func(past int) int64
	}{
		{"far-past", 1, func(int) int64 { return 4 * 90 }},
		{"within-skew", start - uint64(20*time.Second), func(past int) int64 { return int64(2 * (past + 90)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stampedRun(t, n, "stamped-"+tc.name, tc.stamp, tc.limit)
		})
	}
}

func stampedRun(t *testing.T, n *node.Node, name string, stamp uint64, limit func(past int) int64) {
	c := dial(t, n.GRPCAddr())
	c.opts.holdEnvelopes = 8
	ctx := testkit.Context(t, 120*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	sub.Add(topic("warm"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	const honest = 90
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var past int
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			envs := make([]*messagev1.Envelope, 0, 16)
			for k := range 16 {
				envs = append(envs, envAt(name, stamp+uint64(k), fmt.Sprintf("past %d %d", i, k)))
			}
			if err := c.Publish(ctx, nil, envs...); err != nil && ctx.Err() == nil {
				t.Errorf("publish: %v", err)
			}
			past += 16
			time.Sleep(time.Millisecond)
		}
	}()
	honestGot := make(chan *messagev1.Envelope, 1024)
	seenPast := map[string]bool{}
	var dupPast int
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for env := range sub.Envelopes() {
			if m := string(env.Message); strings.HasPrefix(m, "past ") {
				if seenPast[m] {
					dupPast++
				}
				seenPast[m] = true
				continue
			}
			honestGot <- env
		}
	}()
	// Thousands of the sender's envelopes are stored before the topic is
	// added.
	for i := range 200 {
		envs := make([]*messagev1.Envelope, 0, 16)
		for k := range 16 {
			envs = append(envs, envAt(name, stamp+uint64(k), fmt.Sprintf("past stored %d %d", i, k)))
		}
		if err := c.Publish(ctx, nil, envs...); err != nil {
			t.Fatal(err)
		}
	}
	checkOrder(t, name, orderRun(t, c, sub, honestGot, name, 0, honest, 1, 10*time.Millisecond))
	close(stop)
	wg.Wait()
	past += 200 * 16
	testkit.WaitFor(t, 20*time.Second, func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.holds[topic(name)] == nil && sub.heldBytes == 0
	}, "the hold ended")
	read := sub.queried.Load()
	t.Logf("%d envelopes stamped in the past published; catch-ups read %d envelopes in %d pages; %d overflows", past, read, sub.pages.Load(), sub.overflows.Load())
	if most := limit(past); read > most {
		t.Fatalf("catch-ups read %d envelopes for %d honest ones and %d stamped in the past; want at most %d: the envelopes stamped in the past restart the catch-up", read, honest, past, most)
	}
	sub.Close()
	<-forwarded
	if dupPast > 0 {
		t.Fatalf("%d envelopes stamped in the past delivered twice", dupPast)
	}
}

// TestSubscriptionPageOfARemovedTopicLeavesItsNewCatchUp: a catch-up page
// asked for a topic before it was removed comes back after the topic was
// added again and a new catch-up of it began. The page must not move or
// end the new catch-up: a new chase starts at the same generation as the
// old, and ending it would end the hold of the topic added again with no
// query begun after its proof. The catch-up loop is kept from running the
// new catch-up by a failing query (the client refuses answers over 2 KiB,
// which a page of the padded topic is) and a backoff of an hour; the page
// is answered by the node, and handed to the subscription as a round
// would.
func TestSubscriptionPageOfARemovedTopicLeavesItsNewCatchUp(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	logs := &syncBuffer{}
	c := dial(t, n.GRPCAddr(),
		WithReconnectBackoff(time.Hour, time.Hour),
		WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		WithDialOptions(grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(2048))))
	c.opts.settle = 10 * time.Minute
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	const name = "removed"
	sub.Add(topic(name))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	state := func() (held, chased bool) {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.holds[topic(name)] != nil, sub.chases[topic(name)] != nil
	}
	for k := 0; ; k++ {
		if held, chased := state(); !held && !chased {
			break
		}
		if k == 100 {
			t.Fatal("the first hold did not end")
		}
		msg := fmt.Sprintf("first %d", k)
		if err := c.Publish(ctx, nil, envAt(name, now(), msg)); err != nil {
			t.Fatal(err)
		}
		got.expect(t, msg)
		time.Sleep(20 * time.Millisecond)
	}
	// A page of a catch-up of the topic, as a round asks it.
	sub.mu.Lock()
	sub.restart(topic(name), sub.startOf(sub.topics[topic(name)]))
	p := sub.pageOf(topic(name), sub.chases[topic(name)])
	sub.mu.Unlock()
	resps, err := c.BatchQuery(ctx, []*messagev1.QueryRequest{p.req})
	if err != nil {
		t.Fatal(err)
	}
	sub.Remove(topic(name))
	// Stall the catch-up loop.
	pad := strings.Repeat("x", 200)
	for i := range 20 {
		if err := c.Publish(ctx, nil, envAt("padded", now(), fmt.Sprintf("stored %d %s", i, pad))); err != nil {
			t.Fatal(err)
		}
	}
	sub.Add(topic("padded"))
	testkit.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(logs.String(), "catch-up failing") }, "the catch-up failing")
	sub.Add(topic(name))
	testkit.WaitFor(t, 20*time.Second, func() bool { _, chased := state(); return chased }, "a new catch-up of the topic added again")
	sub.advance(p, resps[0])
	if _, chased := state(); !chased {
		t.Fatal("the answer to a page asked before the topic was removed ended the catch-up of the topic added again")
	}
}

// TestSubscriptionManyRemovesLeaveNewTopicsProvable: a connection on which
// thousands of topics were removed still proves the holds of topics added
// after, by their own envelopes; and once the node has applied the set
// that removed a topic, that topic added again proves itself too, and the
// stream forgets that it was removed.
func TestSubscriptionManyRemovesLeaveNewTopicsProvable(t *testing.T) {
	const topics = 4100
	n := startNodeWith(t, node.Config{DatabaseURL: testDatabase(t), MaxTopicsPerRequest: topics + 10})
	c := dial(t, n.GRPCAddr(), WithMaxTopicsPerStream(topics+10))
	c.opts.settle = 10 * time.Minute
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	many := make([]string, 0, topics)
	for i := range topics {
		many = append(many, topic(fmt.Sprintf("many-%04d", i)))
	}
	sub.Add(many...)
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	sent := func(name string) bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.setSent(topic(name))
	}
	held := func(name string) bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.holds[topic(name)] != nil
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return sent(fmt.Sprintf("many-%04d", topics-1)) }, "the set sent")
	sub.Remove(many...)
	for _, name := range []string{"new", "many-0000"} {
		sub.Add(topic(name))
		testkit.WaitFor(t, 20*time.Second, func() bool { return sent(name) }, "%s sent", name)
		// One published before the node applied the set is only
		// fetched; one it streams proves the hold.
		for k := 0; held(name); k++ {
			if k == 100 {
				t.Fatalf("%s: its hold did not end on its own envelopes", name)
			}
			msg := fmt.Sprintf("%s %d", name, k)
			if err := c.Publish(ctx, nil, envAt(name, now(), msg)); err != nil {
				t.Fatal(err)
			}
			got.expect(t, msg)
			time.Sleep(20 * time.Millisecond)
		}
	}
	sub.mu.Lock()
	gone := len(sub.streams[0].gone)
	sub.mu.Unlock()
	if gone > 0 {
		t.Fatalf("the stream still remembers %d removed topics after the node applied the set removing them", gone)
	}
}

// TestSubscriptionProvenTopicGoesBeforeProbes: thousands of idle topics
// are added, and their first catch-ups, probes that run until the stream
// proves them, make a long round of pages. A topic of an earlier set,
// proven by its own envelope meanwhile, must not wait for all of them:
// its catch-up, begun at the proof, goes in the next round, before the
// probes, and a round asks a bounded number of probe pages.
func TestSubscriptionProvenTopicGoesBeforeProbes(t *testing.T) {
	const topics = 3000
	n := startNodeWith(t, node.Config{DatabaseURL: testDatabase(t), MaxTopicsPerRequest: topics + 10})
	c := dial(t, n.GRPCAddr(), WithMaxTopicsPerStream(topics+10))
	c.opts.settle = 10 * time.Minute
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	const name = "proven"
	sub.Add(topic(name))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	quiet := func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return len(sub.chases) == 0 && sub.setSent(topic(name))
	}
	testkit.WaitFor(t, 20*time.Second, quiet, "the topic's first catch-up done")
	idle := make([]string, 0, topics)
	for i := range topics {
		idle = append(idle, topic(fmt.Sprintf("idle-%04d", i)))
	}
	before := sub.pages.Load()
	sub.Add(idle...)
	testkit.WaitFor(t, 20*time.Second, func() bool { return sub.pages.Load() > before }, "the probes begun")
	if err := c.Publish(ctx, nil, envAt(name, now(), "proof")); err != nil {
		t.Fatal(err)
	}
	state := func() (proven, held bool) {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		h := sub.holds[topic(name)]
		return h != nil && h.proven, h != nil
	}
	var atProof int64 = -1
	deadline := time.Now().Add(30 * time.Second)
	for {
		proven, held := state()
		if proven && atProof < 0 {
			atProof = sub.pages.Load()
		}
		if !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the proven topic's hold did not end")
		}
		time.Sleep(200 * time.Microsecond)
	}
	waited := sub.pages.Load() - atProof
	got.expect(t, "proof")
	t.Logf("the proven topic's hold ended %d pages after its proof; %d pages in all", waited, sub.pages.Load()-before)
	if atProof < 0 {
		t.Fatal("the proof was not seen")
	}
	if limit := int64(2*probeRoundPages + 1); waited > limit {
		t.Fatalf("the proven topic's catch-up waited %d pages; want at most %d", waited, limit)
	}
}

// TestSubscriptionFailingPageLeavesOtherTopicsCaughtUp: the catch-up of
// one topic fails on every try, here because the client refuses answers
// over 2 KiB and a page of the topic's stored envelopes is larger; the
// catch-ups of the other topics, asked in the same batch of queries, must
// still deliver what they find.
func TestSubscriptionFailingPageLeavesOtherTopicsCaughtUp(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr(),
		WithReconnectBackoff(time.Hour, time.Hour),
		WithDialOptions(grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(2048))))
	c.opts.settle = 10 * time.Minute
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	sub.Add(topic("warm"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	pad := strings.Repeat("x", 200)
	for i := range 20 {
		if err := c.Publish(ctx, nil, envAt("a-padded", now(), fmt.Sprintf("stored %d %s", i, pad))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Publish(ctx, nil, envAt("b-healthy", now(), "healthy")); err != nil {
		t.Fatal(err)
	}
	sub.Add(topic("a-padded"), topic("b-healthy"))
	got.expect(t, "healthy")
}

// TestOverflowKeepsASendersOrderBehindADroppedEnvelope: a proven hold
// overflows and drops a sender's envelopes, which its catch-up must fetch;
// then a catch-up page asked before the drop comes back past their stamps
// without them (another sender's envelopes, stamped later, stored
// first). When the hold overflows again, the sender's later envelopes
// must not go at once as stamped behind where the catch-up has got to:
// they would overtake the dropped ones. With no drop before the page they
// go at once, in the order they came. The subscription is built by hand,
// without its goroutines, so that the catch-up's state is the one set
// here when each envelope and the page come.
func TestOverflowKeepsASendersOrderBehindADroppedEnvelope(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr())
	c.opts.holdEnvelopes = 8
	const name = "overtake"
	at := func(ns uint64) *messagev1.Cursor {
		return &messagev1.Cursor{Cursor: &messagev1.Cursor_Index{Index: &messagev1.IndexCursor{SenderTimeNs: ns}}}
	}
	for _, tc := range []struct {
		name string
		drop bool // the hold overflows before the page comes
		want int  // envelopes of the second overflow delivered at once
	}{
		{"a dropped envelope still to fetch", true, 0},
		{"nothing dropped before the page", false, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testkit.Context(t, 10*time.Second)
			st := &stream{topics: map[string]struct{}{topic(name): {}}, epoch: 1, sets: 1, applied: 1}
			ch := &chase{start: 100, cursor: at(200), floor: noFloor}
			h := &hold{proven: true, epoch: 1, floor: noFloor, base: 1, reached: 200, chase: ch}
			s := &Subscription{
				c: c, ctx: ctx, out: make(chan *messagev1.Envelope, 64), wake: make(chan struct{}, 1),
				topics: map[string]*topicState{topic(name): {added: 1, stream: st, set: 1}},
				chases: map[string]*chase{topic(name): ch}, holds: map[string]*hold{topic(name): h}, recent: newRecentSet(64),
			}
			delivered := func() []int {
				var got []int
				for len(s.out) > 0 {
					f := strings.Fields(string((<-s.out).Message))
					k, _ := strconv.Atoi(f[len(f)-1])
					got = append(got, k)
				}
				return got
			}
			// One sender's envelopes, each stamped 400 and on; nine
			// overflow the hold of eight.
			next := 0
			overflow := func() {
				for range 9 {
					s.fromStream(st, envAt(name, uint64(400+next), fmt.Sprintf("sender %d", next)))
					next++
				}
			}
			if tc.drop {
				overflow()
				if got := delivered(); len(got) != 0 {
					t.Fatalf("the first overflow delivered %v at once", got)
				}
			} else {
				next = 9
			}
			pg := page{topic: topic(name), chase: ch, gen: ch.gen}
			s.advance(pg, &messagev1.QueryResponse{
				Envelopes:  []*messagev1.Envelope{envAt(name, 1000, "another sender")},
				PagingInfo: &messagev1.PagingInfo{Cursor: at(1000)},
			})
			overflow()
			got := delivered()
			if len(got) != tc.want {
				t.Fatalf("the second overflow delivered %v at once, want %d envelopes", got, tc.want)
			}
			for i, k := range got {
				if k != 9+i {
					t.Fatalf("delivered %v at once, want 9 to 17 in order", got)
				}
			}
			if tc.drop && (s.chases[topic(name)] == nil || s.chases[topic(name)].floor > 400) {
				t.Fatalf("the dropped envelopes are not fetched: chase %+v", s.chases[topic(name)])
			}
		})
	}
}

// TestPageDeliversNothingPastADroppedEnvelope: a topic's catch-up starts
// at another sender's envelope, which a hold overflow dropped, and its
// page is asked; while the page is on its way the hold overflows again
// and drops a sender's first envelopes, stamped a little before that
// start (the sender stamped them first, and they were stored after the
// other's). The page brings that sender's later envelopes but must not
// deliver them ahead of the dropped ones: the catch-up's next page
// fetches them all from the oldest dropped one, in order. The envelopes
// are stored on a real node and the pages asked of it; the subscription
// is built by hand, without its goroutines, so that the drop comes
// between the page's question and its answer.
func TestPageDeliversNothingPastADroppedEnvelope(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr())
	c.opts.holdEnvelopes = 8
	ctx := testkit.Context(t, 20*time.Second)
	const name = "page-past-drop"
	base := now()
	var mine []*messagev1.Envelope
	for i := range 21 {
		mine = append(mine, envAt(name, base+uint64(400+i), fmt.Sprintf("sender %d", i)))
	}
	for _, envs := range [][]*messagev1.Envelope{mine[:16], mine[16:]} {
		if err := c.Publish(ctx, nil, envs...); err != nil {
			t.Fatal(err)
		}
	}
	st := &stream{topics: map[string]struct{}{topic(name): {}}, epoch: 1, sets: 1, applied: 1}
	ch := &chase{start: base + 405, floor: noFloor}
	h := &hold{proven: true, epoch: 1, floor: noFloor, base: 1, chase: ch}
	s := &Subscription{
		c: c, ctx: ctx, out: make(chan *messagev1.Envelope, 64), wake: make(chan struct{}, 1),
		topics: map[string]*topicState{topic(name): {added: base, stream: st, set: 1}},
		chases: map[string]*chase{topic(name): ch}, holds: map[string]*hold{topic(name): h}, recent: newRecentSet(64),
	}
	s.mu.Lock()
	p := s.pageOf(topic(name), ch)
	s.mu.Unlock()
	// The stream brings the sender's first nine envelopes while the page
	// is asked: the ninth overflows the hold of eight.
	for _, env := range mine[:9] {
		s.fromStream(st, env)
	}
	if err := s.ask([]page{p}); err != nil {
		t.Fatal(err)
	}
	// The next rounds fetch the sender's envelopes from the first dropped
	// one and release the hold.
	for range 5 {
		if err := s.round(); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for len(s.out) > 0 {
		got = append(got, string((<-s.out).Message))
	}
	if len(got) != len(mine) {
		t.Fatalf("delivered %v; want the sender's %d envelopes", got, len(mine))
	}
	for i, m := range got {
		if m != string(mine[i].Message) {
			t.Fatalf("delivered %v; want the sender's envelopes in order", got)
		}
	}
	if s.holds[topic(name)] != nil || s.chases[topic(name)] != nil {
		t.Fatal("the catch-up did not end and release the hold")
	}
}

// TestPageGoesAfterHeldEnvelopesItPassed: a proven hold keeps a sender's
// envelope stamped behind where the catch-up of its proof has got to
// (stored after the pages passed its stamp), and the catch-up, started
// again at an envelope another overflow dropped, brings the sender's next
// envelope. The held one goes first: no page fetches it, and left for the
// release it would go after its successor. The envelopes are stored on a
// real node and the page asked of it; the subscription is built by hand,
// without its goroutines.
func TestPageGoesAfterHeldEnvelopesItPassed(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr())
	ctx := testkit.Context(t, 20*time.Second)
	const name = "page-after-held"
	base := now()
	first, next := envAt(name, base+500, "sender 0"), envAt(name, base+700, "sender 1")
	for _, env := range []*messagev1.Envelope{first, next} {
		if err := c.Publish(ctx, nil, env); err != nil {
			t.Fatal(err)
		}
	}
	st := &stream{topics: map[string]struct{}{topic(name): {}}, epoch: 1, sets: 1, applied: 1}
	// The chase of the proof got to base+550, then an overflow dropped an
	// envelope stamped base+600, where the catch-up starts again.
	proofChase := &chase{start: base + 100, floor: noFloor}
	h := &hold{proven: true, epoch: 1, floor: noFloor, base: 1, chase: proofChase, reached: base + 550}
	s := &Subscription{
		c: c, ctx: ctx, out: make(chan *messagev1.Envelope, 64), wake: make(chan struct{}, 1),
		topics: map[string]*topicState{topic(name): {added: base, stream: st, set: 1}},
		chases: map[string]*chase{topic(name): {start: base + 600, floor: noFloor}}, holds: map[string]*hold{topic(name): h}, recent: newRecentSet(64),
	}
	s.fromStream(st, first)
	if len(s.out) != 0 {
		t.Fatal("the held envelope went before the page came")
	}
	if err := s.round(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(s.out) > 0 {
		got = append(got, string((<-s.out).Message))
	}
	if strings.Join(got, ",") != "sender 0,sender 1" {
		t.Fatalf("delivered %v; want the sender's envelopes in order, [sender 0 sender 1]", got)
	}
	if s.holds[topic(name)] != nil {
		t.Fatal("the hold did not end")
	}
}
