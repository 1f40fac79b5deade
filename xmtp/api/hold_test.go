package api

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/xmtp/node"
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
// envelope's timestamp, and one whose clock is ten minutes behind sends
// envelopes far below the topic's last delivered one. When such envelopes
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
	sub.holdTopic(topic(name), sub.topics[topic(name)].stream.epoch)
	sub.mu.Unlock()
	behind := now() - uint64(10*time.Minute)
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
