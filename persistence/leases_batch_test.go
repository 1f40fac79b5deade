package persistence

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"
)

// TestAcquireLeasesOnAnswersAsOneAtATime: a batch of lease requests under
// a node lease answers each request as AcquireLeaseOn answers it alone, in
// the same order, and leaves the same rows and takeover counts: a free
// identity, a released one, one held under another live node lease, two
// held unreleased under a node lease that ran out, one held by an earlier
// activation under the caller's own node lease, one already the caller's,
// and an identity named twice. Each case is set up twice, under node
// leases of its own: one set is taken one call at a time, the other in one
// batch.
func TestAcquireLeasesOnAnswersAsOneAtATime(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	type setup struct {
		mine, other, dead NodeLease
		reqs              []LeaseRequest
	}
	prepare := func(set string) setup {
		t.Helper()
		var st setup
		var err error
		for _, p := range []struct {
			nl   *NodeLease
			node string
		}{{&st.mine, "mine"}, {&st.other, "other"}, {&st.dead, "dead"}} {
			if *p.nl, err = s.StartNodeLease(ctx, set+"-"+p.node, set+"-"+p.node+".m1", time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		id := func(name string) string { return set + "/" + name }
		hold := func(nl NodeLease, name, owner string) Lease {
			t.Helper()
			l, err := s.AcquireLeaseOn(ctx, nl, id(name), owner)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		released := hold(st.other, "released", "other/1")
		if err := s.ReleaseLease(ctx, released); err != nil {
			t.Fatal(err)
		}
		hold(st.other, "held", "other/2")
		hold(st.dead, "crashed-1", "dead/1")
		hold(st.dead, "crashed-2", "dead/2")
		hold(st.mine, "earlier", "mine/earlier")
		hold(st.mine, "already", "mine/already")
		if _, err := s.Pool().Exec(ctx, `UPDATE node_leases SET expires_at = now() - interval '1 second' WHERE id = $1`, st.dead.ID); err != nil {
			t.Fatal(err)
		}
		st.reqs = []LeaseRequest{
			{id("free"), "mine/a"}, {id("released"), "mine/b"}, {id("held"), "mine/c"},
			{id("crashed-1"), "mine/d"}, {id("crashed-2"), "mine/e"}, {id("earlier"), "mine/f"},
			{id("already"), "mine/already"}, {id("free"), "mine/g"},
		}
		return st
	}
	one, batch := prepare("one"), prepare("batch")
	alone := make([]LeaseResult, len(one.reqs))
	for i, r := range one.reqs {
		l, err := s.AcquireLeaseOn(ctx, one.mine, r.Identity, r.Owner)
		alone[i] = LeaseResult{Lease: l, Err: err}
	}
	together := s.AcquireLeasesOn(ctx, batch.mine, batch.reqs)
	if len(together) != len(batch.reqs) {
		t.Fatalf("%d answers to %d requests", len(together), len(batch.reqs))
	}
	for i := range alone {
		a, b := alone[i], together[i]
		if errors.Is(a.Err, ErrLeaseHeld) != errors.Is(b.Err, ErrLeaseHeld) || (a.Err == nil) != (b.Err == nil) {
			t.Errorf("request %d (%s): alone %v, in a batch %v", i, batch.reqs[i].Identity, a.Err, b.Err)
			continue
		}
		if a.Err != nil {
			continue
		}
		if b.Lease.Identity != batch.reqs[i].Identity || b.Lease.Owner != batch.reqs[i].Owner || b.Lease.Node != batch.mine.ID {
			t.Errorf("request %d: lease %+v answers %+v", i, b.Lease, batch.reqs[i])
		}
		if a.Lease.Epoch != b.Lease.Epoch || a.Lease.TookOver != b.Lease.TookOver {
			t.Errorf("request %d (%s): alone epoch %d took over %v, in a batch epoch %d took over %v",
				i, batch.reqs[i].Identity, a.Lease.Epoch, a.Lease.TookOver, b.Lease.Epoch, b.Lease.TookOver)
		}
		if !b.Lease.ExpiresAt.Equal(batch.mine.ExpiresAt) {
			t.Errorf("request %d: expires %s, its node lease %s", i, b.Lease.ExpiresAt, batch.mine.ExpiresAt)
		}
		// The lease fences as one taken alone: it is the current one.
		if err := s.CheckLease(ctx, b.Lease); i != 0 && err != nil {
			t.Errorf("request %d: the lease taken in a batch does not hold: %v", i, err)
		}
	}
	// The first lease on the identity named twice was taken over by the
	// second, in the batch as alone.
	if err := s.CheckLease(ctx, together[0].Lease); !errors.Is(err, ErrFenced) {
		t.Errorf("the first of two leases on one identity in a batch still holds: %v", err)
	}
	lost := func(nl NodeLease) int64 {
		t.Helper()
		var n int64
		if err := s.Pool().QueryRow(ctx, `SELECT lost FROM node_leases WHERE id = $1`, nl.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, p := range []struct {
		name   string
		a, b   NodeLease
		expect int64
	}{{"dead", one.dead, batch.dead, 2}, {"mine", one.mine, batch.mine, 2}, {"other", one.other, batch.other, 0}} {
		if la, lb := lost(p.a), lost(p.b); la != lb || la != p.expect {
			t.Errorf("node lease %s lost %d alone, %d in a batch; want %d", p.name, la, lb, p.expect)
		}
	}
	// Under a node lease that ran out, every request is fenced.
	for _, r := range s.AcquireLeasesOn(ctx, batch.dead, []LeaseRequest{{"batch/late-1", "dead/x"}, {"batch/late-2", "dead/y"}}) {
		if !errors.Is(r.Err, ErrFenced) {
			t.Errorf("a request under a node lease that ran out: %v, want ErrFenced", r.Err)
		}
	}
}

// TestBatchTakeoverRefusesALeaseTakenUnderANodeLeaseItCannotSee: a batch
// that waits for one identity's row while another node takes a later
// identity of the batch, under a node lease started after the batch's
// statement began, refuses that identity instead of judging the new lease
// void because its snapshot predates the new node lease.
func TestBatchTakeoverRefusesALeaseTakenUnderANodeLeaseItCannotSee(t *testing.T) {
	s, ids, db := nodeLeaseFixture(t, 2)
	sort.Strings(ids)
	ctx := context.Background()
	voidLeases(t, s, ids...)
	waiter := startNodeLease(t, s, "node-b", "node-b.m2")
	// Another transaction holds the first identity's row while node-b's
	// batch starts and waits for it.
	tx := lockLeaseRow(t, s, ids[0])
	done := make(chan []LeaseResult, 1)
	go func() {
		done <- s.AcquireLeasesOn(ctx, waiter, []LeaseRequest{{ids[0], "node-b.m2/x"}, {ids[1], "node-b.m2/y"}})
	}()
	waitBlocked(t, db, "INSERT INTO identity_leases")
	// node-c starts after the batch's snapshot and takes the second
	// identity, which the batch has not reached.
	holder := startNodeLease(t, s, "node-c", "node-c.m3")
	if _, err := s.AcquireLeaseOn(ctx, holder, ids[1], "node-c.m3/y"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got[0].Err != nil {
		t.Fatalf("the void lease: %v", got[0].Err)
	}
	if !errors.Is(got[1].Err, ErrLeaseHeld) {
		t.Fatalf("a takeover of node-c's live lease: %+v, want ErrLeaseHeld", got[1])
	}
	if l, err := s.LeaseOf(ctx, ids[1]); err != nil || l.Owner != "node-c.m3/y" {
		t.Fatalf("the lease is %+v (%v), want node-c's", l, err)
	}
}
