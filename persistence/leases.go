package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrLeaseHeld means another owner holds an unexpired lease on the
// identity.
var ErrLeaseHeld = errors.New("lease held by another owner")

// ErrFenced means the caller's lease is no longer current: it expired, was
// released, or another owner took the identity over with a newer epoch. A
// fenced activation must stop writing and sending.
var ErrFenced = errors.New("lease lost")

// Lease is the fencing lease of one identity. Owner should name the
// activation, not only the node (for example member id plus an activation
// nonce), so that a restarted activation on the same node gets a new
// epoch. Epoch grows every time the lease changes hands.
type Lease struct {
	Identity  string
	Owner     string
	Epoch     int64
	ExpiresAt time.Time
	// TookOver is set by AcquireLease when the lease changed hands after
	// it expired unreleased: its previous holder crashed, hung or was cut
	// off rather than giving it up.
	TookOver bool
}

// AcquireLease takes the lease on identity for owner for ttl. It succeeds
// when the lease is free, expired, or already owner's (which renews it and
// keeps the epoch); a lease that changes hands gets the next epoch. An
// unexpired lease of another owner is ErrLeaseHeld.
func (s *Store) AcquireLease(ctx context.Context, identity, owner string, ttl time.Duration) (Lease, error) {
	l := Lease{Identity: identity, Owner: owner}
	var prevOwner *string
	var prevUnreleased *bool
	err := s.pool.QueryRow(ctx, `
		WITH prev AS (SELECT owner, expires_at > updated_at AS unreleased FROM identity_leases WHERE identity = $1)
		INSERT INTO identity_leases AS l (identity, owner, epoch, expires_at)
		VALUES ($1, $2, 1, now() + make_interval(secs => $3))
		ON CONFLICT (identity) DO UPDATE SET
			owner = EXCLUDED.owner,
			epoch = CASE WHEN l.owner = EXCLUDED.owner AND l.expires_at > now() THEN l.epoch ELSE l.epoch + 1 END,
			expires_at = EXCLUDED.expires_at,
			updated_at = now()
		WHERE l.owner = EXCLUDED.owner OR l.expires_at <= now()
		RETURNING epoch, expires_at, (SELECT owner FROM prev), (SELECT unreleased FROM prev)`,
		identity, owner, ttl.Seconds()).Scan(&l.Epoch, &l.ExpiresAt, &prevOwner, &prevUnreleased)
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, fmt.Errorf("acquire lease on %s: %w", identity, ErrLeaseHeld)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("acquire lease on %s: %w", identity, mapError(err))
	}
	l.TookOver = prevOwner != nil && *prevOwner != owner && prevUnreleased != nil && *prevUnreleased
	return l, nil
}

// RenewLease extends a lease the caller still holds, keeping its epoch. A
// lease that expired or changed hands is ErrFenced.
func (s *Store) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	err := s.pool.QueryRow(ctx, `
		UPDATE identity_leases SET expires_at = now() + make_interval(secs => $4), updated_at = now()
		WHERE identity = $1 AND owner = $2 AND epoch = $3 AND expires_at > now()
		RETURNING expires_at`, l.Identity, l.Owner, l.Epoch, ttl.Seconds()).Scan(&l.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, fmt.Errorf("renew lease on %s: %w", l.Identity, ErrFenced)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("renew lease on %s: %w", l.Identity, mapError(err))
	}
	return l, nil
}

// CheckLease returns ErrFenced unless l is still the current, unexpired
// lease of its identity.
func (s *Store) CheckLease(ctx context.Context, l Lease) error {
	// One statement, no transaction: the answer is as of now either way.
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT true FROM identity_leases
		WHERE identity = $1 AND owner = $2 AND epoch = $3 AND expires_at > now()`,
		l.Identity, l.Owner, l.Epoch).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return fencedError(l)
	}
	if err != nil {
		return fmt.Errorf("check lease on %s: %w", l.Identity, mapError(err))
	}
	return nil
}

// ReleaseLease gives a lease up, so another owner can take the identity at
// once. The row stays, expired, so the next owner's epoch is higher than
// every epoch before it: an epoch is never reused for an identity.
// Releasing a lease that is no longer the caller's does nothing.
func (s *Store) ReleaseLease(ctx context.Context, l Lease) error {
	if _, err := s.pool.Exec(ctx, `UPDATE identity_leases SET expires_at = now(), updated_at = now()
		WHERE identity = $1 AND owner = $2 AND epoch = $3 AND expires_at > now()`,
		l.Identity, l.Owner, l.Epoch); err != nil {
		return fmt.Errorf("release lease on %s: %w", l.Identity, mapError(err))
	}
	return nil
}

// LeaseOf returns the current lease row of identity, expired or not.
func (s *Store) LeaseOf(ctx context.Context, identity string) (Lease, error) {
	l := Lease{Identity: identity}
	err := s.pool.QueryRow(ctx, `SELECT owner, epoch, expires_at FROM identity_leases WHERE identity = $1`, identity).
		Scan(&l.Owner, &l.Epoch, &l.ExpiresAt)
	if err != nil {
		return Lease{}, fmt.Errorf("read lease on %s: %w", identity, mapError(err))
	}
	return l, nil
}

// checkLease locks the lease row in share mode for the rest of tx, so a
// take-over waits until tx ends, and fails with ErrFenced if l is not the
// current lease.
func checkLease(ctx context.Context, tx pgx.Tx, l Lease) error {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT true FROM identity_leases
		WHERE identity = $1 AND owner = $2 AND epoch = $3 AND expires_at > now() FOR SHARE`,
		l.Identity, l.Owner, l.Epoch).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("check lease on %s epoch %d: %w", l.Identity, l.Epoch, ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("check lease on %s: %w", l.Identity, mapError(err))
	}
	return nil
}

// Placement is where a bridge's identity is active: the live lease of its
// identity.
type Placement struct {
	BridgeID string
	// Address is the identity's XMTP address.
	Address string
	Lease   Lease
}

// LivePlacements returns every bridge whose identity holds a live lease,
// ordered by bridge id. A bridge that is not active anywhere is absent.
func (s *Store) LivePlacements(ctx context.Context) ([]Placement, error) {
	rows, err := s.pool.Query(ctx, `SELECT b.id::text, b.address, l.owner, l.epoch, l.expires_at
		FROM identity_leases l JOIN bridges b ON b.id::text = l.identity
		WHERE l.expires_at > now() ORDER BY b.id`)
	if err != nil {
		return nil, fmt.Errorf("list placements: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Placement, error) {
		var p Placement
		err := r.Scan(&p.BridgeID, &p.Address, &p.Lease.Owner, &p.Lease.Epoch, &p.Lease.ExpiresAt)
		p.Lease.Identity = p.BridgeID
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list placements: %w", mapError(err))
	}
	return out, nil
}
