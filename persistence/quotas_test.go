package persistence

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// TestBridgeQuotaHoldsUnderConcurrentCreation creates many bridges of one
// account at once through two stores (two pools, as two nodes have) on the
// same database: exactly the quota succeeds, because the count is taken
// under the account's row lock in Postgres.
func TestBridgeQuotaHoldsUnderConcurrentCreation(t *testing.T) {
	t.Parallel()
	s1, s2 := twoStores(t)
	a, _ := newAccount(t, s1, "alice")
	const quota, tries = 5, 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, refused := 0, 0
	for i := 0; i < tries; i++ {
		wg.Add(1)
		go func(s *Store) {
			defer wg.Done()
			_, _, err := s.CreateBridge(context.Background(), NewBridge{
				AccountID: a.ID, Address: randomAddress(t), KeyBundle: []byte("bundle"), Forward: testForward(), MaxBridges: quota,
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, ErrQuotaExceeded):
				refused++
			default:
				t.Errorf("create bridge: %v", err)
			}
		}([]*Store{s1, s2}[i%2])
	}
	wg.Wait()
	if created != quota || refused != tries-quota {
		t.Fatalf("%d created and %d refused, want %d and %d", created, refused, quota, tries-quota)
	}
	// Another account has its own quota; deleting a bridge frees a place.
	b, _ := newAccount(t, s1, "bob")
	if _, _, err := s2.CreateBridge(context.Background(), NewBridge{AccountID: b.ID, Address: randomAddress(t), KeyBundle: []byte("k"), Forward: testForward(), MaxBridges: quota}); err != nil {
		t.Fatalf("other account: %v", err)
	}
	list, _, err := s1.ListBridges(context.Background(), a.ID, Page{})
	if err != nil || len(list) != quota {
		t.Fatalf("list: %d bridges, %v", len(list), err)
	}
	if err := s1.DeleteBridge(context.Background(), a.ID, list[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s2.CreateBridge(context.Background(), NewBridge{AccountID: a.ID, Address: randomAddress(t), KeyBundle: []byte("k"), Forward: testForward(), MaxBridges: quota}); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
}

// TestSendBucketIsSharedByTheCluster drains one account's bucket through
// two stores on the same database: together they get exactly the burst,
// and a refill second later one more send each second.
func TestSendBucketIsSharedByTheCluster(t *testing.T) {
	t.Parallel()
	s1, s2 := twoStores(t)
	a, _ := newAccount(t, s1, "alice")
	other, _ := newAccount(t, s1, "bob")
	rate := SendRate{PerSecond: 1, Burst: 6}
	ctx := context.Background()
	start := time.Now()
	taken := 0
	for i := 0; i < 20; i++ {
		ok, err := []*Store{s1, s2}[i%2].TakeSend(ctx, a.ID, rate)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			taken++
		}
	}
	// At one per second, the refill while the loop ran is at most its
	// duration in seconds.
	refill := int(time.Since(start).Seconds())
	if taken < rate.Burst || taken > rate.Burst+refill {
		t.Fatalf("%d sends taken, want %d (+%d refilled)", taken, rate.Burst, refill)
	}
	if ok, err := s2.TakeSend(ctx, other.ID, rate); err != nil || !ok {
		t.Fatalf("another account's first send: %v %v", ok, err)
	}
	// The bucket refills: a send succeeds again within a few seconds.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := s1.TakeSend(ctx, a.ID, rate)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bucket did not refill")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s1.TakeSend(ctx, a.ID, SendRate{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero rate: %v", err)
	}
}

// TestTokenFailuresCountPerClient counts failures of two clients across
// two stores.
func TestTokenFailuresCountPerClient(t *testing.T) {
	t.Parallel()
	s1, s2 := twoStores(t)
	ctx := context.Background()
	// A window of an hour, so the test does not straddle two windows
	// except at the top of an hour.
	w := time.Hour
	for i := 1; i <= 3; i++ {
		n, err := []*Store{s1, s2}[i%2].RecordTokenFailure(ctx, "192.0.2.1", w)
		if err != nil || n != i {
			t.Fatalf("failure %d counted as %d, %v", i, n, err)
		}
	}
	if n, err := s2.TokenFailures(ctx, "192.0.2.1", w); err != nil || n != 3 {
		t.Fatalf("failures of the client: %d %v, want 3", n, err)
	}
	if n, err := s1.TokenFailures(ctx, "192.0.2.2", w); err != nil || n != 0 {
		t.Fatalf("failures of another client: %d %v, want 0", n, err)
	}
}

// twoStores opens two stores, as two nodes have, on one database.
func twoStores(t *testing.T) (*Store, *Store) {
	t.Helper()
	url := pgtest.NewDatabase(t, testTemplate)
	sealer := mustSealer(t, testKey(t, "k1"))
	return openStore(t, url, sealer), openStore(t, url, sealer)
}

// TestBridgeForSendTakesFromTheAccountBucket reads the bridge and takes a
// send in one statement: the account's bucket empties, and another
// account's bridge is not found.
func TestBridgeForSendTakesFromTheAccountBucket(t *testing.T) {
	t.Parallel()
	s1, s2 := twoStores(t)
	ctx := context.Background()
	a, _ := newAccount(t, s1, "alice")
	bob, _ := newAccount(t, s1, "bob")
	b, _ := newBridge(t, s1, a.ID, []byte("bundle"))
	rate := SendRate{PerSecond: 1, Burst: 2}
	start := time.Now()
	got, ok, err := s1.BridgeForSend(ctx, a.ID, b.ID, rate)
	if err != nil || !ok || got.ID != b.ID || got.Forward.URL != testForward().URL {
		t.Fatalf("first send: %+v %v %v", got, ok, err)
	}
	allowed := 1
	for i := 0; i < 6; i++ {
		_, ok, err := []*Store{s1, s2}[i%2].BridgeForSend(ctx, a.ID, b.ID, rate)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			allowed++
		}
	}
	if refill := int(time.Since(start).Seconds()); allowed < rate.Burst || allowed > rate.Burst+refill {
		t.Fatalf("%d sends allowed, want the burst of %d (+%d refilled)", allowed, rate.Burst, refill)
	}
	if _, _, err := s1.BridgeForSend(ctx, bob.ID, b.ID, rate); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another account's bridge: %v, want ErrNotFound", err)
	}
}

// TestQuotaRowsStayBounded: failure windows older than ten windows are
// deleted as new failures come, and a deleted bridge takes its send bucket
// with it, so neither table grows with time.
func TestQuotaRowsStayBounded(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	ctx := context.Background()
	old := make([]byte, 32)
	if _, err := s.Pool().Exec(ctx, `INSERT INTO auth_failure_windows (client, window_start, count) VALUES ($1, now() - interval '1 hour', 7)`, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordTokenFailure(ctx, "203.0.113.9", time.Minute); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM auth_failure_windows`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d failure windows after a new failure, want only the current one (%v)", n, err)
	}

	a, _ := newAccount(t, s, "relaycc-like")
	b, _ := newBridge(t, s, a.ID, []byte("bundle"))
	if ok, err := s.TakeSend(ctx, b.ID, SendRate{PerSecond: 1, Burst: 1}); err != nil || !ok {
		t.Fatalf("take send: %v %v", ok, err)
	}
	if err := s.DeleteBridge(ctx, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM send_buckets`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d send buckets after the bridge was deleted, want 0 (%v)", n, err)
	}
}
