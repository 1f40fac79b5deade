package persistence

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestDueWork: the one query of the node's scheduler lists exactly the
// bridges with work due now: a due delivery of an active bridge whose
// endpoint is not held back by an open breaker, a due reply, broadcast
// copies to queue. A retry due later, an open breaker before its probe, a
// bridge whose endpoint is gone, and an idle bridge are not listed; the
// open breaker's bridge is listed again once its probe is due.
func TestDueWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	bridge := func() string {
		b, _ := newBridge(t, s, a.ID, []byte("bundle"))
		return b.ID
	}
	idle, due, later, open, gone, reply, broadcast := bridge(), bridge(), bridge(), bridge(), bridge(), bridge(), bridge()
	record := func(bridgeID, msg string) Delivery {
		t.Helper()
		d, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: bridgeID, MessageID: msg, Topic: "/t", SenderAddress: randomAddress(t), Payload: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	_ = idle
	record(due, "m1")
	d := record(later, "m2")
	if err := s.RecordAttempt(ctx, d.ID, DeliveryAttempt{StatusCode: 503}, DeliveryFailed, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	record(open, "m3")
	rules := BreakerRules{OpenAfter: 1, ProbeMin: 400 * time.Millisecond}
	if _, to, err := s.RecordEndpointOutcome(ctx, open, false, rules); err != nil || to != EndpointOpen {
		t.Fatalf("open the breaker: %s, %v", to, err)
	}
	record(gone, "m4")
	if err := s.SetBridgeStatus(ctx, gone, StatusEndpointGone); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO reply_outbox (bridge_id, topic, timestamp_ns, envelope) VALUES ($1, '/t', 1, '\x00')`, reply); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateBroadcast(ctx, a.ID, broadcast, "news"); err != nil {
		t.Fatal(err)
	}

	ids, err := s.DueWork(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	want := []string{due, reply, broadcast}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("due work %v, want %v", ids, want)
	}
	// The probe comes due: the open endpoint's bridge is listed.
	time.Sleep(500 * time.Millisecond)
	ids, err = s.DueWork(ctx, 0)
	if err != nil || !slices.Contains(ids, open) {
		t.Fatalf("due work after the probe time %v, %v; want %s among them", ids, err, open)
	}
	if ids, err := s.DueWork(ctx, 1); err != nil || len(ids) != 1 {
		t.Fatalf("due work with a limit of 1: %v, %v", ids, err)
	}
}

// TestEnabledBridgeIDs: placement reads the ids of every bridge but the
// disabled ones.
func TestEnabledBridgeIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	on, _ := newBridge(t, s, a.ID, []byte("bundle"))
	off, _ := newBridge(t, s, a.ID, []byte("bundle"))
	gone, _ := newBridge(t, s, a.ID, []byte("bundle"))
	if err := s.SetBridgeStatus(ctx, off.ID, StatusDisabled); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBridgeStatus(ctx, gone.ID, StatusEndpointGone); err != nil {
		t.Fatal(err)
	}
	ids, err := s.EnabledBridgeIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{on.ID, gone.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("enabled ids %v, want %v", ids, want)
	}
}

// TestBridgeChangedNotifications: a change of a bridge's row, of its
// forward configuration and a rotation of its webhook secret are each
// announced on BridgeChangedChannel with the bridge's id, on a connection
// that listens to it.
func TestBridgeChangedNotifications(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	events := make(chan string, 16)
	ready := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- s.Listen(ctx, []string{BridgeChangedChannel}, func() { once.Do(func() { close(ready) }) },
			func(channel, payload string) {
				if channel == BridgeChangedChannel {
					events <- payload
				}
			})
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("not listening")
	}
	expect := func(what string) {
		t.Helper()
		select {
		case id := <-events:
			if id != b.ID {
				t.Fatalf("%s: notified %s, want %s", what, id, b.ID)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no notification", what)
		}
		// A statement can touch several rows: what it announced is the
		// same bridge.
		for len(events) > 0 {
			if id := <-events; id != b.ID {
				t.Fatalf("%s: notified %s too", what, id)
			}
		}
	}
	if err := s.SetBridgeStatus(ctx, b.ID, StatusEndpointGone); err != nil {
		t.Fatal(err)
	}
	expect("status")
	if _, err := s.UpdateBridge(ctx, a.ID, b.ID, func(br *Bridge) error {
		br.Forward.URL = "https://example.com/other"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	expect("forward configuration")
	if _, err := s.RotateWebhookSecret(ctx, a.ID, b.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	expect("secret rotation")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("listen ended with %v, want nil once its context ended", err)
	}
}

// TestDueWorkOn: a node's scheduler lists the due work of the bridges
// whose identity leases live under its node lease, and not another node's
// nor a released lease's.
func TestDueWorkOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	mine, theirs, released := mustBridge(t, s, a.ID), mustBridge(t, s, a.ID), mustBridge(t, s, a.ID)
	for i, id := range []string{mine, theirs, released} {
		if _, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: id, MessageID: "m" + string(rune('0'+i)), Topic: "/t",
			SenderAddress: randomAddress(t), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	nodeA, err := s.StartNodeLease(ctx, "node-a", "node-a.m1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	nodeB, err := s.StartNodeLease(ctx, "node-b", "node-b.m1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLeaseOn(ctx, nodeA, mine, "node-a.m1/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLeaseOn(ctx, nodeB, theirs, "node-b.m1/1"); err != nil {
		t.Fatal(err)
	}
	l, err := s.AcquireLeaseOn(ctx, nodeA, released, "node-a.m1/2")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLease(ctx, l); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.DueWorkOn(ctx, nodeA, 0); err != nil || !slices.Equal(ids, []string{mine}) {
		t.Fatalf("node a's due work %v, %v; want [%s]", ids, err, mine)
	}
	if ids, err := s.DueWorkOn(ctx, nodeB, 0); err != nil || !slices.Equal(ids, []string{theirs}) {
		t.Fatalf("node b's due work %v, %v; want [%s]", ids, err, theirs)
	}
	if ids, err := s.DueWork(ctx, 0); err != nil || len(ids) != 3 {
		t.Fatalf("the cluster's due work %v, %v; want all three", ids, err)
	}
}

func mustBridge(t *testing.T, s *Store, accountID string) string {
	t.Helper()
	b, _ := newBridge(t, s, accountID, []byte("bundle"))
	return b.ID
}

// TestEnabledBridgeIDsAmong: placement's look at the bridges that changed
// keeps those that exist and are not disabled, and passes over ids that
// name no bridge.
func TestEnabledBridgeIDsAmong(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	on, off := mustBridge(t, s, a.ID), mustBridge(t, s, a.ID)
	if err := s.SetBridgeStatus(ctx, off, StatusDisabled); err != nil {
		t.Fatal(err)
	}
	ids, err := s.EnabledBridgeIDsAmong(ctx, []string{on, off, "00000000-0000-0000-0000-000000000000", "not-an-id"})
	if err != nil || !slices.Equal(ids, []string{on}) {
		t.Fatalf("enabled among %v, %v; want [%s]", ids, err, on)
	}
	if ids, err := s.EnabledBridgeIDsAmong(ctx, nil); err != nil || len(ids) != 0 {
		t.Fatalf("enabled among none: %v, %v", ids, err)
	}
}
