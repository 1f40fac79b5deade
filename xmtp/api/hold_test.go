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
// order, once it has them all.
func orderRun(t *testing.T, c *Client, sub *Subscription, got <-chan *messagev1.Envelope, name string, stored, live, batch int) []int {
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
		checkOrder(t, name, orderRun(t, c, sub, sub.Envelopes(), name, 300, 100, 1))
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
				checkOrder(t, name, orderRun(t, c, sub, sub.Envelopes(), name, 200, 300, 10))
			}
			if sub.overflows.Load() == 0 {
				t.Fatal("no hold overflowed; the test did not exercise the bound")
			}
			t.Logf("%d overflows", sub.overflows.Load())
			sub.mu.Lock()
			defer sub.mu.Unlock()
			if sub.heldBytes != 0 {
				t.Fatalf("%d bytes still counted as held with nothing held", sub.heldBytes)
			}
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
