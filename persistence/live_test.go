package persistence

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

func liveDelivery(t *testing.T, s *Store, bridgeID, messageID, text string) Delivery {
	t.Helper()
	d, _, err := s.RecordDelivery(context.Background(), NewDelivery{BridgeID: bridgeID, MessageID: messageID,
		Topic: "/xmtp/0/m-live/proto", SenderAddress: "0x00000000000000000000000000000000000000aa", Payload: []byte(text)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The live stream keeps its messages sealed, hands each to one consumer at
// a time, and turns what nobody acknowledged in time into dead letters
// that a replay brings back.
func TestLiveStreamClaimsAcksAndExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, b.ID, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d1 := liveDelivery(t, s, b.ID, "m1", "secret one")
	d2 := liveDelivery(t, s, b.ID, "m2", "secret two")
	for _, d := range []Delivery{d1, d2, d1} { // the second hand-over of m1 adds nothing
		if err := s.HandOverLive(ctx, l, d, []byte(`{"content":"`+string(d.Payload)+`"}`), true); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.DeliveryByID(ctx, d1.ID); got.Status != DeliverySucceeded {
		t.Fatalf("handed-over delivery: %s", got.Status)
	}
	var raw []byte
	if err := s.pool.QueryRow(ctx, `SELECT string_agg(m::text, '')::bytea FROM live_messages m`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("secret")) {
		t.Fatal("live messages are stored in clear")
	}
	// A lost lease hands over nothing.
	other := l
	other.Epoch++
	if err := s.HandOverLive(ctx, other, d1, []byte(`{}`), true); !errors.Is(err, ErrFenced) {
		t.Fatalf("hand-over without the lease: %v", err)
	}
	// In both mode the delivery stays due for its webhook attempt; a
	// fenced hand-over stores nothing and completes nothing.
	d3 := liveDelivery(t, s, b.ID, "m3", "secret three")
	if err := s.HandOverLive(ctx, other, d3, []byte(`{}`), true); !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced hand-over: %v", err)
	}
	var stored int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM live_messages WHERE message_id = 'm3'`).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("a fenced hand-over stored %d messages (%v)", stored, err)
	}
	if got, _ := s.DeliveryByID(ctx, d3.ID); got.Status != DeliveryPending {
		t.Fatalf("a fenced hand-over left the delivery %s", got.Status)
	}
	if err := s.HandOverLive(ctx, l, d3, []byte(`{}`), false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.DeliveryByID(ctx, d3.ID); got.Status != DeliveryPending || got.Attempts != 0 {
		t.Fatalf("a hand-over in both mode left the delivery %s after %d attempts", got.Status, got.Attempts)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM live_messages WHERE message_id = 'm3'`); err != nil {
		t.Fatal(err)
	}

	got, err := s.ClaimLive(ctx, b.ID, "c1", 0, 10, time.Minute)
	if err != nil || len(got) != 2 || got[0].MessageID != "m1" || string(got[0].Body) != `{"content":"secret one"}` || got[0].Sends != 1 {
		t.Fatalf("claim: %+v %v", got, err)
	}
	if more, _ := s.ClaimLive(ctx, b.ID, "c2", 0, 10, time.Minute); len(more) != 0 {
		t.Fatalf("a second consumer got claimed messages: %+v", more)
	}
	if err := s.AckLive(ctx, b.ID, "c2", "m1"); !errors.Is(err, ErrUnknownLiveMessage) {
		t.Fatalf("ack by a consumer that does not hold it: %v", err)
	}
	if err := s.AckLive(ctx, b.ID, "c1", "m1"); err != nil {
		t.Fatal(err)
	}
	if err := s.AckLive(ctx, b.ID, "c1", "m1"); err != nil {
		t.Fatalf("second ack: %v", err)
	}
	// Released, m2 goes to the next consumer, counted as a second send.
	if err := s.ReleaseLive(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ClaimLive(ctx, b.ID, "c2", 0, 10, time.Minute)
	if len(got) != 1 || got[0].MessageID != "m2" || got[0].Sends != 2 {
		t.Fatalf("after release: %+v", got)
	}
	if bl, err := s.LiveBacklog(ctx); err != nil || bl.Pending != 1 || bl.Oldest <= 0 {
		t.Fatalf("backlog: %+v %v", bl, err)
	}

	// Expiry: m2 waited too long; it and its delivery are dead.
	if _, err := s.pool.Exec(ctx, `UPDATE live_messages SET created_at = now() - interval '2 hours' WHERE message_id = 'm2'`); err != nil {
		t.Fatal(err)
	}
	res, err := s.SweepRetention(ctx, Retention{Live: time.Hour})
	if err != nil || res.LiveExpired != 1 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	if dd, _ := s.DeliveryByID(ctx, d2.ID); dd.Status != DeliveryDead || dd.LastError == "" {
		t.Fatalf("expired delivery: %+v", dd)
	}
	if more, _ := s.ClaimLive(ctx, b.ID, "c3", 0, 10, time.Minute); len(more) != 0 {
		t.Fatalf("a dead message was claimed: %+v", more)
	}
	// A replay of the dead letter brings it back to the stream.
	replayed, err := s.ReplayDeadLetter(ctx, a.ID, b.ID, d2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.HandOverLive(ctx, l, replayed, []byte(`{"content":"again"}`), true); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.ClaimLive(ctx, b.ID, "c3", 0, 10, time.Minute); len(got) != 1 || got[0].MessageID != "m2" {
		t.Fatalf("replayed: %+v", got)
	}
	// The cursor skips what came before it.
	if got, _ = s.ClaimLive(ctx, b.ID, "c4", got[0].ID, 10, time.Minute); len(got) != 0 {
		t.Fatalf("after the cursor: %+v", got)
	}

	// Past the payload retention, done messages lose their content.
	if _, err := s.pool.Exec(ctx, `UPDATE live_messages SET updated_at = now() - interval '2 hours' WHERE status = 'acked'`); err != nil {
		t.Fatal(err)
	}
	if res, err := s.SweepRetention(ctx, Retention{Payload: time.Hour}); err != nil || res.PurgedLive != 1 {
		t.Fatalf("purge: %+v %v", res, err)
	}
}

func TestLiveReplyIsEnqueuedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, b.ID, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d := liveDelivery(t, s, b.ID, "m1", "hi")
	if err := s.HandOverLive(ctx, l, d, []byte(`{}`), true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LiveTarget(ctx, b.ID, "nope"); !errors.Is(err, ErrUnknownLiveMessage) {
		t.Fatalf("target of an unknown message: %v", err)
	}
	r := Reply{BridgeID: b.ID, Topic: d.Topic, TimestampNs: 1, Envelope: []byte("env")}
	id, err := s.EnqueueLiveReply(ctx, "m1", r, "reply-1")
	if err != nil || id != "reply-1" {
		t.Fatalf("reply: %q %v", id, err)
	}
	id, err = s.EnqueueLiveReply(ctx, "m1", r, "reply-2")
	if !errors.Is(err, ErrAlreadyReplied) || id != "reply-1" {
		t.Fatalf("second reply: %q %v", id, err)
	}
	if _, err := s.EnqueueLiveReply(ctx, "nope", r, "reply-3"); !errors.Is(err, ErrUnknownLiveMessage) {
		t.Fatalf("reply to an unknown message: %v", err)
	}
	if due, _ := s.DueReplies(ctx, b.ID, 10); len(due) != 1 {
		t.Fatalf("%d replies in the outbox, want 1", len(due))
	}
	m, err := s.SentMessage(ctx, a.ID, b.ID, "reply-1")
	if err != nil || m.Source != SendLive || m.Status != SendQueued || m.To != "0x00000000000000000000000000000000000000aa" {
		t.Fatalf("reply status: %+v %v", m, err)
	}
	if tg, _ := s.LiveTarget(ctx, b.ID, "m1"); tg.ReplyMessageID != "reply-1" {
		t.Fatalf("target after the reply: %+v", tg)
	}
}

// TestLiveReplyAndBridgeDeleteDoNotDeadlock: a live reply and a delete of
// its bridge lock the bridge's row before its live message, in the same
// order, so that the one that comes second waits instead of deadlocking:
// here the delete, which holds the bridge's row first, goes through, and
// the reply finds its message gone.
func TestLiveReplyAndBridgeDeleteDoNotDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, url := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, b.ID, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d := liveDelivery(t, s, b.ID, "m1", "hi")
	if err := s.HandOverLive(ctx, l, d, []byte(`{}`), true); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, `SELECT 1 FROM bridges WHERE id = $1 FOR UPDATE`, b.ID); err != nil {
		t.Fatal(err)
	}
	replied := make(chan error, 1)
	go func() {
		_, err := s.EnqueueLiveReply(ctx, "m1", Reply{BridgeID: b.ID, Topic: d.Topic, TimestampNs: 1, Envelope: []byte("env")}, "reply-1")
		replied <- err
	}()
	pgtest.Poll(t, url, 20*time.Second, func(ctx context.Context, c *pgx.Conn) (bool, error) {
		var n int
		err := c.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted AND pid IN
			(SELECT pid FROM pg_stat_activity WHERE datname = current_database())`).Scan(&n)
		return n > 0, err
	}, "the live reply waits for the bridge's row")
	if _, err := tx.Exec(ctx, `DELETE FROM bridges WHERE id = $1`, b.ID); err != nil {
		t.Fatalf("delete the bridge while a live reply waits: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit the delete: %v", err)
	}
	if err := <-replied; !errors.Is(err, ErrUnknownLiveMessage) {
		t.Fatalf("live reply to a deleted bridge: %v, want ErrUnknownLiveMessage", err)
	}
}
