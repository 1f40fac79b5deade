package api

import (
	"fmt"
	"github.com/jackc/pgx/v5"
	"strings"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// heldTopics returns how many of names the subscription still holds.
func heldTopics(sub *Subscription, names ...string) int {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	n := 0
	for _, name := range names {
		if sub.holds[topic(name)] != nil {
			n++
		}
	}
	return n
}

// TestSubscriptionProofEndsIdleHolds: with set proofs, idle topics that
// nothing is ever published to, added in two sets, are proven by their
// sets' own proof envelopes: each hold ends after one catch-up query,
// the one the proof queues. The settle delay is longer than the test, so
// no probe can fire: only a proof can end these holds, and nothing
// queries them after. A reconnection proves them all again the same way,
// by a proof of the new connection. Without proofs their holds would
// stay.
func TestSubscriptionProofEndsIdleHolds(t *testing.T) {
	db := testDatabase(t)
	first := startNode(t, db, "", false)
	addr := first.GRPCAddr()
	c := dial(t, addr, WithSetProofs(nil), WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond))
	c.opts.settle = 10 * time.Minute
	ctx := testkit.Context(t, 90*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	idle := []string{"idle-a", "idle-b", "idle-c"}
	var later []string
	for i := range 20 {
		later = append(later, fmt.Sprintf("idle-later-%02d", i))
	}
	all := append(append([]string(nil), idle...), later...)
	add := func(names []string) {
		for _, name := range names {
			sub.Add(topic(name))
		}
	}
	add(idle)
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	testkit.WaitFor(t, 20*time.Second, func() bool { return heldTopics(sub, idle...) == 0 }, "the holds of the first set ended")
	time.Sleep(100 * time.Millisecond)
	add(later)
	testkit.WaitFor(t, 20*time.Second, func() bool { return heldTopics(sub, all...) == 0 }, "the holds of the second set ended")
	if q := sub.pages.Load(); q != int64(len(all)) {
		t.Fatalf("%d catch-up queries to end the holds of %d idle topics; want one each", q, len(all))
	}
	before := sub.pages.Load()
	time.Sleep(2 * time.Second)
	if q := sub.pages.Load() - before; q != 0 {
		t.Fatalf("%d catch-up queries of proven idle topics; want none", q)
	}
	if sub.proofsSeen.Load() < 2 || sub.proofsFailed.Load() != 0 {
		t.Fatalf("proofs seen %d, failed %d; want both sets' proofs", sub.proofsSeen.Load(), sub.proofsFailed.Load())
	}
	// Proof topics are ephemeral: the node relayed the proofs and stored
	// none of them.
	if stored := storedProofs(t, db); stored != 0 {
		t.Fatalf("the node stored %d proof envelopes, want none", stored)
	}

	// A reconnection holds every topic again; its first set's proof
	// proves them all, with one catch-up each.
	stopNode(t, first)
	testkit.WaitFor(t, 20*time.Second, func() bool { return !sub.Connected() }, "disconnected")
	seen, before := sub.proofsSeen.Load(), sub.pages.Load()
	startNode(t, db, addr, false)
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "reconnected")
	testkit.WaitFor(t, 20*time.Second, func() bool { return heldTopics(sub, all...) == 0 }, "the holds ended after the reconnection")
	if sub.proofsSeen.Load() == seen {
		t.Fatal("the holds of the new connection ended without its proof")
	}
	if q := sub.pages.Load() - before; q != int64(len(all)) {
		t.Fatalf("%d catch-up queries to end the holds of %d idle topics after the reconnection; want one each", q, len(all))
	}
	before = sub.pages.Load()
	time.Sleep(2 * time.Second)
	if q := sub.pages.Load() - before; q != 0 {
		t.Fatalf("%d catch-up queries of proven idle topics after the reconnection; want none", q)
	}
	// And a topic of them still gets what is published to it.
	if err := c.Publish(ctx, nil, envAt("idle-b", now(), "b")); err != nil {
		t.Fatal(err)
	}
	got.expect(t, "b")
}

// TestSubscriptionProvenSetsDeliverOnce: ten sets, each proven by its
// own proof envelope (the settle delay is longer than the test, so no
// probe runs and only a proof ends a hold), deliver the envelopes of
// their topics once each, whether stored before the topic was added or
// published after, and the consumer never gets a proof envelope. That
// last holds twice over: fromStream stops at a proof (proofOf), and
// deliver drops any envelope of a topic the subscription does not have,
// as a proof topic never is; no test can tell the two apart, so this one
// does not claim to test proofOf's answer, only that proofs prove.
func TestSubscriptionProvenSetsDeliverOnce(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr(), WithSetProofs(nil))
	c.opts.settle = 10 * time.Minute
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	out := make(chan string, 1000)
	go func() {
		for e := range sub.Envelopes() {
			out <- e.ContentTopic + " " + string(e.Message)
		}
		close(out)
	}()
	var want []string
	for i := range 10 {
		name := fmt.Sprintf("inside-%d", i)
		if err := c.Publish(ctx, nil, envAt(name, now(), "stored")); err != nil {
			t.Fatal(err)
		}
		sub.Add(topic(name))
		want = append(want, topic(name)+" stored")
		time.Sleep(70 * time.Millisecond) // a set each, and a proof each
	}
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	for i := range 10 {
		name := fmt.Sprintf("inside-%d", i)
		testkit.WaitFor(t, 10*time.Second, func() bool { return heldTopics(sub, name) == 0 }, "%s proven", name)
		if err := c.Publish(ctx, nil, envAt(name, now(), "live")); err != nil {
			t.Fatal(err)
		}
		want = append(want, topic(name)+" live")
	}
	need := map[string]bool{}
	for _, w := range want {
		need[w] = true
	}
	timeout := time.After(30 * time.Second)
	for len(need) > 0 {
		select {
		case m := <-out:
			if strings.HasPrefix(m, proofTopicPrefix) || !need[m] {
				t.Fatalf("the consumer got %q", m)
			}
			delete(need, m)
		case <-timeout:
			t.Fatalf("still waiting for %v", need)
		}
	}
	if sub.proofsSeen.Load() == 0 {
		t.Fatal("no proof envelope came back")
	}
	// Proofs of later sets, and anything else, would come now.
	select {
	case m := <-out:
		t.Fatalf("the consumer got %q", m)
	case <-time.After(time.Second):
	}
}

// TestSubscriptionRefusedProofsFallBackToProbes: the node requires auth
// and the subscription has no token for its proofs, so every proof
// publish is refused. The probes still deliver everything, stored before
// a topic was added or published while it is held, and keep their
// backoff: a held idle topic is queried a few times in three seconds,
// not at every settle delay.
func TestSubscriptionRefusedProofsFallBackToProbes(t *testing.T) {
	n := startNode(t, testDatabase(t), "", true)
	c := dial(t, n.GRPCAddr(), WithSetProofs(nil))
	c.opts.settle = 100 * time.Millisecond
	ctx := testkit.Context(t, 60*time.Second)
	bundle, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	auth := keys.NewAuthorizer(bundle)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	sub.Add(topic("refused-warm"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	if err := c.Publish(ctx, auth, envAt("refused", now(), "stored")); err != nil {
		t.Fatal(err)
	}
	sub.Add(topic("refused"))
	got.expect(t, "stored")
	for i := range 5 {
		msg := fmt.Sprintf("live %d", i)
		if err := c.Publish(ctx, auth, envAt("refused", now(), msg)); err != nil {
			t.Fatal(err)
		}
		got.expect(t, msg)
	}
	// An idle topic in a set of its own: nothing proves it.
	before := sub.pages.Load()
	sub.Add(topic("refused-idle"))
	time.Sleep(3 * time.Second)
	if sub.proofsFailed.Load() == 0 || sub.proofsSeen.Load() != 0 {
		t.Fatalf("proofs failed %d, seen %d; want every one refused", sub.proofsFailed.Load(), sub.proofsSeen.Load())
	}
	if heldTopics(sub, "refused-idle") != 1 {
		t.Fatal("the idle topic's hold ended without proof")
	}
	// Probed at once when its proof was refused, then at about 0.1, 0.5
	// and 2.1 s: at most four catch-ups in the three seconds, at least
	// one.
	if q := sub.pages.Load() - before; q < 1 || q > 4 {
		t.Fatalf("%d catch-up queries of a held idle topic in 3 s; want the probes, with their backoff", q)
	}
	if err := c.Publish(ctx, auth, envAt("refused-idle", now(), "idle")); err != nil {
		t.Fatal(err)
	}
	got.expect(t, "idle")
}

// proofOfSet returns the stream and proof topic of the set that numbered
// name's topic, once one did.
func proofOfSet(sub *Subscription, name string) (*stream, string, uint64) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	ts := sub.topics[topic(name)]
	if ts == nil || ts.stream == nil || ts.set == 0 {
		return nil, "", 0
	}
	for p, n := range ts.stream.proofs {
		if n == ts.set {
			return ts.stream, p, n
		}
	}
	return nil, "", 0
}

// TestSubscriptionProofProvesOnlyItsSets: the proof of set N comes after
// set N+1 is numbered. It proves set N and the ones before, never N+1,
// whose topics stay held, probed, until their own set's proof comes.
// The node requires auth and the subscription's own proof publishes are
// refused, so nothing else proves a set; the test publishes N+1's proof
// itself. Set N's envelope is given to the stream's handler as the
// stream would bring it: the node streams it only between applying N
// and N+1, a window the test cannot aim at from outside.
func TestSubscriptionProofProvesOnlyItsSets(t *testing.T) {
	n := startNode(t, testDatabase(t), "", true)
	c := dial(t, n.GRPCAddr(), WithSetProofs(nil))
	c.opts.settle = 100 * time.Millisecond
	ctx := testkit.Context(t, 60*time.Second)
	bundle, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	auth := keys.NewAuthorizer(bundle)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	sub.Add(topic("only-early"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	var st *stream
	var early string
	var setN uint64
	testkit.WaitFor(t, 10*time.Second, func() bool { st, early, setN = proofOfSet(sub, "only-early"); return early != "" }, "the first set numbered")
	sub.Add(topic("only-late"))
	var late string
	var setM uint64
	testkit.WaitFor(t, 10*time.Second, func() bool { _, late, setM = proofOfSet(sub, "only-late"); return late != "" }, "the second set numbered")
	if setM <= setN {
		t.Fatalf("sets %d then %d", setN, setM)
	}
	sub.fromStream(st, &messagev1.Envelope{ContentTopic: early, TimestampNs: now(), Message: []byte("proof")})
	testkit.WaitFor(t, 10*time.Second, func() bool { return heldTopics(sub, "only-early") == 0 }, "the early topic proven")
	// The late topic's probes go on, and prove nothing.
	time.Sleep(time.Second)
	if heldTopics(sub, "only-late") != 1 {
		t.Fatalf("the proof of set %d ended the hold of a topic of set %d", setN, setM)
	}
	env := &messagev1.Envelope{ContentTopic: late, TimestampNs: now(), Message: []byte("proof")}
	if err := c.Publish(ctx, auth, env); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return heldTopics(sub, "only-late") == 0 }, "the late topic proven by its own set's proof")
	if err := c.Publish(ctx, auth, envAt("only-late", now(), "late")); err != nil {
		t.Fatal(err)
	}
	got.expect(t, "late")
}

// TestSubscriptionRemovalSetsPublishNoProof: a set that only removes a
// topic publishes no proof; the set that adds it again does, and proves
// it, so that what is published to it then is delivered.
func TestSubscriptionRemovalSetsPublishNoProof(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	c := dial(t, n.GRPCAddr(), WithSetProofs(nil))
	c.opts.settle = 10 * time.Minute
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	sub.Add(topic("removal-kept"), topic("removal-gone"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	testkit.WaitFor(t, 20*time.Second, func() bool { return heldTopics(sub, "removal-kept", "removal-gone") == 0 }, "proven")
	sets := func() uint64 {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.streams[0].sets
	}
	// No publish of the first set's proof under way (a repeat counts
	// before it publishes, and as sent after).
	testkit.WaitFor(t, 10*time.Second, func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.streams[0].proofBusy == 0
	}, "the first set's proof publishes done")
	before, sent, repeated := sets(), sub.proofsSent.Load(), sub.proofsRepeated.Load()
	sub.Remove(topic("removal-gone"))
	testkit.WaitFor(t, 10*time.Second, func() bool { return sets() > before }, "the removal's set sent")
	time.Sleep(500 * time.Millisecond)
	if d := sub.proofsSent.Load() - sent; d != 0 {
		t.Fatalf("%d proofs published for a set that only removes a topic; want none", d)
	}
	sub.Add(topic("removal-gone"))
	testkit.WaitFor(t, 20*time.Second, func() bool { return heldTopics(sub, "removal-gone") == 0 }, "the re-added topic proven")
	if sub.proofsSent.Load()-sub.proofsRepeated.Load() != sent+1-repeated {
		t.Fatalf("proofs published %d (%d of them again), want one more than %d (%d)", sub.proofsSent.Load(), sub.proofsRepeated.Load(), sent, repeated)
	}
	if err := c.Publish(ctx, nil, envAt("removal-gone", now(), "back")); err != nil {
		t.Fatal(err)
	}
	got.expect(t, "back")
}

// storedProofs counts the proof envelopes the node stored in db.
func storedProofs(t testing.TB, db string) int {
	t.Helper()
	ctx := testkit.Context(t, 10*time.Second)
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var stored int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM xmtp_envelopes WHERE topic LIKE $1", proofTopicPrefix+"%").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	return stored
}
