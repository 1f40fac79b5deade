package persistence

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestOneStatementWritesAreFenced: the hot-path writes that carry their
// lease check in the statement (a completion with its reply, a failed
// attempt, a reply's publish result, a cursor move) change nothing once the
// lease has changed hands, and work again for the new owner.
func TestOneStatementWritesAreFenced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l1, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, reply := recordWithReply(t, s, l1, b.ID, "m-1", []byte("p1"), []byte("r1"))
	d2, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: "m-2", Topic: "/xmtp/0/m-1/proto", SenderAddress: randomAddress(t), SentNs: 2, Lease: &l1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "UPDATE identity_leases SET expires_at = now() - interval '1 second' WHERE identity = $1", b.ID); err != nil {
		t.Fatal(err)
	}
	l2, err := s.AcquireLease(ctx, b.ID, "node-2/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	attempts := func() int {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1`, d2.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	if _, _, err := s.CompleteDelivery(ctx, l1, d2.ID, DeliveryAttempt{StatusCode: 200},
		&Reply{BridgeID: b.ID, Topic: d2.Topic, TimestampNs: 3, Envelope: []byte("stale")}); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale completion: %v", err)
	}
	if err := s.RecordLeasedAttempt(ctx, l1, d2.ID, DeliveryAttempt{StatusCode: 500}, DeliveryFailed, time.Now()); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale failed attempt: %v", err)
	}
	if err := s.RecordReplyAttempt(ctx, l1, reply, ReplySent, "", time.Now()); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale reply result: %v", err)
	}
	if got, err := s.DeliveryByID(ctx, d2.ID); err != nil || got.Status != DeliveryPending || got.Attempts != 0 || attempts() != 0 {
		t.Fatalf("a stale write changed the delivery: %+v, %d attempts, %v", got, attempts(), err)
	}
	if r, err := s.RepliesOf(ctx, d2.ID); err != nil || len(r) != 0 {
		t.Fatalf("a stale completion wrote a reply: %v %v", r, err)
	}
	if due, err := s.DueReplies(ctx, b.ID, 10); err != nil || len(due) != 1 || due[0].Status != ReplyPending {
		t.Fatalf("a stale reply result changed the outbox: %+v %v", due, err)
	}

	// The new owner's writes go through.
	if err := s.RecordLeasedAttempt(ctx, l2, d2.ID, DeliveryAttempt{StatusCode: 500, Error: "boom"}, DeliveryFailed, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.DeliveryByID(ctx, d2.ID); got.Status != DeliveryFailed || got.Attempts != 1 || got.LastError != "boom" || attempts() != 1 {
		t.Fatalf("failed attempt: %+v, %d attempts", got, attempts())
	}
	if err := s.RecordReplyAttempt(ctx, l2, reply, ReplySent, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordReplyAttempt(ctx, l2, reply+1000, ReplySent, "", time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("result of a missing reply: %v", err)
	}
	if _, _, err := s.CompleteDelivery(ctx, l2, d2.ID+1000, DeliveryAttempt{StatusCode: 200}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("completion of a missing delivery: %v", err)
	}
	id, completed, err := s.CompleteDelivery(ctx, l2, d2.ID, DeliveryAttempt{StatusCode: 200},
		&Reply{BridgeID: b.ID, Topic: d2.Topic, TimestampNs: 3, Envelope: []byte("fresh")})
	if err != nil || !completed || id == 0 {
		t.Fatalf("completion: %d %v %v", id, completed, err)
	}
	r, err := s.RepliesOf(ctx, d2.ID)
	if err != nil || len(r) != 1 || string(r[0].Envelope) != "fresh" || r[0].ID != id {
		t.Fatalf("reply of the completion: %+v %v", r, err)
	}
}

// TestConcurrentCompletionsGiveOneReply: however many attempts of one
// delivery complete at once (a webhook called more than once), exactly
// one of them completes it and puts a reply in the outbox; every attempt
// is recorded.
func TestConcurrentCompletionsGiveOneReply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		d, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: "m-" + string(rune('a'+round)), Topic: "/xmtp/0/m-1/proto", SenderAddress: randomAddress(t), Lease: &l})
		if err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		var mu sync.Mutex
		var completions, replies int
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, completed, err := s.CompleteDelivery(ctx, l, d.ID, DeliveryAttempt{StatusCode: 200},
					&Reply{BridgeID: b.ID, Topic: d.Topic, TimestampNs: 1, Envelope: []byte("r")})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if completed {
					completions++
				}
				if id != 0 {
					replies++
				}
			}()
		}
		wg.Wait()
		r, err := s.RepliesOf(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := s.DeliveryByID(ctx, d.ID)
		if completions != 1 || replies != 1 || len(r) != 1 || got.Status != DeliverySucceeded || got.Attempts != 1 {
			t.Fatalf("round %d: %d completions, %d reply ids, %d outbox rows, delivery %+v", round, completions, replies, len(r), got)
		}
		var recorded int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1`, d.ID).Scan(&recorded); err != nil || recorded != n {
			t.Fatalf("round %d: %d attempts recorded, want %d (%v)", round, recorded, n, err)
		}
	}
}

// TestRecordReplyAttemptsTogether: the replies of one publish are recorded
// in one statement; a stale lease records none of them, a missing id is
// reported without holding the others back.
func TestRecordReplyAttemptsTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, r1 := recordWithReply(t, s, l, b.ID, "m-1", []byte("p1"), []byte("r1"))
	_, r2 := recordWithReply(t, s, l, b.ID, "m-2", []byte("p2"), []byte("r2"))
	_, r3 := recordWithReply(t, s, l, b.ID, "m-3", []byte("p3"), []byte("r3"))
	stale := l
	stale.Epoch++
	if err := s.RecordReplyAttempts(ctx, stale, []int64{r1, r2}, ReplySent, "", time.Now()); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale batch: %v", err)
	}
	if due, _ := s.DueReplies(ctx, b.ID, 10); len(due) != 3 {
		t.Fatalf("a stale batch changed the outbox: %d due", len(due))
	}
	if err := s.RecordReplyAttempts(ctx, l, []int64{r1, r2, r3 + 1000}, ReplySent, "", time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("batch with a missing id: %v", err)
	}
	due, err := s.DueReplies(ctx, b.ID, 10)
	if err != nil || len(due) != 1 || due[0].ID != r3 {
		t.Fatalf("after the batch: %+v %v", due, err)
	}
}

// TestFencedWritesLeaveTheLeaseRowUnlocked: the one-statement fenced
// writes (leaseCTE) read the lease row without locking it, so concurrent
// writes of one identity make no lock record and no multixact on it. A
// row that a transaction locked keeps that transaction in its xmax after
// the lock is gone; the lease row's stays 0 through every fenced write.
func TestFencedWritesLeaveTheLeaseRowUnlocked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, b, l := leasedBridge(t, "node-1/a")
	unlocked := func(what string) {
		t.Helper()
		var xmax string
		if err := s.pool.QueryRow(ctx, `SELECT xmax::text FROM identity_leases WHERE identity = $1`, b.ID).Scan(&xmax); err != nil {
			t.Fatal(err)
		}
		if xmax != "0" {
			t.Fatalf("%s locked the lease row (xmax %s)", what, xmax)
		}
	}
	unlocked("acquiring the lease")
	d, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: "m-1", Topic: "/t", SenderAddress: randomAddress(t), Lease: &l})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordLeasedAttempt(ctx, l, d.ID, DeliveryAttempt{StatusCode: 500}, DeliveryFailed, time.Now()); err != nil {
		t.Fatal(err)
	}
	unlocked("RecordLeasedAttempt")
	reply, completed, err := s.CompleteDelivery(ctx, l, d.ID, DeliveryAttempt{StatusCode: 200},
		&Reply{BridgeID: b.ID, Topic: "/t", TimestampNs: 1, Envelope: []byte("r")})
	if err != nil || !completed {
		t.Fatalf("complete: %v %v", completed, err)
	}
	unlocked("CompleteDelivery")
	if err := s.RecordReplyAttempt(ctx, l, reply, ReplySent, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	unlocked("RecordReplyAttempt")
	if err := s.SaveCursor(ctx, l, b.ID, "/t", 1, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	unlocked("SaveCursor")
}
