package persistence

import (
	"context"
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
