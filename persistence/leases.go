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
// epoch. Epoch grows every time the lease changes hands: it is the fencing
// token every fenced write carries.
//
// A lease taken under a node lease (AcquireLeaseOn) lives as long as that
// node lease and is never rewritten while it does; a lease taken on its
// own (AcquireLease) has its own expiry, renewed by its holder.
type Lease struct {
	Identity string
	Owner    string
	Epoch    int64
	// Node is the id (the incarnation) of the node lease the lease lives
	// under; 0 for a lease on its own.
	Node int64
	// ExpiresAt is when the lease runs out unless renewed: its own expiry,
	// or its node lease's when it has one, as of when it was read.
	ExpiresAt time.Time
	// TookOver is set by AcquireLease when the lease changed hands after
	// it expired unreleased: its previous holder crashed, hung or was cut
	// off rather than giving it up.
	TookOver bool
}

// leaseLive is the SQL condition under which the identity_leases row l,
// whose owner and epoch match, is the identity's valid lease: it is not
// released, its own expiry has not passed (the expiry of a lease under a
// node lease is 'infinity') and its node lease, if it has one, has not run
// out. A node lease is a primary-key read; every fenced statement checks
// its lease with this, in the same statement.
const leaseLive = `NOT l.released AND l.expires_at > now() AND (l.node_lease IS NULL OR
	EXISTS (SELECT 1 FROM node_leases n WHERE n.id = l.node_lease AND n.expires_at > now()))`

// leaseDead is the SQL condition under which the identity_leases row l is
// known to be void: released, past its own expiry, or under a node lease
// that ran out. It is not NOT (leaseLive): a takeover's ON CONFLICT
// re-reads a row it waited for at its newest version, but its subqueries
// see the statement's snapshot, which may predate the node lease of the
// row's new holder. leaseLive finds no such node lease and calls the
// lease void; leaseDead finds no node lease that ran out and refuses, as
// a node lease that ran out can never be renewed.
const leaseDead = `(l.released OR l.expires_at <= now() OR
	EXISTS (SELECT 1 FROM node_leases n WHERE n.id = l.node_lease AND n.expires_at <= now()))`

// leaseTake is the ON CONFLICT clause of an INSERT INTO identity_leases
// AS l that takes a lease: the row changes hands when it is the caller's
// already, held under the caller's node lease, or known void (leaseDead),
// and its epoch moves on unless the caller keeps a live lease of its own.
// AcquireLease, AcquireLeaseOn and AcquireLeasesOn share it, so that a
// batch takes exactly what calls one at a time would.
const leaseTake = `ON CONFLICT (identity) DO UPDATE SET
	owner = EXCLUDED.owner,
	epoch = CASE WHEN l.owner = EXCLUDED.owner AND ` + leaseLive + ` THEN l.epoch ELSE l.epoch + 1 END,
	expires_at = EXCLUDED.expires_at,
	node_lease = EXCLUDED.node_lease,
	released = false,
	updated_at = now()
	WHERE l.owner = EXCLUDED.owner OR l.node_lease = EXCLUDED.node_lease OR ` + leaseDead

// leaseExpiry is the SQL expression of the identity_leases row l's expiry,
// given n, its node lease (LEFT JOINed).
const leaseExpiry = `CASE WHEN l.node_lease IS NULL THEN l.expires_at ELSE least(l.expires_at, n.expires_at) END`

// AcquireLease takes the lease on identity for owner for ttl, on its own:
// its holder renews it (RenewLease, RenewLeases) or it runs out. It
// succeeds when the lease is free, expired, released, or already owner's
// (which renews it and keeps the epoch); a lease that changes hands gets
// the next epoch. A valid lease of another owner is ErrLeaseHeld.
func (s *Store) AcquireLease(ctx context.Context, identity, owner string, ttl time.Duration) (Lease, error) {
	return s.acquireLease(ctx, identity, owner, ttl, nil)
}

// AcquireLeaseOn takes the lease on identity for owner under the node
// lease nl: the identity lease is valid as long as nl is, with no renewal
// of its own, until it is released. It succeeds when the lease is free,
// released, already owner's, held under a node lease that ran out (its
// node crashed or was cut off), or held under nl itself (an earlier
// activation on this node incarnation that never released it); a lease
// that changes hands gets the next epoch. A valid lease of another owner
// under another node lease is ErrLeaseHeld; if nl itself ran out, the
// result is ErrFenced.
func (s *Store) AcquireLeaseOn(ctx context.Context, nl NodeLease, identity, owner string) (Lease, error) {
	return s.acquireLease(ctx, identity, owner, 0, &nl.ID)
}

// LeaseRequest asks AcquireLeasesOn for the lease on Identity for Owner.
type LeaseRequest struct {
	Identity string
	Owner    string
}

// LeaseResult is the answer to one LeaseRequest: the lease, or the error
// AcquireLeaseOn would have returned for it.
type LeaseResult struct {
	Lease Lease
	Err   error
}

// AcquireLeasesOn is AcquireLeaseOn for many identities under the node
// lease nl, in one statement and one commit: a node that activates
// thousands of identities at its start makes one round trip for many
// instead of one each. Each request is answered as AcquireLeaseOn answers
// it alone (the same epochs, the same refusals, the same takeovers
// counted on the node lease they were taken from); the answers are in the
// order of reqs. An identity named twice is asked for again in a later
// statement, after the first, as two calls one after the other would.
func (s *Store) AcquireLeasesOn(ctx context.Context, nl NodeLease, reqs []LeaseRequest) []LeaseResult {
	out := make([]LeaseResult, len(reqs))
	todo := make([]int, len(reqs))
	for i := range reqs {
		todo[i] = i
	}
	for len(todo) > 0 {
		seen := make(map[string]bool, len(todo))
		var now, later []int
		for _, i := range todo {
			if seen[reqs[i].Identity] {
				later = append(later, i)
				continue
			}
			seen[reqs[i].Identity] = true
			now = append(now, i)
		}
		s.acquireLeasesOn(ctx, nl, reqs, now, out)
		todo = later
	}
	return out
}

// acquireLeasesOn takes the leases of reqs[idx] (distinct identities) in
// one statement, into out. The rows are inserted in identity order, so two
// nodes' statements that name the same identities lock them in the same
// order.
func (s *Store) acquireLeasesOn(ctx context.Context, nl NodeLease, reqs []LeaseRequest, idx []int, out []LeaseResult) {
	identities, owners := make([]string, len(idx)), make([]string, len(idx))
	for k, i := range idx {
		identities[k], owners[k] = reqs[i].Identity, reqs[i].Owner
	}
	// req is the requests, numbered; prev each one's row before, node the
	// node lease if it is live; taken the rows as the statement leaves
	// them, for the leases it took. A takeover of a lease held unreleased
	// under a node lease counts on that node lease (lost), so its renewer
	// checks its identities: one update per node lease, by the number of
	// its leases taken.
	//
	// ON CONFLICT locks every row it reaches until the commit, even one
	// its WHERE refuses, and a row in share mode (a live holder's send)
	// makes it wait: an identity the snapshot shows live under another
	// owner and another node lease is left out of the INSERT, refused
	// without being locked, so a live holder's transaction holds up
	// neither the batch nor is held up by it. That only ever refuses: a
	// lease live as of the statement's start is held, as AcquireLeaseOn
	// started then would answer; the ON CONFLICT WHERE alone decides what
	// is taken.
	rows, err := s.pool.Query(ctx, `
		WITH req AS (
			SELECT r.identity, r.owner, r.ord FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r(identity, owner, ord)),
		prev AS (
			SELECT l.identity, l.owner, l.node_lease, NOT l.released AS unreleased
			FROM identity_leases l JOIN req ON l.identity = req.identity),
		node AS (SELECT n.expires_at FROM node_leases n WHERE n.id = $3 AND n.expires_at > now()),
		taken AS (
			INSERT INTO identity_leases AS l (identity, owner, epoch, expires_at, node_lease)
			SELECT req.identity, req.owner, 1, 'infinity', $3 FROM req
			WHERE EXISTS (SELECT 1 FROM node) AND NOT EXISTS (
				SELECT 1 FROM identity_leases l WHERE l.identity = req.identity AND l.owner <> req.owner
					AND l.node_lease IS DISTINCT FROM $3 AND `+leaseLive+`)
			ORDER BY req.identity
			`+leaseTake+`
			RETURNING l.identity, l.epoch),
		lost AS (
			UPDATE node_leases n SET lost = n.lost + c.taken
			FROM (SELECT p.node_lease, count(*) AS taken FROM prev p JOIN req ON req.identity = p.identity
				WHERE p.unreleased AND p.owner <> req.owner AND EXISTS (SELECT 1 FROM taken t WHERE t.identity = p.identity)
				GROUP BY p.node_lease) c
			WHERE n.id = c.node_lease)
		SELECT req.ord, t.epoch, (SELECT expires_at FROM node), EXISTS (SELECT 1 FROM node), p.owner, p.unreleased
		FROM req LEFT JOIN taken t ON t.identity = req.identity LEFT JOIN prev p ON p.identity = req.identity`,
		identities, owners, nl.ID)
	// If the statement fails, each request is asked for again on its own,
	// so the error of one (a value its columns refuse) fails only that
	// one, and a deadlock between two nodes' batches (they may update
	// node_leases rows for lost in different orders) or a timeout is
	// answered as one-at-a-time calls would answer it. The failed statement
	// took nothing; a statement whose answer could not be read took its
	// leases for the same owners, which the calls again keep at the same
	// epochs. The calls get a budget of their own: after a timeout, the
	// caller's context has run out, and a statement that committed before
	// it would otherwise leave leases taken that no caller knows it holds.
	fail := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, i := range idx {
			l, err := s.acquireLease(rctx, reqs[i].Identity, reqs[i].Owner, 0, &nl.ID)
			out[i] = LeaseResult{Lease: l, Err: err}
		}
	}
	if err != nil {
		fail()
		return
	}
	got := make([]LeaseResult, len(idx))
	answered := make([]bool, len(idx))
	for rows.Next() {
		var (
			ord            int64
			epoch          *int64
			expires        *time.Time
			nodeLive       bool
			prevOwner      *string
			prevUnreleased *bool
		)
		if err := rows.Scan(&ord, &epoch, &expires, &nodeLive, &prevOwner, &prevUnreleased); err != nil {
			rows.Close()
			fail()
			return
		}
		if ord < 1 || int(ord) > len(idx) {
			continue
		}
		k := ord - 1
		r := reqs[idx[k]]
		answered[k] = true
		switch {
		case !nodeLive:
			got[k].Err = fmt.Errorf("acquire lease on %s: node lease %d ran out: %w", r.Identity, nl.ID, ErrFenced)
		case epoch == nil:
			got[k].Err = fmt.Errorf("acquire lease on %s: %w", r.Identity, ErrLeaseHeld)
		default:
			l := Lease{Identity: r.Identity, Owner: r.Owner, Epoch: *epoch, Node: nl.ID}
			if expires != nil {
				l.ExpiresAt = *expires
			}
			l.TookOver = prevOwner != nil && *prevOwner != r.Owner && prevUnreleased != nil && *prevUnreleased
			got[k].Lease = l
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		fail()
		return
	}
	for k, i := range idx {
		if !answered[k] {
			// The statement answers every request; a caller must not
			// take a zero lease for one it did not.
			got[k].Err = fmt.Errorf("acquire lease on %s: no answer", reqs[i].Identity)
		}
		out[i] = got[k]
	}
}

func (s *Store) acquireLease(ctx context.Context, identity, owner string, ttl time.Duration, node *int64) (Lease, error) {
	l := Lease{Identity: identity, Owner: owner}
	if node != nil {
		l.Node = *node
	}
	var epoch *int64
	var expires *time.Time
	var nodeLive bool
	var prevOwner *string
	var prevUnreleased *bool
	// prev is the row before, node the caller's node lease if it is live;
	// taken the row as the statement leaves it, if it took the lease. A
	// takeover of a lease held unreleased under a node lease counts on
	// that node lease (lost), so its renewer checks its identities.
	err := s.pool.QueryRow(ctx, `
		WITH prev AS (
			SELECT l.owner, l.node_lease, NOT l.released AS unreleased FROM identity_leases l WHERE l.identity = $1),
		node AS (SELECT n.expires_at FROM node_leases n WHERE n.id = $4 AND n.expires_at > now()),
		taken AS (
			INSERT INTO identity_leases AS l (identity, owner, epoch, expires_at, node_lease)
			SELECT $1, $2, 1, CASE WHEN $4::bigint IS NULL THEN now() + make_interval(secs => $3) ELSE 'infinity' END, $4
			WHERE $4::bigint IS NULL OR EXISTS (SELECT 1 FROM node)
			`+leaseTake+`
			RETURNING l.epoch, l.expires_at),
		lost AS (
			UPDATE node_leases n SET lost = n.lost + 1 FROM prev
			WHERE n.id = prev.node_lease AND prev.unreleased AND prev.owner <> $2 AND EXISTS (SELECT 1 FROM taken))
		SELECT (SELECT epoch FROM taken),
			CASE WHEN $4::bigint IS NULL THEN (SELECT expires_at FROM taken) ELSE (SELECT expires_at FROM node) END,
			$4::bigint IS NULL OR EXISTS (SELECT 1 FROM node),
			(SELECT owner FROM prev), (SELECT unreleased FROM prev)`,
		identity, owner, ttl.Seconds(), node).Scan(&epoch, &expires, &nodeLive, &prevOwner, &prevUnreleased)
	if err != nil {
		return Lease{}, fmt.Errorf("acquire lease on %s: %w", identity, mapError(err))
	}
	if !nodeLive {
		return Lease{}, fmt.Errorf("acquire lease on %s: node lease %d ran out: %w", identity, l.Node, ErrFenced)
	}
	if epoch == nil {
		return Lease{}, fmt.Errorf("acquire lease on %s: %w", identity, ErrLeaseHeld)
	}
	l.Epoch = *epoch
	if expires != nil {
		l.ExpiresAt = *expires
	}
	l.TookOver = prevOwner != nil && *prevOwner != owner && prevUnreleased != nil && *prevUnreleased
	return l, nil
}

// RenewLease extends a lease taken on its own that the caller still
// holds, keeping its epoch; a lease under a node lease lives as long as
// its node lease, and RenewLease only checks it and returns it with its
// node lease's expiry. A lease that expired, was released or changed hands
// is ErrFenced.
func (s *Store) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	err := s.pool.QueryRow(ctx, `
		WITH renewed AS (
			UPDATE identity_leases l SET expires_at = now() + make_interval(secs => $4), updated_at = now()
			WHERE identity = $1 AND owner = $2 AND epoch = $3 AND l.node_lease IS NULL AND `+leaseLive+`
			RETURNING l.expires_at)
		SELECT expires_at FROM renewed
		UNION ALL
		SELECT n.expires_at FROM identity_leases l JOIN node_leases n ON n.id = l.node_lease
		WHERE l.identity = $1 AND l.owner = $2 AND l.epoch = $3 AND `+leaseLive,
		l.Identity, l.Owner, l.Epoch, ttl.Seconds()).Scan(&l.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, fmt.Errorf("renew lease on %s: %w", l.Identity, ErrFenced)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("renew lease on %s: %w", l.Identity, mapError(err))
	}
	return l, nil
}

// CheckLease returns ErrFenced unless l is still the current, valid lease
// of its identity.
func (s *Store) CheckLease(ctx context.Context, l Lease) error {
	// One statement, no transaction: the answer is as of now either way.
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT true FROM identity_leases l
		WHERE l.identity = $1 AND l.owner = $2 AND l.epoch = $3 AND `+leaseLive,
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
// once. The row stays, released, so the next owner's epoch is higher than
// every epoch before it: an epoch is never reused for an identity. No
// renewal extends a released lease, even one already in flight. Releasing
// a lease that is no longer the caller's does nothing.
func (s *Store) ReleaseLease(ctx context.Context, l Lease) error {
	if _, err := s.pool.Exec(ctx, `UPDATE identity_leases
		SET released = true, expires_at = least(expires_at, now()), updated_at = now()
		WHERE identity = $1 AND owner = $2 AND epoch = $3 AND NOT released`,
		l.Identity, l.Owner, l.Epoch); err != nil {
		return fmt.Errorf("release lease on %s: %w", l.Identity, mapError(err))
	}
	return nil
}

// LeaseOf returns the current lease row of identity, valid or not; its
// ExpiresAt is in the past when it is not valid.
func (s *Store) LeaseOf(ctx context.Context, identity string) (Lease, error) {
	l := Lease{Identity: identity}
	var node *int64
	err := s.pool.QueryRow(ctx, `SELECT l.owner, l.epoch, l.node_lease,
			CASE WHEN l.released THEN least(l.expires_at, l.updated_at) ELSE `+leaseExpiry+` END
		FROM identity_leases l LEFT JOIN node_leases n ON n.id = l.node_lease WHERE l.identity = $1`, identity).
		Scan(&l.Owner, &l.Epoch, &node, &l.ExpiresAt)
	if err != nil {
		return Lease{}, fmt.Errorf("read lease on %s: %w", identity, mapError(err))
	}
	if node != nil {
		l.Node = *node
	}
	return l, nil
}

// checkLease locks the lease row in share mode for the rest of tx, so a
// take-over waits until tx ends, and fails with ErrFenced if l is not the
// current lease.
func checkLease(ctx context.Context, tx pgx.Tx, l Lease) error {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT true FROM identity_leases l
		WHERE l.identity = $1 AND l.owner = $2 AND l.epoch = $3 AND `+leaseLive+` FOR SHARE OF l`,
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
	rows, err := s.pool.Query(ctx, `SELECT b.id::text, b.address, l.owner, l.epoch, coalesce(l.node_lease, 0), `+leaseExpiry+`
		FROM identity_leases l JOIN bridges b ON b.id::text = l.identity LEFT JOIN node_leases n ON n.id = l.node_lease
		WHERE `+leaseLive+` ORDER BY b.id`)
	if err != nil {
		return nil, fmt.Errorf("list placements: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Placement, error) {
		var p Placement
		err := r.Scan(&p.BridgeID, &p.Address, &p.Lease.Owner, &p.Lease.Epoch, &p.Lease.Node, &p.Lease.ExpiresAt)
		p.Lease.Identity = p.BridgeID
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list placements: %w", mapError(err))
	}
	return out, nil
}
