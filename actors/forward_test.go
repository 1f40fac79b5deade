package actors

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/client"
)

// TestForwardRoundTrip: a Go XMTP client messages a bridge, the target
// receives the body with a valid signature and answers, and the client
// receives the answer as a reply, in both body formats.
func TestForwardRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	relay := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	jsonTarget := webhooktest.NewTarget(t, persistence.FormatJSON)
	b1, s1 := e.bridge(relay.URL, persistence.FormatRelaycc, nil)
	b2, s2 := e.bridge(jsonTarget.URL, persistence.FormatJSON, nil)
	relay.SetSecret(s1)
	jsonTarget.SetSecret(s2)
	rt, _ := e.runtime("n1", nil)
	for _, id := range []string{b1.ID, b2.ID} {
		if _, ok := rt.Status(id); !ok {
			t.Fatalf("bridge %s not active after start", id)
		}
	}
	c := e.sender()
	ctx := context.Background()
	if _, err := c.SendText(ctx, b1.Address, "hello"); err != nil {
		t.Fatalf("send: %v", err)
	}
	if _, err := c.SendText(ctx, b2.Address, "hi json"); err != nil {
		t.Fatalf("send: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		got := messagesFrom(t, c, b1.Address)
		return len(got) == 1 && got[0] == "echo: hello"
	}, "relaycc reply")
	testkit.WaitFor(t, 20*time.Second, func() bool {
		got := messagesFrom(t, c, b2.Address)
		return len(got) == 1 && got[0] == "echo: hi json"
	}, "json reply")
	if len(relay.BadSignatures())+len(jsonTarget.BadSignatures()) != 0 {
		t.Fatalf("targets saw bad signatures: %v %v", relay.BadSignatures(), jsonTarget.BadSignatures())
	}
	// Both identities and all their topics share the node's one
	// subscription: the XMTP node sees a single subscriber.
	if got := counterValue(t, e.nodeReg, "bridge_xmtpnode_subscribers", nil); got != 1 {
		t.Fatalf("node subscribers = %v, want 1", got)
	}
}

// TestTargetDownThenUp: a target that fails for a while gets every message
// after it recovers, and each sender gets exactly one reply per message.
func TestTargetDownThenUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	down := make(chan struct{})
	tg.SetStatus(func(string) int {
		select {
		case <-down:
			return 200
		default:
			return 503
		}
	})
	_, reg := e.runtime("n1", nil)
	c := e.sender()
	want := []string{"m1", "m2", "m3", "m4", "m5"}
	for _, m := range want {
		if _, err := c.SendText(context.Background(), b.Address, m); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		return counterValue(t, reg, "bridge_forward_deliveries_total", map[string]string{"outcome": "throttled"}) >= 5
	}, "failed attempts")
	close(down)
	testkit.WaitFor(t, 20*time.Second, func() bool {
		for _, m := range want {
			if !tg.Has(m) {
				return false
			}
		}
		return true
	}, "every message delivered")
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) >= len(want) }, "every reply")
	pgtest.WaitQuiet(t, e.db, 20*time.Second, b.ID)
	got := messagesFrom(t, c, b.Address)
	if len(got) != len(want) {
		t.Fatalf("replies = %s, want %d", joined(got), len(want))
	}
}

// TestTargetNeverRecovers: deliveries to a target that never recovers end
// as dead letters after their attempts.
func TestTargetNeverRecovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	var up atomic.Bool
	tg.SetStatus(func(string) int {
		if up.Load() {
			return 200
		}
		return 500
	})
	rt, _ := e.runtime("n1", func(c *Config) {
		c.Retry.MaxAttempts = 3
		c.SweepInterval = time.Hour // the replay below is picked up by Nudge
	})
	c := e.sender()
	for _, m := range []string{"a", "b"} {
		if _, err := c.SendText(context.Background(), b.Address, m); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	testkit.WaitFor(t, 45*time.Second, func() bool {
		dead, _, err := e.store.ListDeliveries(context.Background(), e.account.ID, b.ID, persistence.DeliveryDead, persistence.Page{})
		if err != nil {
			t.Fatalf("list dead letters: %v", err)
		}
		for _, d := range dead {
			if d.Attempts != 3 {
				t.Fatalf("dead letter after %d attempts, want 3", d.Attempts)
			}
		}
		return len(dead) == 2
	}, "two dead letters")
	// The owner fixes the endpoint and replays the dead letters.
	up.Store(true)
	ctx := context.Background()
	dead, _, err := e.store.ListDeliveries(ctx, e.account.ID, b.ID, persistence.DeliveryDead, persistence.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dead {
		if _, err := e.store.ReplayDeadLetter(ctx, e.account.ID, b.ID, d.ID); err != nil {
			t.Fatalf("replay: %v", err)
		}
	}
	rt.Nudge(b.ID)
	testkit.WaitFor(t, 20*time.Second, func() bool { return tg.Has("a") && tg.Has("b") }, "replayed dead letters")
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) == 2 }, "replies to replayed messages")
}

// TestAllowDeny: a denied sender's messages are not forwarded; with an
// allow-list only listed senders are.
func TestAllowDeny(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	friend, stranger, enemy := e.sender(), e.sender(), e.sender()
	b1, s1 := e.bridge(tg.URL, persistence.FormatJSON, func(f *persistence.ForwardConfig) {
		f.DenySenders = []string{strings.ToLower(enemy.Address())}
	})
	tg.SetSecret(s1)
	tg2 := webhooktest.NewTarget(t, persistence.FormatJSON)
	b2, s2 := e.bridge(tg2.URL, persistence.FormatJSON, func(f *persistence.ForwardConfig) {
		f.AllowSenders = []string{friend.Address()}
	})
	tg2.SetSecret(s2)
	e.runtime("n1", nil)
	ctx := context.Background()
	for _, m := range []struct {
		c    *client.Client
		to   string
		text string
	}{
		{enemy, b1.Address, "enemy to 1"}, {friend, b1.Address, "friend to 1"},
		{stranger, b2.Address, "stranger to 2"}, {friend, b2.Address, "friend to 2"},
	} {
		if _, err := m.c.SendText(ctx, m.to, m.text); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return tg.Has("friend to 1") && tg2.Has("friend to 2") }, "allowed messages")
	// Each identity handles its envelopes in order and the excluded
	// messages came first: had they been let through, their delivery rows
	// would exist by now.
	for _, b := range []persistence.Bridge{b1, b2} {
		ds, _, err := e.store.ListDeliveries(ctx, e.account.ID, b.ID, "", persistence.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].SenderAddress != friend.Address() {
			t.Fatalf("deliveries of %s = %+v, want only the friend's", b.ID, ds)
		}
	}
	if tg.Has("enemy to 1") || tg2.Has("stranger to 2") {
		t.Fatalf("excluded senders forwarded: %v %v", tg.Contents(), tg2.Contents())
	}
}

// TestEndpointGone: a 410 marks the bridge endpoint_gone and stops
// forwarding. A message that arrives while it is gone is stored but never
// attempted, through many sweeps; once the owner sets the bridge active
// again it is delivered, on its first attempt, and the 410's dead delivery
// is not retried.
func TestEndpointGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	var mu sync.Mutex
	gone := true
	refused := map[string]int{} // requests answered 410, by text
	tg.SetStatus(func(text string) int {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			refused[text]++
			return 410
		}
		return 200
	})
	refusedOf := func(text string) int {
		mu.Lock()
		defer mu.Unlock()
		return refused[text]
	}
	rt, _ := e.runtime("n1", nil)
	ctx := context.Background()
	c := e.sender()
	if _, err := c.SendText(ctx, b.Address, "x"); err != nil {
		t.Fatalf("send: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		got, err := e.store.BridgeByID(ctx, b.ID)
		return err == nil && got.Status == persistence.StatusEndpointGone
	}, "status endpoint_gone")

	if _, err := c.SendText(ctx, b.Address, "y"); err != nil {
		t.Fatalf("send: %v", err)
	}
	second := func() (persistence.Delivery, bool) {
		ds, _, err := e.store.ListDeliveries(ctx, e.account.ID, b.ID, "", persistence.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 2 {
			return persistence.Delivery{}, false
		}
		first := ds[0]
		for _, d := range ds {
			if d.ID < first.ID {
				first = d
			}
		}
		for _, d := range ds {
			if d.ID != first.ID {
				return d, true
			}
		}
		return persistence.Delivery{}, false
	}
	var y persistence.Delivery
	testkit.WaitFor(t, 20*time.Second, func() bool {
		var ok bool
		y, ok = second()
		return ok
	}, "the second message stored")
	// Forwarding would start at once and at every sweep; none may happen
	// over ten sweep intervals.
	for end := time.Now().Add(10 * rt.cfg.SweepInterval); time.Now().Before(end); time.Sleep(rt.cfg.SweepInterval / 4) {
		d, _ := second()
		if n := refusedOf("y"); n != 0 || d.Attempts != 0 || d.Status != persistence.DeliveryPending {
			t.Fatalf("a message to an endpoint_gone bridge was forwarded: %d requests, delivery %s after %d attempts", n, d.Status, d.Attempts)
		}
	}

	mu.Lock()
	gone = false
	mu.Unlock()
	if err := e.store.SetBridgeStatus(ctx, b.ID, persistence.StatusActive); err != nil {
		t.Fatal(err)
	}
	rt.Nudge(b.ID)
	testkit.WaitFor(t, 20*time.Second, func() bool {
		d, _ := second()
		return d.Status == persistence.DeliverySucceeded
	}, "the stored message delivered after reactivation")
	if d, _ := second(); d.ID != y.ID || d.Attempts != 1 {
		t.Fatalf("stored message %+v, want delivery %d on its first attempt", d, y.ID)
	}
	if got := tg.Contents(); len(got) != 1 || got[0] != "y" || refusedOf("x") != 1 {
		t.Fatalf("target received %q and refused x %d times; want only y, and x refused once", got, refusedOf("x"))
	}
}

// TestFirstAttemptsStartFromTheRecord: a new message's first attempt
// starts from the row and the secrets read in the round trip that recorded
// it, with no read of its own; a message that waits for a concurrency slot
// is read again when its turn comes, so a secret rotated with no grace
// period while it waited signs its request.
func TestFirstAttemptsStartFromTheRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	release := make(chan struct{})
	tg.SetStatus(func(content string) int {
		if content == "hold" {
			<-release
		}
		return 200
	})
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, func(fc *persistence.ForwardConfig) { fc.MaxConcurrency = 1 })
	tg.SetSecret(secret)
	// The scheduler's periodic pass would sweep the bridge at any
	// moment, and a sweep that reads a new row before its identity hands
	// it over starts its attempt first, reading the row (harmless, but
	// not what is counted here).
	// Early attempts (early.go) start before the record's answer, and are
	// counted apart: this test is about the usual start.
	rt, reg := e.runtime("n1", func(c *Config) { c.SweepInterval = time.Hour; c.earlyOff = true })
	c := e.sender()
	ctx := context.Background()
	starts := func(source string) float64 {
		return counterValue(t, reg, "bridge_forward_attempt_starts_total", map[string]string{"source": source})
	}
	// The first message spawns the forward child, whose first sweep
	// may race it.
	if _, err := c.SendText(ctx, b.Address, "zero"); err != nil {
		t.Fatalf("send: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) == 1 }, "the first reply")
	testkit.WaitFor(t, 20*time.Second, func() bool { return attemptsRunning(rt, b.ID) == 0 }, "the slot of zero free")
	base := starts("recorded")
	// One at a time, each after the previous one's reply: with one slot,
	// a message that comes while the previous attempt is still recording
	// its outcome waits for the slot.
	for i, text := range []string{"one", "two", "three"} {
		if _, err := c.SendText(ctx, b.Address, text); err != nil {
			t.Fatalf("send: %v", err)
		}
		testkit.WaitFor(t, 20*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) == i+2 }, "the reply to %s", text)
		// The reply is out before its attempt gives its slot back; the
		// next message comes once the slot is free.
		testkit.WaitFor(t, 20*time.Second, func() bool { return attemptsRunning(rt, b.ID) == 0 }, "the slot of %s free", text)
	}
	// (A sweep that read a row just before its attempt ended may start
	// a second attempt, which reads the row, finds it done and stops: a
	// "read" start that calls nobody.)
	if got := starts("recorded") - base; got != 3 {
		t.Fatalf("attempt starts from the record: %v, want 3, one per new message", got)
	}
	// One attempt at a time: "hold" holds the only slot, and the next
	// three wait for it.
	if _, err := c.SendText(ctx, b.Address, "hold"); err != nil {
		t.Fatalf("send: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return starts("recorded")-base == 4 }, "the held attempt")
	for _, text := range []string{"a", "b", "c"} {
		if _, err := c.SendText(ctx, b.Address, text); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		ds, _, err := e.store.ListDeliveries(ctx, e.account.ID, b.ID, "", persistence.Page{Limit: 100})
		return err == nil && len(ds) == 8
	}, "the three waiting messages recorded")
	rotated, err := e.store.RotateWebhookSecret(ctx, e.account.ID, b.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	tg.SetSecret(rotated)
	close(release)
	for _, text := range []string{"a", "b", "c"} {
		testkit.WaitFor(t, 20*time.Second, func() bool { return tg.Has(text) }, "the request of %s", text)
	}
	if bad := tg.BadSignatures(); len(bad) != 0 {
		t.Fatalf("requests signed with the rotated-out secret: %v", bad)
	}
	if got, read := starts("recorded")-base, starts("read"); got != 4 || read < 3 {
		t.Fatalf("attempt starts: %v from the record, %v read; want 4, and the three that waited read", got, read)
	}
	if got := tg.Requests(); got != 8 {
		t.Fatalf("the target accepted %d requests, want 8, one per message", got)
	}
}

// TestCursorsAreWrittenBeforeTheLeaseIsReleased: the node writes cursor
// moves in batches, off the identity's mailbox; an identity that stops
// still writes its last moves under its lease before releasing it, so the
// next activation starts after them, and a clean stop counts no fenced
// write.
func TestCursorsAreWrittenBeforeTheLeaseIsReleased(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	rt, reg := e.runtime("n1", nil)
	c := e.sender()
	ctx := context.Background()
	var last *client.Sent
	for i := range 5 {
		sent, err := c.SendText(ctx, b.Address, fmt.Sprintf("m-%d", i))
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		last = sent
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) == 5 }, "five replies")
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rt.Stop(stopCtx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	checkCursorAfterStop(t, e, reg, b.ID, last)
}

// checkCursorAfterStop fails unless, after a clean stop, the cursor of
// last's conversation stands at last and no write was fenced.
func checkCursorAfterStop(t *testing.T, e *env, reg *prometheus.Registry, bridgeID string, last *client.Sent) {
	t.Helper()
	cursors, err := e.store.Cursors(context.Background(), bridgeID)
	if err != nil {
		t.Fatal(err)
	}
	cur, ok := cursors[last.Topic]
	if !ok || cur.LastTimestampNs != last.Sent.UnixNano() {
		t.Fatalf("the conversation's cursor after a stop: %+v (found %v); want it at the last message, sent at %d", cur, ok, last.Sent.UnixNano())
	}
	if got := counterValue(t, reg, "bridge_cluster_fenced_writes_total", nil); got != 0 {
		t.Fatalf("a clean stop counted %v fenced writes", got)
	}
}

// TestLingeringCursorMovesAreWrittenBeforeTheLeaseIsReleased: cursor moves
// linger in the node's writer for more to join their statement
// (cursorLinger); an identity that stops while its last moves linger
// there, with nothing left to flush of its own, hurries them and waits
// for them before it releases its lease, so the next activation starts
// after them; and the stop does not wait out the linger.
func TestLingeringCursorMovesAreWrittenBeforeTheLeaseIsReleased(t *testing.T) {
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	rt, reg := e.runtime("n1", nil)
	// Far longer than the test: every move is still lingering at the stop.
	rt.cursors.mu.Lock()
	rt.cursors.linger = time.Minute
	rt.cursors.mu.Unlock()
	c := e.sender()
	ctx := context.Background()
	var last *client.Sent
	for i := range 5 {
		sent, err := c.SendText(ctx, b.Address, fmt.Sprintf("m-%d", i))
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		last = sent
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) == 5 }, "five replies")
	// The last move has left the identity for the writer, where it lingers.
	testkit.WaitFor(t, 10*time.Second, func() bool {
		rt.cursors.mu.Lock()
		defer rt.cursors.mu.Unlock()
		for _, q := range rt.cursors.queue {
			if q.req.move.TimestampNs == last.Sent.UnixNano() {
				return true
			}
		}
		return false
	}, "the last cursor move lingering in the writer")
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	began := time.Now()
	if err := rt.Stop(stopCtx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("the stop took %v: it waited for the lingering moves instead of hurrying them", took)
	}
	checkCursorAfterStop(t, e, reg, b.ID, last)
}

// TestRepliesOfABurstArePublishedOnceAndRecorded: a burst's replies are
// published in batches, and each batch's outcome is recorded beside the
// next publish; every reply ends recorded as sent, and none is published
// twice (a sweep leaves replies alone until their outcome is stored).
func TestRepliesOfABurstArePublishedOnceAndRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	_, reg := e.runtime("n1", nil)
	ctx := context.Background()
	const senders, each = 4, 10
	var clients []*client.Client
	for range senders {
		clients = append(clients, e.sender())
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				if _, err := c.SendText(ctx, b.Address, fmt.Sprintf("s%d-%d", i, k)); err != nil {
					t.Errorf("send: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	for _, c := range clients {
		testkit.WaitFor(t, 30*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) >= each }, "the replies of a sender")
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		var unsent int
		err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM reply_outbox WHERE bridge_id = $1 AND status <> 'sent'`, b.ID).Scan(&unsent)
		return err == nil && unsent == 0
	}, "every reply recorded as sent")
	var rows int
	if err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM reply_outbox WHERE bridge_id = $1`, b.ID).Scan(&rows); err != nil || rows != senders*each {
		t.Fatalf("%d outbox rows (%v), want %d", rows, err, senders*each)
	}
	for i, c := range clients {
		if got := messagesFrom(t, c, b.Address); len(got) != each {
			t.Errorf("sender %d got %d replies, want %d: %v", i, len(got), each, got)
		}
	}
	if got := counterValue(t, reg, "bridge_forward_replies_total", map[string]string{"result": "sent"}); got != senders*each {
		t.Fatalf("%v replies published, want %d, each once", got, senders*each)
	}
}

// sweepDuringCompletion is the real store, except that the first
// completion that stores a reply, once committed, has a sweep of its
// bridge read the outbox before the completion returns: the reply is
// then due in the outbox and not yet handed to the batch.
type sweepDuringCompletion struct {
	Store
	rt     atomic.Pointer[Runtime]
	bridge string
	armed  atomic.Bool
	read   chan struct{}
}

func (s *sweepDuringCompletion) CompleteDeliveries(ctx context.Context, cs []persistence.Completion) []persistence.Completed {
	res := s.Store.CompleteDeliveries(ctx, cs)
	for _, r := range res {
		if r.Err == nil && r.ReplyID != 0 && s.armed.CompareAndSwap(false, true) {
			s.rt.Load().Nudge(s.bridge)
			select {
			case <-s.read:
				// Give the sweep time to act on what it read.
				time.Sleep(300 * time.Millisecond)
			case <-time.After(5 * time.Second):
			}
			break
		}
	}
	return res
}

func (s *sweepDuringCompletion) DueReplies(ctx context.Context, bridgeID string, limit int) ([]persistence.Reply, error) {
	rs, err := s.Store.DueReplies(ctx, bridgeID, limit)
	if s.armed.Load() {
		for _, r := range rs {
			if r.DeliveryID != nil {
				select {
				case s.read <- struct{}{}:
				default:
				}
			}
		}
	}
	return rs, err
}

// TestSweepLeavesTheReplyOfACompletionInFlight: a sweep that reads the
// outbox between a completion's commit and the hand-over of its reply to
// the batch leaves that reply to the batch, so it is published once.
func TestSweepLeavesTheReplyOfACompletionInFlight(t *testing.T) {
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	st := &sweepDuringCompletion{Store: e.store, bridge: b.ID, read: make(chan struct{})}
	rt, reg := e.runtime("n1", func(c *Config) { c.Store = st; c.SweepInterval = time.Hour })
	st.rt.Store(rt)
	if _, ok := rt.Status(b.ID); !ok {
		t.Fatal("bridge not active after start")
	}
	c := e.sender()
	if _, err := c.SendText(context.Background(), b.Address, "once"); err != nil {
		t.Fatalf("send: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(messagesFrom(t, c, b.Address)) >= 1 }, "the reply")
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return counterValue(t, reg, "bridge_forward_replies_total", map[string]string{"result": "sent"}) >= 1
	}, "the reply counted")
	if !st.armed.Load() {
		t.Fatal("no completion stored a reply")
	}
	// Let a second publish, if any, be counted.
	time.Sleep(time.Second)
	if got := counterValue(t, reg, "bridge_forward_replies_total", map[string]string{"result": "sent"}); got != 1 {
		t.Fatalf("%v replies published, want 1", got)
	}
}

// attemptsRunning counts the attempts the bridge's activation has running,
// whose slots are not given back yet.
func attemptsRunning(rt *Runtime, bridgeID string) int {
	a := rt.activation(bridgeID)
	if a == nil {
		return 0
	}
	return a.running.len()
}
