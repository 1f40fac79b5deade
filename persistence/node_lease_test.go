package persistence

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// nodeLeaseFixture is a store with n bridges; it returns their ids and the
// database URL.
func nodeLeaseFixture(t *testing.T, n int) (*Store, []string, string) {
	t.Helper()
	s, url := newTestStore(t)
	acct, _ := newAccount(t, s, "node-leases")
	ids := make([]string, n)
	for i := range ids {
		b, _ := newBridge(t, s, acct.ID, []byte("bundle"))
		ids[i] = b.ID
	}
	return s, ids, url
}

// rowVersions returns the xmin of every identity lease row of ids: it
// changes whenever the row is written.
func rowVersions(t *testing.T, s *Store, ids []string) map[string]string {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), `SELECT identity, xmin::text FROM identity_leases WHERE identity = ANY($1)`, ids)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var id, v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		out[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNodeLeaseExpiryFencesEveryIdentityUnderIt: the identity leases under
// a node lease hold while it is renewed, with no write to their rows, and
// all of them are void once it runs out: their fenced writes are refused,
// the node lease cannot be renewed back, and another node takes every
// identity over.
func TestNodeLeaseExpiryFencesEveryIdentityUnderIt(t *testing.T) {
	s, ids, _ := nodeLeaseFixture(t, 3)
	ctx := context.Background()
	nl, err := s.StartNodeLease(ctx, "node-a", "node-a.m1", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	held := make([]Lease, len(ids))
	for i, id := range ids {
		if held[i], err = s.AcquireLeaseOn(ctx, nl, id, "node-a.m1/"+id[:8]); err != nil {
			t.Fatal(err)
		}
		if held[i].Node != nl.ID || held[i].Epoch != 1 || held[i].TookOver || !held[i].ExpiresAt.Equal(nl.ExpiresAt) {
			t.Fatalf("lease under node lease %+v: %+v", nl, held[i])
		}
	}
	before := rowVersions(t, s, ids)
	for range 3 {
		if nl, err = s.RenewNodeLease(ctx, nl, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if after := rowVersions(t, s, ids); len(after) != len(ids) || !mapsEqual(before, after) {
		t.Fatalf("identity lease rows written by node lease renewals: %v, then %v", before, after)
	}
	valid, err := s.CheckLeases(ctx, held)
	if err != nil || len(valid) != len(ids) {
		t.Fatalf("valid leases under a renewed node lease: %v, %v", valid, err)
	}
	for _, l := range held {
		if v := valid[l.Identity]; !v.ExpiresAt.Equal(nl.ExpiresAt) || v.Node != nl.ID {
			t.Fatalf("checked lease %+v, node lease %+v", v, nl)
		}
		if err := s.SaveCursor(ctx, l, l.Identity, "/xmtp/0/m-t/proto", 1, make([]byte, 32)); err != nil {
			t.Fatalf("fenced write under a live node lease: %v", err)
		}
	}

	time.Sleep(time.Until(nl.ExpiresAt) + 100*time.Millisecond) // the node stops renewing
	if _, err := s.RenewNodeLease(ctx, nl, time.Minute); !errors.Is(err, ErrFenced) {
		t.Fatalf("renewal of a node lease that ran out: %v, want ErrFenced", err)
	}
	if valid, err := s.CheckLeases(ctx, held); err != nil || len(valid) != 0 {
		t.Fatalf("valid leases after the node lease ran out: %v, %v", valid, err)
	}
	for _, l := range held {
		if err := s.CheckLease(ctx, l); !errors.Is(err, ErrFenced) {
			t.Fatalf("check of %s: %v, want ErrFenced", l.Identity, err)
		}
		if err := s.SaveCursor(ctx, l, l.Identity, "/xmtp/0/m-t/proto", 2, make([]byte, 32)); !errors.Is(err, ErrFenced) {
			t.Fatalf("fenced write of %s: %v, want ErrFenced", l.Identity, err)
		}
		if _, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: l.Identity, MessageID: "m", Topic: "/xmtp/0/m-t/proto",
			SenderAddress: "0x0000000000000000000000000000000000000002", SentNs: 1, Payload: []byte("p"), Lease: &l}); !errors.Is(err, ErrFenced) {
			t.Fatalf("record delivery of %s: %v, want ErrFenced", l.Identity, err)
		}
		if _, err := s.AcquireLeaseOn(ctx, nl, l.Identity, "node-a.m1/again"); !errors.Is(err, ErrFenced) {
			t.Fatalf("a lease under a node lease that ran out: %v, want ErrFenced", err)
		}
	}
	placements, err := s.LivePlacements(ctx)
	if err != nil || len(placements) != 0 {
		t.Fatalf("live placements after the node lease ran out: %+v, %v", placements, err)
	}

	other, err := s.StartNodeLease(ctx, "node-b", "node-b.m2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if other.ID <= nl.ID {
		t.Fatalf("new node lease %d after %d", other.ID, nl.ID)
	}
	for _, l := range held {
		took, err := s.AcquireLeaseOn(ctx, other, l.Identity, "node-b.m2/y")
		if err != nil || took.Epoch != 2 || !took.TookOver || took.Node != other.ID {
			t.Fatalf("takeover of %s: %+v, %v", l.Identity, took, err)
		}
	}
	if placements, err := s.LivePlacements(ctx); err != nil || len(placements) != len(ids) || placements[0].Lease.Node != other.ID {
		t.Fatalf("live placements after the takeover: %+v, %v", placements, err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRestartedNodeTakesOverUnderANewIncarnation: a node killed with -9
// and started again has a new node lease, a new incarnation. Its old
// identity leases hold until the old node lease runs out, and are void
// after: the new incarnation takes them over with the next epoch, and the
// old one can neither renew nor write.
func TestRestartedNodeTakesOverUnderANewIncarnation(t *testing.T) {
	s, ids, _ := nodeLeaseFixture(t, 1)
	b := ids[0]
	ctx := context.Background()
	first, err := s.StartNodeLease(ctx, "node-a", "node-a.m1", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	old, err := s.AcquireLeaseOn(ctx, first, b, "node-a.m1/x")
	if err != nil {
		t.Fatal(err)
	}
	// kill -9: the first process renews nothing more. The same node
	// starts again.
	second, err := s.StartNodeLease(ctx, "node-a", "node-a.m2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID <= first.ID || second.Node != "node-a" {
		t.Fatalf("restart's node lease %+v after %+v", second, first)
	}
	if _, err := s.AcquireLeaseOn(ctx, second, b, "node-a.m2/y"); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("lease under the previous incarnation, still live: %v, want ErrLeaseHeld", err)
	}
	time.Sleep(time.Until(first.ExpiresAt) + 100*time.Millisecond)
	l, err := s.AcquireLeaseOn(ctx, second, b, "node-a.m2/y")
	if err != nil || l.Epoch != old.Epoch+1 || !l.TookOver || l.Node != second.ID {
		t.Fatalf("takeover by the new incarnation: %+v, %v", l, err)
	}
	if err := s.CheckLease(ctx, old); !errors.Is(err, ErrFenced) {
		t.Fatalf("the old incarnation's lease: %v, want ErrFenced", err)
	}
	if err := s.SaveCursor(ctx, old, b, "/xmtp/0/m-t/proto", 1, make([]byte, 32)); !errors.Is(err, ErrFenced) {
		t.Fatalf("a write of the old incarnation: %v, want ErrFenced", err)
	}
	if _, err := s.RenewNodeLease(ctx, first, time.Minute); !errors.Is(err, ErrFenced) {
		t.Fatalf("renewal of the old incarnation: %v, want ErrFenced", err)
	}
	if cur, err := s.LeaseOf(ctx, b); err != nil || cur.Owner != "node-a.m2/y" || cur.Node != second.ID || !cur.ExpiresAt.After(time.Now()) {
		t.Fatalf("lease after the restart: %+v, %v", cur, err)
	}
	if err := s.SaveCursor(ctx, l, b, "/xmtp/0/m-t/proto", 1, make([]byte, 32)); err != nil {
		t.Fatalf("a write of the new incarnation: %v", err)
	}
	// A graceful stop ends the node lease: its identities are free at once.
	if err := s.EndNodeLease(ctx, second); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckLease(ctx, l); !errors.Is(err, ErrFenced) {
		t.Fatalf("a lease under an ended node lease: %v, want ErrFenced", err)
	}
	if _, err := s.RenewNodeLease(ctx, second, time.Minute); !errors.Is(err, ErrFenced) {
		t.Fatalf("renewal of an ended node lease: %v, want ErrFenced", err)
	}
	third, err := s.StartNodeLease(ctx, "node-b", "node-b.m3", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if l3, err := s.AcquireLeaseOn(ctx, third, b, "node-b.m3/z"); err != nil || l3.Epoch != l.Epoch+1 {
		t.Fatalf("lease after the node lease ended: %+v, %v", l3, err)
	}
}

// TestTakeoverWhileTheNodeLeaseLivesMovesItsLostCount: a lease taken from
// a live node lease (here one made to expire by hand) counts on that node
// lease, so its renewer knows to check its identities; a release and a
// take by the same incarnation do not.
func TestTakeoverWhileTheNodeLeaseLivesMovesItsLostCount(t *testing.T) {
	s, ids, _ := nodeLeaseFixture(t, 2)
	ctx := context.Background()
	nl, err := s.StartNodeLease(ctx, "node-a", "node-a.m1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.AcquireLeaseOn(ctx, nl, ids[0], "node-a.m1/x")
	if err != nil {
		t.Fatal(err)
	}
	lost, err := s.AcquireLeaseOn(ctx, nl, ids[1], "node-a.m1/y")
	if err != nil {
		t.Fatal(err)
	}
	// Released and taken again on the same node: nothing was lost.
	if err := s.ReleaseLease(ctx, kept); err != nil {
		t.Fatal(err)
	}
	if kept, err = s.AcquireLeaseOn(ctx, nl, ids[0], "node-a.m1/x2"); err != nil || kept.TookOver || kept.Epoch != 2 {
		t.Fatalf("taking a released lease again: %+v, %v", kept, err)
	}
	if nl, err = s.RenewNodeLease(ctx, nl, time.Minute); err != nil || nl.Lost != 0 {
		t.Fatalf("lost after a release: %+v, %v", nl, err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE identity_leases SET expires_at = now() - interval '1 second' WHERE identity = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, ids[1], "intruder", time.Minute); err != nil {
		t.Fatal(err)
	}
	if nl, err = s.RenewNodeLease(ctx, nl, time.Minute); err != nil || nl.Lost != 1 {
		t.Fatalf("lost after a takeover: %+v, %v", nl, err)
	}
	valid, err := s.CheckLeases(ctx, []Lease{kept, lost})
	if _, ok := valid[ids[1]]; err != nil || ok || len(valid) != 1 {
		t.Fatalf("checked leases after the takeover: %v, %v", valid, err)
	}
}

// waitBlocked waits until a statement containing fragment waits for a
// lock in the database db.
func waitBlocked(t *testing.T, db, fragment string) {
	t.Helper()
	pgtest.Poll(t, db, 10*time.Second, func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND position($1 in query) > 0`, fragment).Scan(&n)
		return n > 0, err
	}, "a statement with %q waiting for a lock", fragment)
}

// TestReleaseIsNotUndoneByARenewalInFlight: a renewal that started before
// a release and lands after it leaves the lease released, so the next
// owner takes it at once. Under a node lease the renewal writes only the
// node lease; a lease on its own refuses a released row.
func TestReleaseIsNotUndoneByARenewalInFlight(t *testing.T) {
	s, ids, db := nodeLeaseFixture(t, 2)
	ctx := context.Background()

	t.Run("node lease", func(t *testing.T) {
		nl, err := s.StartNodeLease(ctx, "node-a", "node-a.m1", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.AcquireLeaseOn(ctx, nl, ids[0], "node-a.m1/x")
		if err != nil {
			t.Fatal(err)
		}
		// Hold the node lease row, so the renewal waits in flight.
		tx, err := s.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT 1 FROM node_leases WHERE id = $1 FOR UPDATE`, nl.ID); err != nil {
			t.Fatal(err)
		}
		renewed := make(chan error, 1)
		go func() {
			_, err := s.RenewNodeLease(ctx, nl, time.Hour)
			renewed <- err
		}()
		waitBlocked(t, db, "UPDATE node_leases")
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := s.ReleaseLease(rctx, l); err != nil {
			t.Fatalf("release while a renewal is in flight: %v", err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-renewed; err != nil {
			t.Fatalf("renewal in flight: %v", err)
		}
		assertReleased(t, s, l)
		other, err := s.StartNodeLease(ctx, "node-b", "node-b.m2", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if next, err := s.AcquireLeaseOn(ctx, other, ids[0], "node-b.m2/y"); err != nil || next.TookOver || next.Epoch != l.Epoch+1 {
			t.Fatalf("next owner after the release: %+v, %v", next, err)
		}
	})

	t.Run("lease on its own", func(t *testing.T) {
		x, err := s.AcquireLease(ctx, ids[0]+"/x", "n1/a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.AcquireLease(ctx, ids[1], "n1/a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		// Hold x, first in the batch: the renewal has begun, and waits
		// before it reaches l.
		tx, err := s.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT 1 FROM identity_leases WHERE identity = $1 FOR UPDATE`, x.Identity); err != nil {
			t.Fatal(err)
		}
		renewed := make(chan map[string]Lease, 1)
		go func() {
			m, err := s.RenewLeases(ctx, []Lease{x, l}, time.Hour)
			if err != nil {
				t.Errorf("renewal in flight: %v", err)
			}
			renewed <- m
		}()
		waitBlocked(t, db, "UPDATE identity_leases")
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := s.ReleaseLease(rctx, l); err != nil {
			t.Fatalf("release while a renewal is in flight (it must not have reached the row yet): %v", err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		m := <-renewed
		if _, ok := m[l.Identity]; ok {
			t.Fatalf("a renewal in flight renewed a released lease: %v", m)
		}
		if _, ok := m[x.Identity]; !ok {
			t.Fatalf("the renewal left out the lease still held: %v", m)
		}
		assertReleased(t, s, l)
		if next, err := s.AcquireLease(ctx, l.Identity, "n2/b", time.Minute); err != nil || next.TookOver || next.Epoch != l.Epoch+1 {
			t.Fatalf("next owner after the release: %+v, %v", next, err)
		}
	})
}

func assertReleased(t *testing.T, s *Store, l Lease) {
	t.Helper()
	ctx := context.Background()
	if err := s.CheckLease(ctx, l); !errors.Is(err, ErrFenced) {
		t.Fatalf("released lease after the renewal: %v, want ErrFenced", err)
	}
	cur, err := s.LeaseOf(ctx, l.Identity)
	if err != nil || cur.ExpiresAt.After(time.Now()) {
		t.Fatalf("released lease after the renewal: %+v, %v", cur, err)
	}
	var released bool
	if err := s.Pool().QueryRow(ctx, `SELECT released FROM identity_leases WHERE identity = $1`, l.Identity).Scan(&released); err != nil || !released {
		t.Fatalf("released = %v, %v", released, err)
	}
}

// TestStartNodeLeaseForgetsOldUnusedNodeLeases: a node lease that ran out
// over a day ago goes once no identity lease points at it; one that an
// identity lease still names stays, so that lease stays void.
func TestStartNodeLeaseForgetsOldUnusedNodeLeases(t *testing.T) {
	s, ids, _ := nodeLeaseFixture(t, 1)
	ctx := context.Background()
	named, err := s.StartNodeLease(ctx, "node-a", "node-a.m1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.AcquireLeaseOn(ctx, named, ids[0], "node-a.m1/x")
	if err != nil {
		t.Fatal(err)
	}
	unused, err := s.StartNodeLease(ctx, "node-a", "node-a.m2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	recent, err := s.StartNodeLease(ctx, "node-a", "node-a.m3", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE node_leases SET expires_at = now() - interval '2 days' WHERE id = ANY($1)`,
		[]int64{named.ID, unused.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE node_leases SET expires_at = now() - interval '1 hour' WHERE id = $1`, recent.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartNodeLease(ctx, "node-b", "node-b.m4", time.Minute); err != nil {
		t.Fatal(err)
	}
	var left []int64
	rows, err := s.Pool().Query(ctx, `SELECT id FROM node_leases WHERE id = ANY($1) ORDER BY id`, []int64{named.ID, unused.ID, recent.ID})
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		left = append(left, id)
	}
	if len(left) != 2 || left[0] != named.ID || left[1] != recent.ID {
		t.Fatalf("node leases left %v, want %d (named by a lease) and %d (ran out an hour ago)", left, named.ID, recent.ID)
	}
	if err := s.CheckLease(ctx, l); !errors.Is(err, ErrFenced) {
		t.Fatalf("a lease under a node lease that ran out two days ago: %v, want ErrFenced", err)
	}
}

// TestNodeLeaseRenewsWhileThePoolIsFull: with every connection of the
// store's pool taken, as in a burst of activations, the node lease is
// still taken, renewed and ended at once, on a connection of its own.
func TestNodeLeaseRenewsWhileThePoolIsFull(t *testing.T) {
	url := pgtest.NewDatabase(t, testTemplate)
	s, err := Open(context.Background(), url, mustSealer(t, testKey(t, "k1")), MaxConns(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()
	nl, err := s.StartNodeLease(ctx, "node-a", "node-a.m1", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err := s.Pool().Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		// Each held connection is busy, too.
		if _, err := c.Exec(ctx, "SELECT pg_sleep(0.1)"); err != nil {
			t.Fatal(err)
		}
	}
	// The pool is full: anything else on it waits.
	busy, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := s.Ping(busy); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ping on a full pool: %v, want it to wait out its deadline", err)
	}
	for i := range 3 {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		renewed, err := s.RenewNodeLease(rctx, nl, 10*time.Second)
		cancel()
		if err != nil {
			t.Fatalf("renewal %d on a full pool: %v", i, err)
		}
		if renewed.ExpiresAt.Before(nl.ExpiresAt) {
			t.Fatalf("renewal %d moved the expiry back: %v before %v", i, renewed.ExpiresAt, nl.ExpiresAt)
		}
		nl = renewed
	}
	other, err := s.StartNodeLease(ctx, "node-a", "node-a.m2", 10*time.Second)
	if err != nil {
		t.Fatalf("start a node lease on a full pool: %v", err)
	}
	if err := s.EndNodeLease(ctx, other); err != nil {
		t.Fatalf("end a node lease on a full pool: %v", err)
	}
}

// startNodeLease is StartNodeLease for a minute, failing the test on error.
func startNodeLease(t *testing.T, s *Store, node, member string) NodeLease {
	t.Helper()
	nl, err := s.StartNodeLease(context.Background(), node, member, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return nl
}

// voidLeases leaves a lease on each of ids, held under a node lease that
// has ended: void, for any node to take.
func voidLeases(t *testing.T, s *Store, ids ...string) {
	t.Helper()
	ctx := context.Background()
	dead := startNodeLease(t, s, "node-a", "node-a.m1")
	for _, id := range ids {
		if _, err := s.AcquireLeaseOn(ctx, dead, id, "node-a.m1/x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EndNodeLease(ctx, dead); err != nil {
		t.Fatal(err)
	}
}

// lockLeaseRow holds the lease row of identity in a transaction that the
// test commits, or that is rolled back when the test ends.
func lockLeaseRow(t *testing.T, s *Store, identity string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, `SELECT 1 FROM identity_leases WHERE identity = $1 FOR UPDATE`, identity); err != nil {
		t.Fatal(err)
	}
	return tx
}

// TestTakeoverRefusesALeaseTakenUnderANodeLeaseItCannotSee: a takeover
// that waits for the row of a void lease while another node takes it, under
// a node lease started after the waiting statement began, is refused: it
// must not judge the new lease void because its snapshot predates the new
// node lease.
func TestTakeoverRefusesALeaseTakenUnderANodeLeaseItCannotSee(t *testing.T) {
	s, ids, db := nodeLeaseFixture(t, 1)
	ctx := context.Background()
	voidLeases(t, s, ids[0])
	waiter := startNodeLease(t, s, "node-b", "node-b.m2")
	// The other node's takeover holds the row while node-b's statement
	// starts and waits for it.
	tx := lockLeaseRow(t, s, ids[0])
	taken := make(chan error, 1)
	go func() {
		_, err := s.AcquireLeaseOn(ctx, waiter, ids[0], "node-b.m2/x")
		taken <- err
	}()
	waitBlocked(t, db, "INSERT INTO identity_leases")
	// node-c starts after the waiting statement's snapshot and takes the
	// lease, as its own AcquireLeaseOn would.
	holder := startNodeLease(t, s, "node-c", "node-c.m3")
	if _, err := tx.Exec(ctx, `UPDATE identity_leases SET owner = 'node-c.m3/x', epoch = epoch + 1,
		node_lease = $2, released = false, updated_at = now() WHERE identity = $1`, ids[0], holder.ID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-taken; !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("a takeover of node-c's live lease: %v, want ErrLeaseHeld", err)
	}
	var owner string
	if err := s.Pool().QueryRow(ctx, `SELECT owner FROM identity_leases WHERE identity = $1`, ids[0]).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != "node-c.m3/x" {
		t.Fatalf("the lease's owner is %q, want node-c's", owner)
	}
}
