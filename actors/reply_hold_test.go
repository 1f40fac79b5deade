package actors

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/node"
)

// refusePublishes makes the local XMTP node refuse, in its own store, the
// envelopes of a topic whose timestamps fall in a window the test sets
// (refusal.set): the node's insert fails and its Publish returns the
// error, as a node whose database fails would. The window is what picks
// one reply: its envelope carries the timestamp it was sealed at, on every
// retry.
type refusal struct {
	t     *testing.T
	e     *env
	topic string
}

func refusePublishes(t *testing.T, e *env, topic string) *refusal {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS test_refused_publishes (topic text PRIMARY KEY, lo bigint NOT NULL, hi bigint NOT NULL)`,
		`CREATE OR REPLACE FUNCTION test_refuse_publish() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF EXISTS (SELECT 1 FROM test_refused_publishes r WHERE r.topic = NEW.topic AND NEW.timestamp_ns BETWEEN r.lo AND r.hi) THEN
				RAISE EXCEPTION 'publish refused by the test';
			END IF;
			RETURN NEW;
		END $$`,
		`DROP TRIGGER IF EXISTS test_refuse_publish ON xmtp_envelopes`,
		`CREATE TRIGGER test_refuse_publish BEFORE INSERT ON xmtp_envelopes FOR EACH ROW EXECUTE FUNCTION test_refuse_publish()`,
	} {
		if _, err := e.store.Pool().Exec(ctx, q); err != nil {
			t.Fatalf("set up the refusal: %v", err)
		}
	}
	return &refusal{t: t, e: e, topic: topic}
}

// set refuses the topic's envelopes stamped from lo to hi.
func (r *refusal) set(lo, hi int64) {
	r.t.Helper()
	if _, err := r.e.store.Pool().Exec(context.Background(), `INSERT INTO test_refused_publishes (topic, lo, hi) VALUES ($1, $2, $3)
		ON CONFLICT (topic) DO UPDATE SET lo = EXCLUDED.lo, hi = EXCLUDED.hi`, r.topic, lo, hi); err != nil {
		r.t.Fatalf("refuse publishes: %v", err)
	}
}

// clear lets every envelope of the topic through again.
func (r *refusal) clear() {
	r.t.Helper()
	if _, err := r.e.store.Pool().Exec(context.Background(), `DELETE FROM test_refused_publishes WHERE topic = $1`, r.topic); err != nil {
		r.t.Fatalf("clear the refusal: %v", err)
	}
}

// repliesOnNode returns the delivery ids of the bridge's replies in topic
// in the order the XMTP node stored them, which is the order its
// subscribers got them.
func repliesOnNode(t *testing.T, e *env, bridgeID, topic string) []int64 {
	t.Helper()
	rows, err := e.store.Pool().Query(context.Background(), `SELECT r.delivery_id FROM xmtp_envelopes x
		JOIN reply_outbox r ON r.bridge_id = $1 AND r.topic = x.topic AND r.timestamp_ns = x.timestamp_ns
		WHERE x.topic = $2 AND r.delivery_id IS NOT NULL ORDER BY x.id`, bridgeID, topic)
	if err != nil {
		t.Fatalf("read the node's envelopes: %v", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatalf("scan: %v", err)
		}
		out = append(out, id)
	}
	return out
}

// conversationStart sends m0 to the bridge and waits for its reply: the
// conversation exists, and its topic is known.
func conversationStart(t *testing.T, e *env, addr string) (topic string, send func(string)) {
	t.Helper()
	c := e.sender()
	sent, err := c.SendText(context.Background(), addr, "m0")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(messagesFrom(t, c, addr)) == 1 }, "the reply to m0")
	return sent.Topic, func(text string) {
		t.Helper()
		if _, err := c.Reply(context.Background(), sent.Topic, content.Text(text)); err != nil {
			t.Fatalf("send %s: %v", text, err)
		}
	}
}

// heldConversation is a conversation with a bridge whose reply to m1
// the XMTP node refuses, and the runtime that forwards it.
type heldConversation struct {
	e       *env
	b       persistence.Bridge
	rt      *Runtime
	reg     *prometheus.Registry
	topic   string
	send    func(string)
	refused *refusal
}

// refuseFirstReply opens a conversation (m0 and its reply), then sends m1,
// whose reply the node refuses on every try until refused.clear, while
// the replies sealed after it go through; it returns once the reply to m1
// has been refused once.
func refuseFirstReply(t *testing.T, tune func(*Config)) *heldConversation {
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	called, answer := make(chan struct{}), make(chan struct{})
	tg.SetStatus(func(content string) int {
		if content == "m1" {
			select {
			case <-called:
			default:
				close(called)
			}
			<-answer
		}
		return 200
	})
	rt, reg := e.runtime("n1", tune)
	topic, send := conversationStart(t, e, b.Address)
	refused := refusePublishes(t, e, topic)
	// m1's reply is sealed after the refusal begins, and refused.
	send("m1")
	<-called
	refused.set(time.Now().UnixNano(), math.MaxInt64)
	close(answer)
	testkit.WaitFor(t, 20*time.Second, func() bool {
		return counterValue(t, reg, "bridge_forward_replies_total", map[string]string{"result": "retry"}) >= 1
	}, "the reply to m1 refused")
	// It stays refused on every retry; the replies sealed from now on go
	// through.
	refused.set(0, time.Now().UnixNano())
	return &heldConversation{e: e, b: b, rt: rt, reg: reg, topic: topic, send: send, refused: refused}
}

// sendHeld sends texts and waits until their replies are published or
// held behind the reply to m1 (held counts the replies held so far).
func (h *heldConversation) sendHeld(t *testing.T, reg *prometheus.Registry, held float64, texts ...string) {
	t.Helper()
	before := len(repliesOnNode(t, h.e, h.b.ID, h.topic))
	for _, text := range texts {
		h.send(text)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		return len(repliesOnNode(t, h.e, h.b.ID, h.topic)) == before+len(texts) ||
			counterValue(t, reg, "bridge_forward_replies_held_total", nil) >= held+float64(len(texts))
	}, "the replies to %v published or held", texts)
}

// inOrder checks that the conversation got want replies, each once, in
// the order of its messages, and that the outbox has them all sent.
func (h *heldConversation) inOrder(t *testing.T, want int) []int64 {
	t.Helper()
	pgtest.WaitQuiet(t, h.e.db, 30*time.Second, h.b.ID)
	got := repliesOnNode(t, h.e, h.b.ID, h.topic)
	if len(got) != want {
		t.Fatalf("replies on the node for deliveries %v, want %d", got, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("replies reached the conversation out of message order: deliveries %v", got)
		}
	}
	var rows, sent int
	if err := h.e.store.Pool().QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE status = 'sent')
		FROM reply_outbox WHERE bridge_id = $1`, h.b.ID).Scan(&rows, &sent); err != nil || sent != want {
		t.Fatalf("outbox: %d replies, %d sent (%v); want %d sent", rows, sent, err, want)
	}
	return got
}

// TestRepliesStayInOrderWhenOneFailsToPublish: the first reply of a
// conversation fails to publish (the XMTP node refuses it) and goes to the
// sweep, while the later messages of the conversation are answered; the
// later replies wait behind it, and the conversation gets every reply
// once, in the order of its messages.
//
// While the reply fails, bridge_forward_reply_oldest_failing_seconds
// gives its age, and once it is out the gauge is 0 again.
func TestRepliesStayInOrderWhenOneFailsToPublish(t *testing.T) {
	t.Parallel()
	h := refuseFirstReply(t, nil)
	h.sendHeld(t, h.reg, 0, "m2", "m3")
	testkit.WaitFor(t, 20*time.Second, func() bool { return oldestFailing(t, h.reg) >= 1 }, "the failing reply's age on the gauge")
	h.refused.clear()
	testkit.WaitFor(t, 30*time.Second, func() bool { return len(repliesOnNode(t, h.e, h.b.ID, h.topic)) == 4 }, "every reply on the node")
	h.inOrder(t, 4)
	if age := oldestFailing(t, h.reg); age != 0 {
		t.Fatalf("oldest failing reply %.1f s old after every reply went out, want 0", age)
	}
}

// oldestFailing reads bridge_forward_reply_oldest_failing_seconds.
func oldestFailing(t *testing.T, reg *prometheus.Registry) float64 {
	return counterValue(t, reg, "bridge_forward_reply_oldest_failing_seconds", nil)
}

// TestHeldRepliesStayInOrderAcrossARestart: replies held behind a reply
// that failed to publish are in the outbox only; the next runtime to host
// the bridge holds the conversation from the outbox before it publishes a
// reply of it, so a message answered after the restart waits too, and all
// go out in message order once the first one does.
func TestHeldRepliesStayInOrderAcrossARestart(t *testing.T) {
	t.Parallel()
	h := refuseFirstReply(t, nil)
	h.sendHeld(t, h.reg, 0, "m2", "m3")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	testkit.WaitFor(t, 20*time.Second, func() bool { return oldestFailing(t, h.reg) > 0 }, "the failing reply on the first node's gauge")
	if err := h.rt.Stop(ctx); err != nil {
		t.Fatalf("stop the first runtime: %v", err)
	}
	// The node that stopped hosting the bridge no longer reports its reply.
	if age := oldestFailing(t, h.reg); age != 0 {
		t.Fatalf("the first node reports a failing reply %.1f s old after it stopped", age)
	}
	_, reg2 := h.e.runtime("n2", nil)
	h.sendHeld(t, reg2, 0, "m4")
	h.refused.clear()
	testkit.WaitFor(t, 30*time.Second, func() bool { return len(repliesOnNode(t, h.e, h.b.ID, h.topic)) == 5 }, "every reply on the node")
	h.inOrder(t, 5)
}

// TestReplyGivenUpFreesItsConversation: the XMTP node rejects a reply as
// invalid (its envelope is over the node's MaxEnvelopeBytes: gRPC
// InvalidArgument), which no retry changes; it is given up at once,
// counted as dead, and the younger replies of its conversation, held
// behind it, go, in order.
func TestReplyGivenUpFreesItsConversation(t *testing.T) {
	t.Parallel()
	const maxEnvelope = 16 << 10
	e := newEnvNode(t, func(c *node.Config) { c.MaxEnvelopeBytes = maxEnvelope })
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	tg.SetReply(func(content string) string {
		if content == "m1" {
			return strings.Repeat("x", 2*maxEnvelope) // no envelope of the node holds it
		}
		return "echo: " + content
	})
	// m1's webhook call ends only once m2 and m3 have reached the
	// endpoint: their replies come behind the reply to m1.
	release := make(chan struct{})
	tg.SetStatus(func(content string) int {
		if content == "m1" {
			<-release
		}
		return 200
	})
	_, reg := e.runtime("n1", nil)
	topic, send := conversationStart(t, e, b.Address)
	send("m1")
	send("m2")
	send("m3")
	testkit.WaitFor(t, 20*time.Second, func() bool { return tg.Has("m2") && tg.Has("m3") }, "m2 and m3 at the endpoint")
	close(release)
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return counterValue(t, reg, "bridge_forward_replies_total", map[string]string{"result": "dead"}) == 1
	}, "the reply to m1 given up")
	h := &heldConversation{e: e, b: b, reg: reg, topic: topic}
	testkit.WaitFor(t, 30*time.Second, func() bool { return len(repliesOnNode(t, e, b.ID, topic)) == 3 }, "the other replies on the node")
	got := h.inOrder(t, 3)
	var dead int64
	var attempts int
	if err := e.store.Pool().QueryRow(context.Background(), `SELECT delivery_id, attempts FROM reply_outbox WHERE bridge_id = $1 AND status = 'dead'`,
		b.ID).Scan(&dead, &attempts); err != nil || dead <= got[0] || dead >= got[1] {
		t.Fatalf("the dead reply answers delivery %d (%v); the conversation got %v", dead, err, got)
	}
	// Its batch's publish, then the sweep's, which gives it up.
	if attempts > 2 {
		t.Fatalf("the rejected reply was tried %d times; a rejection is final", attempts)
	}
}

// TestRepliesOutlastALongPublishOutage: the XMTP node refuses a reply
// with an error that passes (it cannot store it) for longer than any
// bound a reply was once given; the reply is retried, its conversation's
// younger replies wait, none is given up, and once the node stores again
// the conversation gets every reply once, in order.
func TestRepliesOutlastALongPublishOutage(t *testing.T) {
	t.Parallel()
	h := refuseFirstReply(t, nil)
	h.sendHeld(t, h.reg, 0, "m2", "m3")
	// The refusal lasts well past the old bound, over several retries.
	refusedSince := time.Now()
	testkit.WaitFor(t, 60*time.Second, func() bool { return time.Since(refusedSince) > 6*time.Second }, "a long refusal")
	if dead := counterValue(t, h.reg, "bridge_forward_replies_total", map[string]string{"result": "dead"}); dead != 0 {
		t.Fatalf("%v replies given up while the node could not store them", dead)
	}
	if got := repliesOnNode(t, h.e, h.b.ID, h.topic); len(got) != 1 {
		t.Fatalf("replies on the node while the reply to m1 is refused: deliveries %v, want only m0's", got)
	}
	h.refused.clear()
	testkit.WaitFor(t, 60*time.Second, func() bool { return len(repliesOnNode(t, h.e, h.b.ID, h.topic)) == 4 }, "every reply on the node")
	h.inOrder(t, 4)
}

// TestCompletingACompletedDeliveryHoldsNothing: a completion of a delivery
// that has already succeeded (a second attempt's, as after a lost
// outcome) adds no reply, and its outcome is known: the conversation is
// not held, and the replies of its next messages go out with the batch.
func TestCompletingACompletedDeliveryHoldsNothing(t *testing.T) {
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	rt, reg := e.runtime("n1", nil)
	topic, send := conversationStart(t, e, b.Address)
	pgtest.WaitQuiet(t, e.db, 30*time.Second, b.ID)
	var id int64
	if err := e.store.Pool().QueryRow(context.Background(), `SELECT id FROM deliveries WHERE bridge_id = $1 AND status = 'succeeded'`,
		b.ID).Scan(&id); err != nil {
		t.Fatalf("m0's delivery: %v", err)
	}
	a := rt.activation(b.ID)
	if a == nil {
		t.Fatal("the bridge is not hosted")
	}
	a.complete(persistence.Delivery{ID: id, BridgeID: b.ID, Topic: topic}, persistence.DeliveryAttempt{StatusCode: 200},
		webhook.Result{Outcome: webhook.OutcomeDelivered, Status: 200, HasReply: true, Reply: "a second answer"}, false, nil)
	if a.replies.topicHeld(topic) {
		t.Fatal("the conversation is held after a completion whose outcome is known: its delivery had succeeded")
	}
	// (The reply to m0 may have been held already: one that comes before
	// the activation's first look at the outbox waits for it, and its
	// conversation, with that reply unsent, is held.)
	before := counterValue(t, reg, "bridge_forward_replies_held_total", nil)
	send("m1")
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(repliesOnNode(t, e, b.ID, topic)) == 2 }, "the reply to m1")
	if held := counterValue(t, reg, "bridge_forward_replies_held_total", nil) - before; held != 0 {
		t.Fatalf("%v replies held after the completion done again", held)
	}
	h := &heldConversation{e: e, b: b, reg: reg, topic: topic}
	h.inOrder(t, 2)
}

// TestHeldConversationDrainsInBatches: once the reply its conversation was
// held behind goes through, the sweep publishes the held replies in order
// in multi-envelope publishes, not one call each: the node stores the
// envelopes of one publish in one transaction, which they share.
func TestHeldConversationDrainsInBatches(t *testing.T) {
	t.Parallel()
	h := refuseFirstReply(t, nil)
	h.sendHeld(t, h.reg, 0, "m2", "m3", "m4", "m5")
	h.refused.clear()
	testkit.WaitFor(t, 30*time.Second, func() bool { return len(repliesOnNode(t, h.e, h.b.ID, h.topic)) == 6 }, "every reply on the node")
	got := h.inOrder(t, 6)
	var publishes int
	if err := h.e.store.Pool().QueryRow(context.Background(), `SELECT count(DISTINCT x.xmin::text) FROM xmtp_envelopes x
		JOIN reply_outbox r ON r.bridge_id = $1 AND r.topic = x.topic AND r.timestamp_ns = x.timestamp_ns
		WHERE x.topic = $2 AND r.delivery_id = ANY ($3)`, h.b.ID, h.topic, got[1:]).Scan(&publishes); err != nil {
		t.Fatalf("read the node's transactions: %v", err)
	}
	if publishes >= len(got)-1 {
		t.Fatalf("the reply to m1 and the %d held behind it went out in %d publishes, one each", len(got)-2, publishes)
	}
}
