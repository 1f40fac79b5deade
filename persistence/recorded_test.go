package persistence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestRecordDeliveriesInOneBatch: a batch for two identities records new
// messages once, returns the earlier row of a message already recorded,
// creates a message given twice once, refuses the rows of a stale lease
// (and only those), and fails a row a constraint refuses on its own.
func TestRecordDeliveriesInOneBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b1, _ := newBridge(t, s, a.ID, []byte("bundle-1"))
	b2, _ := newBridge(t, s, a.ID, []byte("bundle-2"))
	l1, err := s.AcquireLease(ctx, b1.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := s.AcquireLease(ctx, b2.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	nd := func(b string, l Lease, msg string) NewDelivery {
		return NewDelivery{BridgeID: b, MessageID: msg, Topic: "/xmtp/0/m-1/proto", SenderAddress: randomAddress(t),
			SentNs: 5, Payload: []byte("payload of " + msg), Lease: &l}
	}
	earlier, _, err := s.RecordDelivery(ctx, nd(b1.ID, l1, "m-old"))
	if err != nil {
		t.Fatal(err)
	}
	bad := nd(b2.ID, l2, "m-bad")
	bad.SenderAddress = "not an address"
	batch := []NewDelivery{nd(b1.ID, l1, "m-1"), nd(b2.ID, l2, "m-2"), nd(b1.ID, l1, "m-old"), nd(b1.ID, l1, "m-1"), bad}
	got := s.RecordDeliveries(ctx, batch)
	if len(got) != len(batch) {
		t.Fatalf("%d results for %d inputs", len(got), len(batch))
	}
	for i, want := range []bool{true, true, false, false} {
		r := got[i]
		if r.Err != nil || r.Created != want || r.Delivery.MessageID != batch[i].MessageID ||
			string(r.Delivery.Payload) != "payload of "+batch[i].MessageID || r.Delivery.Status != DeliveryPending {
			t.Fatalf("input %d: %+v, want created %v", i, r, want)
		}
	}
	if got[2].Delivery.ID != earlier.ID || got[3].Delivery.ID != got[0].Delivery.ID {
		t.Fatalf("ids: earlier %d got %d; first %d repeat %d", earlier.ID, got[2].Delivery.ID, got[0].Delivery.ID, got[3].Delivery.ID)
	}
	if !errors.Is(got[4].Err, ErrInvalid) {
		t.Fatalf("a refused row: %v", got[4].Err)
	}
	// The rows a batch did not create are read in one statement, whole,
	// not one by one after it fails.
	known, err := s.knownDeliveries(ctx, batch, []int{2})
	if err != nil {
		t.Fatalf("read the rows the batch did not create: %v", err)
	}
	if d := known[deliveryKey{canonicalID(b1.ID), "m-old"}]; d.ID != earlier.ID || string(d.Payload) != "payload of m-old" || d.Topic != batch[2].Topic {
		t.Fatalf("the row read again: %+v", d)
	}

	// Identity 1 changes hands: its rows are fenced, identity 2's go in.
	if _, err := s.pool.Exec(ctx, "UPDATE identity_leases SET expires_at = now() - interval '1 second' WHERE identity = $1", b1.ID); err != nil {
		t.Fatal(err)
	}
	got = s.RecordDeliveries(ctx, []NewDelivery{nd(b1.ID, l1, "m-3"), nd(b2.ID, l2, "m-4")})
	if !errors.Is(got[0].Err, ErrFenced) || got[1].Err != nil || !got[1].Created {
		t.Fatalf("after the take-over: %+v / %+v", got[0], got[1])
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE message_id = 'm-3'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("a fenced row was written: %d %v", n, err)
	}

	// A large batch is one statement and every row comes back.
	var many []NewDelivery
	for i := range 300 {
		many = append(many, nd(b2.ID, l2, fmt.Sprintf("bulk-%03d", i)))
	}
	for i, r := range s.RecordDeliveries(ctx, many) {
		if r.Err != nil || !r.Created || r.Delivery.MessageID != many[i].MessageID {
			t.Fatalf("bulk %d: %+v", i, r)
		}
	}
}

// TestRecordDeliveriesCarryTheSecrets: the rows a batch creates come with
// their bridge's webhook secrets as of that round trip, the current one
// first, so that a first attempt needs no read of its own; a row recorded
// before comes without them. A rotation with no grace period applies to
// the next batch.
func TestRecordDeliveriesCarryTheSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b1, sec1 := newBridge(t, s, a.ID, []byte("bundle-1"))
	b2, sec2 := newBridge(t, s, a.ID, []byte("bundle-2"))
	l1, err := s.AcquireLease(ctx, b1.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := s.AcquireLease(ctx, b2.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	nd := func(b string, l Lease, msg string) NewDelivery {
		return NewDelivery{BridgeID: b, MessageID: msg, Topic: "/xmtp/0/t/proto", SenderAddress: randomAddress(t), SentNs: 1,
			Payload: []byte("p"), Lease: &l}
	}
	secretsOf := func(r Recorded) []string {
		var out []string
		for _, s := range r.Secrets {
			out = append(out, s.Secret)
		}
		return out
	}
	got := s.RecordDeliveries(ctx, []NewDelivery{nd(b1.ID, l1, "m-1"), nd(b2.ID, l2, "m-2"), nd(b1.ID, l1, "m-3")})
	for i, want := range [][]string{{sec1.WebhookSecret}, {sec2.WebhookSecret}, {sec1.WebhookSecret}} {
		if got[i].Err != nil || !got[i].Created || !slices.Equal(secretsOf(got[i]), want) {
			t.Fatalf("input %d: created %v, secrets %d, %v; want the bridge's one secret", i, got[i].Created, len(got[i].Secrets), got[i].Err)
		}
	}
	rotated, err := s.RotateWebhookSecret(ctx, a.ID, b1.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got = s.RecordDeliveries(ctx, []NewDelivery{nd(b1.ID, l1, "m-1"), nd(b1.ID, l1, "m-4")})
	if got[0].Err != nil || got[0].Created || got[0].Secrets != nil {
		t.Fatalf("a known row: created %v, %d secrets, %v; want neither", got[0].Created, len(got[0].Secrets), got[0].Err)
	}
	if want := []string{rotated, sec1.WebhookSecret}; got[1].Err != nil || !slices.Equal(secretsOf(got[1]), want) {
		t.Fatalf("after a rotation with a grace period: %d secrets, %v; want the new one, then the old one", len(got[1].Secrets), got[1].Err)
	}
	now, err := s.RotateWebhookSecret(ctx, a.ID, b2.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	got = s.RecordDeliveries(ctx, []NewDelivery{nd(b2.ID, l2, "m-5")})
	if got[0].Err != nil || !slices.Equal(secretsOf(got[0]), []string{now}) {
		t.Fatalf("after a rotation with no grace: %d secrets, %v; want only the new one", len(got[0].Secrets), got[0].Err)
	}
}
