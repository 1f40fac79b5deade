package persistence

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSentReplyStaysSent: once a reply is recorded as sent, a later record
// of a failed publish of it (a sweep that read it as due just before its
// batch recorded it) counts the attempt but leaves it sent, so it is not
// due again and its error is not shown.
func TestSentReplyStaysSent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, a, b, l := leasedBridge(t, "n1")
	var ids []int64
	for _, m := range []string{"m-1", "m-2"} {
		id, err := s.EnqueueSend(ctx, l, Reply{BridgeID: b.ID, Topic: "/xmtp/0/m-x/proto", TimestampNs: 1, Envelope: []byte("env")}, m, SendBroadcast, randomAddress(t))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := s.RecordReplyAttempt(ctx, l, ids[0], ReplySent, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	// The late failure, recorded together with a reply that really failed.
	if err := s.RecordReplyAttempts(ctx, l, ids, ReplyFailed, "publish: node down", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueReplies(ctx, b.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].ID != ids[1] {
		t.Fatalf("due after the late failure: %+v, want only reply %d", due, ids[1])
	}
	var status, lastErr string
	var attempts int
	if err := s.pool.QueryRow(ctx, `SELECT status, last_error, attempts FROM reply_outbox WHERE id = $1`, ids[0]).Scan(&status, &lastErr, &attempts); err != nil {
		t.Fatal(err)
	}
	if status != string(ReplySent) || lastErr != "" || attempts != 2 {
		t.Fatalf("sent reply after a late failure: status %q, error %q, attempts %d", status, lastErr, attempts)
	}
	if m, err := s.SentMessage(ctx, a.ID, b.ID, "m-1"); err != nil || m.Status != SendSent {
		t.Fatalf("the send's status: %+v %v", m, err)
	}
}

// TestDueRepliesKeepConversationOrder: the due replies of a conversation
// come in the order of the messages they answer, whatever order their
// outbox ids were drawn in (after a restart, or a take-over by a node with
// an older block of ids), and none of them comes while an older one waits
// for its retry. Replies that answer no message, and other conversations,
// are not held back. UnsentReplyTopics names the conversations with
// replies to messages not out yet.
func TestDueRepliesKeepConversationOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, b, l := leasedBridge(t, "n1")
	const topicA, topicB = "/xmtp/0/m-order-a/proto", "/xmtp/0/m-order-b/proto"
	var ds []Delivery
	for i, topic := range []string{topicA, topicA, topicA, topicB} {
		d, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: "m-" + string(rune('a'+i)), Topic: topic,
			SenderAddress: randomAddress(t), Lease: &l})
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	replyOf := map[int64]int64{}
	// Completed out of message order: the second message's reply draws
	// the lowest outbox id.
	for _, k := range []int{1, 0, 2, 3} {
		d := ds[k]
		id, _, err := s.CompleteDelivery(ctx, l, d.ID, DeliveryAttempt{StatusCode: 200},
			&Reply{BridgeID: b.ID, Topic: d.Topic, TimestampNs: int64(k + 1), Envelope: []byte("r")})
		if err != nil || id == 0 {
			t.Fatalf("complete %d: %d %v", k, id, err)
		}
		replyOf[d.ID] = id
	}
	send, err := s.EnqueueSend(ctx, l, Reply{BridgeID: b.ID, Topic: topicA, TimestampNs: 9, Envelope: []byte("s")}, "send-1", SendREST, randomAddress(t))
	if err != nil {
		t.Fatal(err)
	}
	ids := func() []int64 {
		t.Helper()
		due, err := s.DueReplies(ctx, b.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, r := range due {
			out = append(out, r.ID)
		}
		return out
	}
	// The first of each conversation (the send's too), then the rest of
	// A in message order (TestDueRepliesShareThePage).
	want := []int64{replyOf[ds[0].ID], replyOf[ds[3].ID], send, replyOf[ds[1].ID], replyOf[ds[2].ID]}
	if got := ids(); !slices.Equal(got, want) {
		t.Fatalf("due replies %v, want %v: each conversation's first, then A's others in message order", got, want)
	}
	// The first reply of conversation A waits for its retry: the two
	// behind it wait too.
	if err := s.RecordReplyAttempt(ctx, l, replyOf[ds[0].ID], ReplyFailed, "publish: refused", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, want := ids(), []int64{replyOf[ds[3].ID], send}; !slices.Equal(got, want) {
		t.Fatalf("due replies behind a failed one %v, want %v", got, want)
	}
	topics, err := s.UnsentReplyTopics(ctx, b.ID, nil)
	slices.Sort(topics)
	if err != nil || !slices.Equal(topics, []string{topicA, topicB}) {
		t.Fatalf("unsent reply topics %v (%v), want both", topics, err)
	}
	if err := s.RecordReplyAttempt(ctx, l, replyOf[ds[3].ID], ReplySent, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	if topics, err := s.UnsentReplyTopics(ctx, b.ID, []string{topicB}); err != nil || len(topics) != 0 {
		t.Fatalf("unsent reply topics of B once it is out: %v (%v)", topics, err)
	}
	// Given up, the reply no longer holds the others.
	if err := s.RecordReplyAttempt(ctx, l, replyOf[ds[0].ID], ReplyDead, "publish: refused", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, want := ids(), []int64{replyOf[ds[1].ID], send, replyOf[ds[2].ID]}; !slices.Equal(got, want) {
		t.Fatalf("due replies once the failed one is dead %v, want %v", got, want)
	}
}

// TestDueRepliesShareThePage: a conversation with many due replies behind
// an oldest one that keeps failing does not fill the page: the page takes
// the first due reply of every conversation, and the replies that answer
// no message, before the second of any, so the others are not pushed past
// it; each conversation's replies still come in message order. The read
// walks reply_outbox_order_idx.
func TestDueRepliesShareThePage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, b, l := leasedBridge(t, "n1")
	const busy, other = "/xmtp/0/m-page-busy/proto", "/xmtp/0/m-page-other/proto"
	const page, held = 10, 30
	reply := func(topic string, k int) int64 {
		t.Helper()
		d, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: fmt.Sprintf("m-%s-%d", topic, k), Topic: topic,
			SenderAddress: randomAddress(t), Lease: &l})
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := s.CompleteDelivery(ctx, l, d.ID, DeliveryAttempt{StatusCode: 200},
			&Reply{BridgeID: b.ID, Topic: topic, TimestampNs: int64(k + 1), Envelope: []byte("r")})
		if err != nil || id == 0 {
			t.Fatalf("complete %d: %d %v", k, id, err)
		}
		return id
	}
	var busyIDs []int64
	for k := range held {
		busyIDs = append(busyIDs, reply(busy, k))
	}
	otherID := reply(other, 0)
	send, err := s.EnqueueSend(ctx, l, Reply{BridgeID: b.ID, Topic: busy, TimestampNs: 99, Envelope: []byte("s")}, "send-page", SendREST, randomAddress(t))
	if err != nil {
		t.Fatal(err)
	}
	// The busy conversation's first reply failed and is due again.
	if err := s.RecordReplyAttempt(ctx, l, busyIDs[0], ReplyFailed, "publish: unavailable", time.Now()); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueReplies(ctx, b.ID, page)
	if err != nil {
		t.Fatal(err)
	}
	var got, gotBusy []int64
	for _, r := range due {
		got = append(got, r.ID)
		if r.Topic == busy && r.DeliveryID != nil {
			gotBusy = append(gotBusy, r.ID)
		}
	}
	if len(got) != page || !slices.Contains(got, otherID) || !slices.Contains(got, send) {
		t.Fatalf("due replies %v: a page of %d with the other conversation's reply %d and the send %d", got, page, otherID, send)
	}
	if !slices.Equal(gotBusy, busyIDs[:len(gotBusy)]) {
		t.Fatalf("the busy conversation's replies %v, want them in message order from its first, %v", gotBusy, busyIDs)
	}
	rows, err := s.pool.Query(ctx, `EXPLAIN (FORMAT TEXT) `+dueRepliesQuery, b.ID, page)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	rows.Close()
	// The conversations and every step along one are probes of
	// reply_outbox_order_idx; no read scans the table.
	if text := strings.Join(lines, "\n"); strings.Count(text, "reply_outbox_order_idx") < 4 || strings.Contains(text, "Seq Scan on reply_outbox") {
		t.Fatalf("the due replies' read does not walk reply_outbox_order_idx, or scans reply_outbox:\n%s", text)
	}
}
