package persistence

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEndpointHealthStateMachine: a streak of failures opens the breaker;
// an open endpoint hands out at most one probe per interval to any number
// of concurrent claimants, the interval doubling up to its cap; while it is
// open DueDeliveries offers nothing before the probe and then only the
// oldest delivery; the first success closes it and makes every waiting
// delivery due at once.
func TestEndpointHealthStateMachine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	other, _ := newBridge(t, s, a.ID, []byte("bundle2"))

	h, err := s.EndpointHealthOf(ctx, b.ID)
	if err != nil || h.State != EndpointHealthy || h.FailureStreak != 0 {
		t.Fatalf("a new bridge's health = %+v, %v; want healthy", h, err)
	}
	var ids []int64
	for i := range 5 {
		d, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: fmt.Sprintf("m-%d", i), Topic: "/t", SenderAddress: randomAddress(t), Payload: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	// Two of them back off far into the future.
	for _, id := range ids[3:] {
		if err := s.RecordAttempt(ctx, id, DeliveryAttempt{StatusCode: 503}, DeliveryFailed, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	rules := BreakerRules{OpenAfter: 3, ProbeMin: 300 * time.Millisecond}
	for i, want := range []EndpointState{EndpointFailing, EndpointFailing, EndpointOpen, EndpointOpen} {
		_, to, err := s.RecordEndpointOutcome(ctx, b.ID, false, rules)
		if err != nil || to != want {
			t.Fatalf("failure %d: state %s, %v; want %s", i+1, to, err, want)
		}
	}
	h, _ = s.EndpointHealthOf(ctx, b.ID)
	if h.FailureStreak != 4 || h.OpenedAt == nil || h.NextProbeAt == nil || h.LastFailureAt == nil {
		t.Fatalf("open health = %+v", h)
	}
	if oh, _ := s.EndpointHealthOf(ctx, other.ID); oh.State != EndpointHealthy {
		t.Fatalf("another bridge's health moved: %+v", oh)
	}
	due, err := s.DueDeliveries(ctx, b.ID, 100)
	if err != nil || len(due) != 0 {
		t.Fatalf("due before the first probe: %d, %v; want none", len(due), err)
	}
	if ok, _, err := s.ClaimProbe(ctx, b.ID, 300*time.Millisecond, time.Second); err != nil || ok {
		t.Fatalf("claim before the probe is due = %v, %v", ok, err)
	}
	waitPast(t, *h.NextProbeAt)
	due, err = s.DueDeliveries(ctx, b.ID, 100)
	if err != nil || len(due) != 1 || due[0].ID != ids[0] {
		t.Fatalf("due at the probe: %d, %v; want the oldest alone", len(due), err)
	}
	// Twenty claimants at once: one probe.
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _, err := s.ClaimProbe(ctx, b.ID, 300*time.Millisecond, time.Second); err != nil {
				t.Error(err)
			} else if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d of 20 concurrent claimants got the probe, want 1", won.Load())
	}
	h2, _ := s.EndpointHealthOf(ctx, b.ID)
	if h2.ProbeInterval != 600*time.Millisecond || !h2.NextProbeAt.After(*h.NextProbeAt) {
		t.Fatalf("after a probe: interval %v next %v; want 600ms later than %v", h2.ProbeInterval, h2.NextProbeAt, h.NextProbeAt)
	}
	for _, want := range []time.Duration{time.Second, time.Second} {
		hh, _ := s.EndpointHealthOf(ctx, b.ID)
		waitPast(t, *hh.NextProbeAt)
		if ok, _, err := s.ClaimProbe(ctx, b.ID, 300*time.Millisecond, time.Second); err != nil || !ok {
			t.Fatalf("claim a due probe = %v, %v", ok, err)
		}
		if hh, _ = s.EndpointHealthOf(ctx, b.ID); hh.ProbeInterval != want {
			t.Fatalf("probe interval %v, want %v (capped)", hh.ProbeInterval, want)
		}
	}
	from, to, err := s.RecordEndpointOutcome(ctx, b.ID, true, rules)
	if err != nil || from != EndpointOpen || to != EndpointHealthy {
		t.Fatalf("success: %s -> %s, %v", from, to, err)
	}
	due, err = s.DueDeliveries(ctx, b.ID, 100)
	if err != nil || len(due) != 5 {
		t.Fatalf("due after the close: %d, %v; want all 5, the backed-off ones too", len(due), err)
	}
	for i, d := range due {
		if d.ID != ids[i] {
			t.Fatalf("flush order: %d at %d, want oldest first", d.ID, i)
		}
	}
	h, _ = s.EndpointHealthOf(ctx, b.ID)
	if h.State != EndpointHealthy || h.FailureStreak != 0 || h.LastSuccessAt == nil || h.NextProbeAt != nil {
		t.Fatalf("closed health = %+v", h)
	}
	counts, backlog, err := s.EndpointCounts(ctx)
	if err != nil || counts[EndpointHealthy] != 2 || counts[EndpointOpen] != 0 || backlog != 0 {
		t.Fatalf("counts %v backlog %d, %v", counts, backlog, err)
	}
}

// TestEndpointDisableAndReset: only an endpoint open since before the
// cutoff is disabled; a disabled one offers DueDeliveries one delivery (for
// the owner's reactivation) and is counted; a reset makes it healthy.
func TestEndpointDisableAndReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	for i := range 3 {
		if _, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: b.ID, MessageID: fmt.Sprintf("m-%d", i), Topic: "/t", SenderAddress: randomAddress(t), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.RecordEndpointOutcome(ctx, b.ID, false, BreakerRules{OpenAfter: 1, ProbeMin: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DisableEndpoint(ctx, b.ID, time.Now().Add(-time.Hour)); err != nil || ok {
		t.Fatalf("disable an endpoint open for less than the cutoff = %v, %v", ok, err)
	}
	counts, backlog, err := s.EndpointCounts(ctx)
	if err != nil || counts[EndpointOpen] != 1 || backlog != 3 {
		t.Fatalf("counts %v backlog %d, %v", counts, backlog, err)
	}
	if ok, err := s.DisableEndpoint(ctx, b.ID, time.Now().Add(time.Second)); err != nil || !ok {
		t.Fatalf("disable = %v, %v", ok, err)
	}
	if due, err := s.DueDeliveries(ctx, b.ID, 100); err != nil || len(due) != 1 {
		t.Fatalf("due while disabled: %d, %v; want 1", len(due), err)
	}
	counts, _, _ = s.EndpointCounts(ctx)
	if counts[EndpointDisabled] != 1 || counts[EndpointHealthy] != 0 {
		t.Fatalf("counts while disabled: %v", counts)
	}
	if err := s.ResetEndpointHealth(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.EndpointHealthOf(ctx, b.ID); h.State != EndpointHealthy {
		t.Fatalf("after reset: %s", h.State)
	}
	if _, err := s.EndpointHealthOf(ctx, "not-a-uuid"); err == nil {
		t.Fatal("health of a malformed id: no error")
	}
}

// waitPast waits until the clock is past at.
func waitPast(t testing.TB, at time.Time) {
	t.Helper()
	deadline := at.Add(10 * time.Second)
	for time.Now().Before(at.Add(20 * time.Millisecond)) {
		if time.Now().After(deadline) {
			t.Fatal("clock did not pass")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
