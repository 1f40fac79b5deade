package persistence

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSentMessagesStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	other, _ := newAccount(t, s, "mallory")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	to := randomAddress(t)

	// A direct send: its own status, one attempt per outcome.
	if err := s.RecordSend(ctx, b.ID, "m-rest", SendREST, to, SendFailed, "publish: "+strings.Repeat("x", 3000)); err != nil {
		t.Fatal(err)
	}
	m, err := s.SentMessage(ctx, a.ID, b.ID, "m-rest")
	if err != nil || m.Status != SendFailed || m.Attempts != 1 || len(m.LastError) != maxSendError || m.Source != SendREST || m.To != to {
		t.Fatalf("failed send: %+v %v", m, err)
	}
	if err := s.RecordSend(ctx, b.ID, "m-rest", SendREST, to, SendSent, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSendSource(ctx, b.ID, "m-rest", SendLive); err != nil {
		t.Fatal(err)
	}
	m, err = s.SentMessage(ctx, a.ID, b.ID, "m-rest")
	if err != nil || m.Status != SendSent || m.Attempts != 2 || m.LastError != "" || m.Source != SendLive {
		t.Fatalf("sent after a retry: %+v %v", m, err)
	}

	// An outbox send reads its reply's status.
	l, err := s.AcquireLease(ctx, b.ID, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rid, err := s.EnqueueSend(ctx, l, Reply{BridgeID: b.ID, Topic: "/xmtp/0/m-x/proto", TimestampNs: 1, Envelope: []byte("env")}, "m-box", SendBroadcast, to)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = s.SentMessage(ctx, a.ID, b.ID, "m-box"); err != nil || m.Status != SendQueued || m.Attempts != 0 {
		t.Fatalf("queued: %+v %v", m, err)
	}
	if err := s.RecordReplyAttempt(ctx, l, rid, ReplyFailed, "node down", time.Now()); err != nil {
		t.Fatal(err)
	}
	if m, _ = s.SentMessage(ctx, a.ID, b.ID, "m-box"); m.Status != SendQueued || m.Attempts != 1 || m.LastError != "node down" {
		t.Fatalf("retrying: %+v", m)
	}
	if err := s.RecordReplyAttempt(ctx, l, rid, ReplyDead, "gave up", time.Now()); err != nil {
		t.Fatal(err)
	}
	if m, _ = s.SentMessage(ctx, a.ID, b.ID, "m-box"); m.Status != SendFailed || m.Attempts != 2 || m.LastError != "gave up" {
		t.Fatalf("dead reply: %+v", m)
	}
	// A stale lease cannot enqueue.
	if err := s.ReleaseLease(ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueSend(ctx, l, Reply{BridgeID: b.ID, Topic: "t", Envelope: []byte("e")}, "m-fenced", SendLive, to); !errors.Is(err, ErrFenced) {
		t.Fatalf("enqueue without lease: %v", err)
	}

	// Paging, newest first; other accounts see nothing.
	for _, id := range []string{"m-3", "m-4", "m-5"} {
		if err := s.RecordSend(ctx, b.ID, id, SendReverse, to, SendSent, ""); err != nil {
			t.Fatal(err)
		}
	}
	page1, next, err := s.ListSentMessages(ctx, a.ID, b.ID, Page{Limit: 3})
	if err != nil || len(page1) != 3 || page1[0].MessageID != "m-5" || next == "" {
		t.Fatalf("first page: %+v %q %v", page1, next, err)
	}
	page2, next, err := s.ListSentMessages(ctx, a.ID, b.ID, Page{Limit: 3, After: next})
	if err != nil || len(page2) != 2 || page2[1].MessageID != "m-rest" || next != "" {
		t.Fatalf("second page: %+v %q %v", page2, next, err)
	}
	if _, err := s.SentMessage(ctx, other.ID, b.ID, "m-rest"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other account reads a status: %v", err)
	}
	if _, _, err := s.ListSentMessages(ctx, other.ID, b.ID, Page{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other account lists: %v", err)
	}
	if _, _, err := s.ListSentMessages(ctx, a.ID, b.ID, Page{After: "x"}); !errors.Is(err, ErrInvalidCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
	if _, err := s.SentMessage(ctx, a.ID, b.ID, strings.Repeat("m", 300)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("overlong id: %v", err)
	}
}
