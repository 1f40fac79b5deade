package actors

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
)

// slowPublishes makes the local XMTP node's insert of the first envelope
// of topic stamped from lo on (slowPublish.from) take d, in its own store,
// as a node whose database is slow would: the Publish carrying it takes d.
// Only the first such envelope is slow, so that a later one published
// beside it would be stored first.
type slowPublish struct {
	t     *testing.T
	e     *env
	topic string
}

func slowPublishes(t *testing.T, e *env, topic string, d time.Duration) *slowPublish {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS test_slow_publishes (topic text PRIMARY KEY, lo bigint NOT NULL, secs float8 NOT NULL)`,
		`CREATE SEQUENCE IF NOT EXISTS test_slow_publishes_seq`,
		`CREATE OR REPLACE FUNCTION test_slow_publish() RETURNS trigger LANGUAGE plpgsql AS $$
		DECLARE s float8;
		BEGIN
			SELECT secs INTO s FROM test_slow_publishes r WHERE r.topic = NEW.topic AND NEW.timestamp_ns >= r.lo;
			IF s IS NOT NULL AND nextval('test_slow_publishes_seq') = 1 THEN
				PERFORM pg_sleep(s);
			END IF;
			RETURN NEW;
		END $$`,
		`DROP TRIGGER IF EXISTS test_slow_publish ON xmtp_envelopes`,
		`CREATE TRIGGER test_slow_publish BEFORE INSERT ON xmtp_envelopes FOR EACH ROW EXECUTE FUNCTION test_slow_publish()`,
	} {
		if _, err := e.store.Pool().Exec(ctx, q); err != nil {
			t.Fatalf("set up the slow publishes: %v", err)
		}
	}
	if _, err := e.store.Pool().Exec(ctx, `INSERT INTO test_slow_publishes (topic, lo, secs) VALUES ($1, $2, $3)`,
		topic, int64(math.MaxInt64), d.Seconds()); err != nil {
		t.Fatalf("slow publishes: %v", err)
	}
	return &slowPublish{t: t, e: e, topic: topic}
}

// from makes the first envelope of the topic stamped from lo on slow.
func (s *slowPublish) from(lo int64) {
	s.t.Helper()
	if _, err := s.e.store.Pool().Exec(context.Background(), `UPDATE test_slow_publishes SET lo = $2 WHERE topic = $1`, s.topic, lo); err != nil {
		s.t.Fatalf("slow publishes: %v", err)
	}
}

// TestRepliesOfTwoConversationsPublishSideBySide: while the publish of a
// reply in one conversation is slow (the XMTP node's store takes 6 s),
// the reply of another conversation of the same bridge goes out beside it
// instead of waiting behind it; and the next reply of the slow
// conversation, handed over meanwhile, waits for the slow one, so the
// conversation gets its replies in the order of its messages.
func TestRepliesOfTwoConversationsPublishSideBySide(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatRelaycc)
	b, secret := e.bridge(tg.URL, persistence.FormatRelaycc, nil)
	tg.SetSecret(secret)
	calledA1, answerA1 := make(chan struct{}), make(chan struct{})
	calledA2, answerA2 := make(chan struct{}), make(chan struct{})
	tg.SetStatus(func(content string) int {
		switch content {
		case "a1":
			close(calledA1)
			<-answerA1
		case "a2":
			close(calledA2)
			<-answerA2
		}
		return 200
	})
	e.runtime("n1", nil)
	topicA, sendA := conversationStart(t, e, b.Address)
	topicB, sendB := conversationStart(t, e, b.Address)
	slow := slowPublishes(t, e, topicA, 6*time.Second)
	sendA("a1")
	sendA("a2")
	<-calledA1
	<-calledA2
	// a1's reply is sealed in the slow window; its publish is under way,
	// in the node's slow insert, once its delivery has succeeded.
	slow.from(time.Now().UnixNano())
	close(answerA1)
	testkit.WaitFor(t, 20*time.Second, func() bool { return succeeded(t, e, b.ID) == 3 }, "a1's delivery completed")
	time.Sleep(200 * time.Millisecond)
	// a2's reply is handed over while a1's publish is in flight.
	close(answerA2)
	testkit.WaitFor(t, 20*time.Second, func() bool { return succeeded(t, e, b.ID) == 4 }, "a2's delivery completed")
	time.Sleep(200 * time.Millisecond)
	began := time.Now()
	sendB("b1")
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(repliesOnNode(t, e, b.ID, topicB)) == 2 }, "the reply to b1 on the node")
	took := time.Since(began)
	if n := len(repliesOnNode(t, e, b.ID, topicA)); took < 5*time.Second && n != 1 {
		t.Fatalf("conversation A has %d replies on the node while a1's publish is slow, want 1 (m0's): a2's reply went out "+
			"beside a1's, before it", n)
	}
	if took >= 5*time.Second {
		t.Fatalf("the reply to b1 was out %s after b1 was sent: it waited for a1's slow publish", took.Round(time.Millisecond))
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return len(repliesOnNode(t, e, b.ID, topicA)) == 3 }, "the replies to a1 and a2 on the node")
	got := repliesOnNode(t, e, b.ID, topicA)
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("conversation A's replies reached the node out of message order: deliveries %v", got)
		}
	}
}

// succeeded counts the bridge's succeeded deliveries.
func succeeded(t *testing.T, e *env, bridgeID string) int {
	t.Helper()
	var n int
	if err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM deliveries WHERE bridge_id = $1 AND status = 'succeeded'`,
		bridgeID).Scan(&n); err != nil {
		t.Fatalf("count deliveries: %v", err)
	}
	return n
}
