package persistence

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLeasesFenceStaleOwners(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))

	l1, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil || l1.Epoch != 1 {
		t.Fatalf("first acquire: %+v %v", l1, err)
	}
	if _, err := s.AcquireLease(ctx, b.ID, "node-2/a", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("acquire of a held lease: %v", err)
	}
	again, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil || again.Epoch != 1 {
		t.Fatalf("re-acquire by the owner: %+v %v", again, err)
	}
	if err := s.SaveCursor(ctx, l1, b.ID, "/xmtp/0/m-1/proto", 10, nil); err != nil {
		t.Fatalf("save cursor under a live lease: %v", err)
	}

	// Expire the lease by hand (no sleeping): another owner takes over
	// with a newer epoch, and the old owner is fenced out.
	if _, err := s.pool.Exec(ctx, "UPDATE identity_leases SET expires_at = now() - interval '1 second' WHERE identity = $1", b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckLease(ctx, l1); !errors.Is(err, ErrFenced) {
		t.Fatalf("check of an expired lease: %v", err)
	}
	l2, err := s.AcquireLease(ctx, b.ID, "node-2/a", time.Minute)
	if err != nil || l2.Epoch != 2 {
		t.Fatalf("take-over: %+v %v", l2, err)
	}
	if _, err := s.RenewLease(ctx, l1, time.Minute); !errors.Is(err, ErrFenced) {
		t.Fatalf("renew by the stale owner: %v", err)
	}
	if err := s.SaveCursor(ctx, l1, b.ID, "/xmtp/0/m-1/proto", 99, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("cursor write by the stale owner: %v", err)
	}
	if _, err := s.EnqueueReply(ctx, l1, Reply{BridgeID: b.ID, Topic: "t", TimestampNs: 1, Envelope: []byte("e")}); !errors.Is(err, ErrFenced) {
		t.Fatalf("outbox write by the stale owner: %v", err)
	}
	if err := s.ReleaseLease(ctx, l1); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LeaseOf(ctx, b.ID); err != nil || got.Owner != "node-2/a" || got.Epoch != 2 {
		t.Fatalf("stale release changed the lease: %+v %v", got, err)
	}
	renewed, err := s.RenewLease(ctx, l2, time.Hour)
	if err != nil || renewed.Epoch != 2 || !renewed.ExpiresAt.After(l2.ExpiresAt) {
		t.Fatalf("renew: %+v %v", renewed, err)
	}
	if err := s.ReleaseLease(ctx, renewed); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckLease(ctx, renewed); !errors.Is(err, ErrFenced) {
		t.Fatalf("check of a released lease: %v", err)
	}
	l3, err := s.AcquireLease(ctx, b.ID, "node-3/a", time.Minute)
	if err != nil || l3.Epoch != 3 {
		t.Fatalf("acquire after release: want epoch 3 (epochs are never reused), got %+v %v", l3, err)
	}
}

func TestCursorsOutboxCanaryQuarantine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	topic := "/xmtp/0/m-1/proto"
	digest := bytes.Repeat([]byte{1}, 32)
	if err := s.SaveCursor(ctx, l, b.ID, topic, 200, digest); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCursor(ctx, l, b.ID, topic, 100, nil); err != nil {
		t.Fatal(err)
	}
	cur, err := s.Cursors(ctx, b.ID)
	if err != nil || cur[topic].LastTimestampNs != 200 || !bytes.Equal(cur[topic].LastDigest, digest) {
		t.Fatalf("cursor moved back or was lost: %+v %v", cur, err)
	}

	id, err := s.EnqueueReply(ctx, l, Reply{BridgeID: b.ID, Topic: topic, TimestampNs: 123, Envelope: []byte("env")})
	if err != nil {
		t.Fatal(err)
	}
	due, err := s.DueReplies(ctx, b.ID, 10)
	if err != nil || len(due) != 1 || due[0].ID != id || due[0].TimestampNs != 123 || string(due[0].Envelope) != "env" {
		t.Fatalf("due replies: %+v %v", due, err)
	}
	if err := s.RecordReplyAttempt(ctx, l, id, ReplyFailed, "node down", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.DueReplies(ctx, b.ID, 10); len(due) != 0 {
		t.Fatalf("a reply retried later is due now: %+v", due)
	}
	if err := s.RecordReplyAttempt(ctx, l, id+1000, ReplySent, "", time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("attempt on an unknown reply: %v", err)
	}

	sent := time.Now().Add(-1500 * time.Millisecond)
	if err := s.RecordCanarySent(ctx, b.ID, "n1", sent); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordCanarySent(ctx, b.ID, "n1", sent); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate canary nonce: %v", err)
	}
	rtt, err := s.RecordCanaryReceived(ctx, b.ID, "n1", sent.Add(1500*time.Millisecond))
	if err != nil || rtt < 1499*time.Millisecond || rtt > 1501*time.Millisecond {
		t.Fatalf("canary rtt %v, %v; want 1.5s", rtt, err)
	}
	if _, err := s.RecordCanaryReceived(ctx, b.ID, "n1", time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second arrival of one canary: %v", err)
	}
	if err := s.RecordCanaryError(ctx, b.ID, "missing", "timeout"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("error on unknown canary: %v", err)
	}
	latest, err := s.LatestCanary(ctx, b.ID)
	if err != nil || latest.Nonce != "n1" || latest.ReceivedAt == nil || latest.RTT != rtt {
		t.Fatalf("latest canary: %+v %v", latest, err)
	}

	if err := s.Quarantine(ctx, b.ID, topic, []byte{0xff, 0x00}, "bad signature"); err != nil {
		t.Fatal(err)
	}
	if err := s.Quarantine(ctx, "", "", nil, ""); err != nil {
		t.Fatalf("quarantine without a bridge: %v", err)
	}
	q, err := s.QuarantinedMessages(ctx, b.ID, 10)
	if err != nil || len(q) != 1 || q[0].Reason != "bad signature" || !bytes.Equal(q[0].Envelope, []byte{0xff, 0x00}) {
		t.Fatalf("quarantined: %+v %v", q, err)
	}
}

func TestDueDeliveriesAndReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	alice, _ := newAccount(t, s, "alice")
	bob, _ := newAccount(t, s, "bob")
	b, _ := newBridge(t, s, alice.ID, []byte("bundle"))
	mk := func(id string) Delivery {
		d, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: id, Topic: "t", SenderAddress: randomAddress(t), Payload: []byte(id)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d1, d2, d3 := mk("1"), mk("2"), mk("3")
	if err := s.RecordAttempt(ctx, d2.ID, DeliveryAttempt{StatusCode: 503}, DeliveryFailed, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, d3.ID, DeliveryAttempt{Error: "connection refused"}, DeliveryDead, time.Now()); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueDeliveries(ctx, b.ID, 10)
	if err != nil || len(due) != 1 || due[0].ID != d1.ID {
		t.Fatalf("due deliveries: %+v %v", due, err)
	}
	if _, err := s.ReplayDeadLetter(ctx, bob.ID, b.ID, d3.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replay by another account: %v", err)
	}
	if _, err := s.ReplayDeadLetter(ctx, alice.ID, b.ID, d1.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replay of a live delivery: %v", err)
	}
	r, err := s.ReplayDeadLetter(ctx, alice.ID, b.ID, d3.ID)
	if err != nil || r.Status != DeliveryPending || r.Attempts != 0 {
		t.Fatalf("replay: %+v %v", r, err)
	}
	due, _ = s.DueDeliveries(ctx, b.ID, 10)
	if len(due) != 2 || due[1].ID != d3.ID {
		t.Fatalf("after replay, due: %+v", due)
	}
}

func TestPoolCollector(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	reg := prometheus.NewRegistry()
	if err := reg.Register(s.Collector()); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[f.GetName()] += v
		}
	}
	if got["bridge_persistence_pool_acquires_total"] < 1 || got["bridge_persistence_pool_max_connections"] < 1 || got["bridge_persistence_pool_connections"] < 1 {
		t.Fatalf("pool metrics %v", got)
	}
}
