package persistence

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

func TestSubscribersAndBroadcastsQueueEachCopyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	other, _ := newAccount(t, s, "mallory")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	if !b.Subscriptions.Enabled || b.Subscriptions.SubscribeWord != "/subscribe" || b.BroadcastsPending {
		t.Fatalf("new bridge: %+v", b)
	}
	l, err := s.AcquireLease(ctx, b.ID, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var subs []string
	for range 5 {
		addr := randomAddress(t)
		subs = append(subs, addr)
		for range 2 { // twice: no duplicate
			if err := s.SetSubscribed(ctx, l, b.ID, addr, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.SetSubscribed(ctx, l, b.ID, subs[4], false); err != nil {
		t.Fatal(err)
	}
	// A full bridge takes no new subscriber, and keeps the ones it has.
	if err := s.setSubscribed(ctx, l, b.ID, randomAddress(t), true, 4); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("subscribe to a full bridge: %v", err)
	}
	if err := s.setSubscribed(ctx, l, b.ID, subs[0], true, 4); err != nil {
		t.Fatalf("subscribe again to a full bridge: %v", err)
	}
	list, next, err := s.ListSubscribers(ctx, a.ID, b.ID, Page{Limit: 3})
	if err != nil || len(list) != 3 || next == "" {
		t.Fatalf("subscribers: %+v %q %v", list, next, err)
	}
	rest, next, err := s.ListSubscribers(ctx, a.ID, b.ID, Page{Limit: 3, After: next})
	if err != nil || len(rest) != 1 || next != "" {
		t.Fatalf("second page: %+v %q %v", rest, next, err)
	}
	if _, _, err := s.ListSubscribers(ctx, other.ID, b.ID, Page{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another account lists: %v", err)
	}
	if err := s.RemoveSubscriber(ctx, other.ID, b.ID, subs[3]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another account removes: %v", err)
	}
	if err := s.RemoveSubscriber(ctx, a.ID, b.ID, subs[3]); err != nil {
		t.Fatal(err)
	}

	if _, err := s.CreateBroadcast(ctx, other.ID, b.ID, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another account broadcasts: %v", err)
	}
	bc, err := s.CreateBroadcast(ctx, a.ID, b.ID, "news")
	if err != nil || bc.Recipients != 3 {
		t.Fatalf("broadcast: %+v %v", bc, err)
	}
	if got, _ := s.BridgeByID(ctx, b.ID); !got.BroadcastsPending {
		t.Fatal("the broadcast did not raise the hint")
	}
	// A rate of 2: two copies now, the third not before a second passes.
	batch, more, err := s.BroadcastBatch(ctx, l, b.ID, 2)
	if err != nil || len(batch) != 2 || !more || batch[0].Content != "news" {
		t.Fatalf("first batch: %+v %v %v", batch, more, err)
	}
	if again, more, _ := s.BroadcastBatch(ctx, l, b.ID, 2); len(again) != 0 || !more {
		t.Fatalf("batch within the rate: %+v %v", again, more)
	}
	for i, c := range batch {
		r := Reply{BridgeID: b.ID, Topic: "/xmtp/0/m-b/proto", TimestampNs: 1, Envelope: []byte("env")}
		id, ok, err := s.QueueBroadcastCopy(ctx, l, c, r, fmt.Sprintf("copy-%d", i))
		if err != nil || !ok || id == 0 {
			t.Fatalf("queue copy: %d %v %v", id, ok, err)
		}
		// Queued again (a crash before the grain saw its answer): nothing.
		if _, ok, err := s.QueueBroadcastCopy(ctx, l, c, r, fmt.Sprintf("copy-again-%d", i)); err != nil || ok {
			t.Fatalf("copy queued twice: %v %v", ok, err)
		}
		if i == 0 {
			if err := s.RecordReplyAttempt(ctx, l, id, ReplySent, "", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if due, _ := s.DueReplies(ctx, b.ID, 10); len(due) != 1 {
		t.Fatalf("%d copies due in the outbox, want 1", len(due))
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		batch, _, err = s.BroadcastBatch(ctx, l, b.ID, 2)
		return err == nil && len(batch) == 1
	}, "the next batch of the broadcast")
	if err := s.FailBroadcastCopy(ctx, l, batch[0], "peer is not on the XMTP network"); err != nil {
		t.Fatal(err)
	}
	st, err := s.BroadcastStatus(ctx, a.ID, b.ID, bc.ID)
	if err != nil || st.Sent != 1 || st.Failed != 1 || st.Pending != 1 || len(st.Failures) != 1 || st.Failures[0].Reason == "" {
		t.Fatalf("status: %+v %v", st, err)
	}
	if _, err := s.BroadcastStatus(ctx, other.ID, b.ID, bc.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another account's status: %v", err)
	}
	if m, err := s.SentMessage(ctx, a.ID, b.ID, "copy-0"); err != nil || m.Source != SendBroadcast || m.Status != SendSent {
		t.Fatalf("copy status: %+v %v", m, err)
	}
	// Nothing left to queue: the hint goes down and the content is erased.
	if _, more, _ := s.BroadcastBatch(ctx, l, b.ID, 2); more {
		t.Fatal("more copies after all were handled")
	}
	if err := s.FinishBroadcasts(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.BridgeByID(ctx, b.ID); got.BroadcastsPending {
		t.Fatal("the hint stayed up")
	}
	var purged bool
	if err := s.pool.QueryRow(ctx, `SELECT purged_at IS NOT NULL AND length(content) = 0 FROM broadcasts WHERE id = $1`, bc.ID).Scan(&purged); err != nil || !purged {
		t.Fatalf("content of the finished broadcast kept: %v", err)
	}
	// A stale lease queues nothing.
	stale := l
	stale.Epoch++
	if _, _, err := s.BroadcastBatch(ctx, stale, b.ID, 2); !errors.Is(err, ErrFenced) {
		t.Fatalf("batch with a stale lease: %v", err)
	}
}
