package persistence

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// TestLeasesFromBeforeNodeLeasesKeepWorking migrates a database with
// identity leases of the previous version (one held, one released) to
// node leases: the held one stays valid on its own expiry, can be renewed
// by its holder and is refused to a node lease's taker until it runs out;
// the released one is free. A node of the previous version that takes
// over a released lease during a rolling upgrade holds it on its own
// expiry, and no node lease can take it from under it.
func TestLeasesFromBeforeNodeLeasesKeepWorking(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, pgtest.Template{Name: "empty", Migrate: func(context.Context, string) error { return nil }})
	before := fstest.MapFS{}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() >= "0011" {
			continue
		}
		data, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
		if err != nil {
			t.Fatal(err)
		}
		before["migrations/"+e.Name()] = &fstest.MapFile{Data: data}
	}
	previous := schema
	previous.FS = before
	if err := previous.Apply(ctx, url); err != nil {
		t.Fatalf("migrate to 0010: %v", err)
	}
	s := openStore(t, url, mustSealer(t, testKey(t, "k1")))
	// The previous version's rows: held for a minute, and released
	// (expiry set to the release time).
	if _, err := s.Pool().Exec(ctx, `INSERT INTO identity_leases (identity, owner, epoch, expires_at, updated_at) VALUES
		('held', 'old.m1/a', 3, now() + interval '2 seconds', now()),
		('released', 'old.m1/b', 5, now() - interval '1 minute', now() - interval '1 minute')`); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, url); err != nil {
		t.Fatalf("migrate to node leases: %v", err)
	}
	held := Lease{Identity: "held", Owner: "old.m1/a", Epoch: 3}
	if err := s.CheckLease(ctx, held); err != nil {
		t.Fatalf("a held lease after the migration: %v", err)
	}
	nl, err := s.StartNodeLease(ctx, "new", "new.m2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLeaseOn(ctx, nl, "held", "new.m2/x"); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("taking a held lease of the previous version: %v, want ErrLeaseHeld", err)
	}
	renewed, err := s.RenewLease(ctx, held, 2*time.Second)
	if err != nil {
		t.Fatalf("renewing a lease of the previous version: %v", err)
	}
	if l, err := s.AcquireLeaseOn(ctx, nl, "released", "new.m2/y"); err != nil || l.Epoch != 6 || l.TookOver {
		t.Fatalf("taking a released lease of the previous version: %+v, %v", l, err)
	}
	time.Sleep(time.Until(renewed.ExpiresAt) + 100*time.Millisecond) // its holder stopped renewing
	if l, err := s.AcquireLeaseOn(ctx, nl, "held", "new.m2/x"); err != nil || l.Epoch != 4 || !l.TookOver {
		t.Fatalf("taking over an expired lease of the previous version: %+v, %v", l, err)
	}

	// The new node releases "released"; a node of the previous version
	// takes it with its own statement.
	mine, err := s.LeaseOf(ctx, "released")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLease(ctx, mine); err != nil {
		t.Fatal(err)
	}
	var epoch int64
	if err := s.Pool().QueryRow(ctx, `
		INSERT INTO identity_leases AS l (identity, owner, epoch, expires_at)
		VALUES ($1, $2, 1, now() + make_interval(secs => $3))
		ON CONFLICT (identity) DO UPDATE SET
			owner = EXCLUDED.owner,
			epoch = CASE WHEN l.owner = EXCLUDED.owner AND l.expires_at > now() THEN l.epoch ELSE l.epoch + 1 END,
			expires_at = EXCLUDED.expires_at,
			updated_at = now()
		WHERE l.owner = EXCLUDED.owner OR l.expires_at <= now()
		RETURNING epoch`, "released", "old.m1/c", 60.0).Scan(&epoch); err != nil {
		t.Fatalf("the previous version's acquire: %v", err)
	}
	old := Lease{Identity: "released", Owner: "old.m1/c", Epoch: epoch}
	if err := s.CheckLease(ctx, old); err != nil {
		t.Fatalf("the previous version's lease: %v", err)
	}
	other, err := s.StartNodeLease(ctx, "new-2", "new-2.m3", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLeaseOn(ctx, other, "released", "new-2.m3/z"); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("taking a lease a node of the previous version holds: %v, want ErrLeaseHeld", err)
	}
}
