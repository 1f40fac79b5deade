package persistence

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// TestDeliveryReplySealedResealedAndPurged checks the reply text kept for
// the owner's delivery view: sealed at rest, re-encrypted by Reseal so
// that it opens with the new key alone, and erased by the retention sweep
// with the payload.
func TestDeliveryReplySealedResealedAndPurged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, testTemplate)
	oldKey, newKey := testKey(t, "k1"), testKey(t, "k2")
	s := openStore(t, url, mustSealer(t, oldKey))
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, b.ID, "node", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	const reply = "the-reply-text-9090"
	d, created, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: "m-reply", Topic: "/xmtp/0/m-1/proto",
		SenderAddress: randomAddress(t), SentNs: 1, Payload: []byte("payload"), Lease: &l})
	if err != nil || !created {
		t.Fatal(err)
	}
	if _, _, err := s.CompleteDelivery(ctx, l, d.ID, DeliveryAttempt{StatusCode: 200},
		&Reply{BridgeID: b.ID, Topic: d.Topic, TimestampNs: 3, Envelope: []byte("env"), Text: reply}); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := s.pool.QueryRow(ctx, `SELECT reply FROM deliveries WHERE id = $1`, d.ID).Scan(&raw); err != nil || len(raw) == 0 || bytes.Contains(raw, []byte(reply)) {
		t.Fatalf("stored reply %q (%v): want sealed", raw, err)
	}
	rotated := openStore(t, url, mustSealer(t, newKey, oldKey))
	if _, err := rotated.Reseal(ctx); err != nil {
		t.Fatal(err)
	}
	onlyNew := openStore(t, url, mustSealer(t, newKey))
	got, err := onlyNew.DeliveryByID(ctx, d.ID)
	if err != nil || !got.HasReply || got.Reply != reply {
		t.Fatalf("reply after the rotation: %q %v %v", got.Reply, got.HasReply, err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE deliveries SET updated_at = now() - interval '2 hours' WHERE id = $1`, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := onlyNew.SweepRetention(ctx, Retention{Payload: time.Hour}); err != nil {
		t.Fatal(err)
	}
	got, err = onlyNew.DeliveryByID(ctx, d.ID)
	if err != nil || got.HasReply || got.Reply != "" || got.PurgedAt == nil {
		t.Fatalf("reply after the purge: %+v %v", got, err)
	}
}
