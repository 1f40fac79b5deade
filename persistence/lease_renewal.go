package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Node leases.
//
// A node process holds one node lease, and every identity lease it takes
// lives under it (AcquireLeaseOn). Keeping tens of thousands of identities
// fenced then costs one renewal statement of one row per renewal period,
// not one row update per identity: the identity leases are written when
// they are taken and released, never when they are renewed.
//
// The node lease's statements run on a connection of their own
// (Store.leasePool), so no burst of other work can hold up a renewal.
//
// A node lease is never renewed once it ran out. A node that could not
// renew it in time has lost every identity it hosted for good, and must
// take a new node lease (a new incarnation) before it hosts any again; a
// node restarted after a kill -9 takes a new one too, so the identity
// leases of its previous incarnation are void once that one runs out.

// NodeLease is the lease of one node process.
type NodeLease struct {
	// ID is the node lease's incarnation: every start of a node process
	// takes a new one, and they only grow.
	ID int64
	// Node is the node's id (BRIDGE_NODE_ID); Member the process's member
	// id in the cluster.
	Node      string
	Member    string
	ExpiresAt time.Time
	// Lost counts the identity leases other owners took over from this
	// node lease while they were unreleased. A renewer that sees it move
	// checks its identities' leases (CheckLeases).
	Lost int64
}

// StartNodeLease takes a new node lease, a new incarnation, for the node
// process member of node, for ttl. It also forgets the node leases that
// ran out over a day ago and no identity lease points at any more, so the
// table holds about one row per node process of the last day.
func (s *Store) StartNodeLease(ctx context.Context, node, member string, ttl time.Duration) (NodeLease, error) {
	nl := NodeLease{Node: node, Member: member}
	err := s.leasePool.QueryRow(ctx, `
		WITH forgotten AS (
			DELETE FROM node_leases n WHERE n.expires_at < now() - interval '1 day'
				AND NOT EXISTS (SELECT 1 FROM identity_leases l WHERE l.node_lease = n.id))
		INSERT INTO node_leases (node, member, expires_at)
		VALUES ($1, $2, now() + make_interval(secs => $3)) RETURNING id, expires_at, lost`,
		node, member, ttl.Seconds()).Scan(&nl.ID, &nl.ExpiresAt, &nl.Lost)
	if err != nil {
		return NodeLease{}, fmt.Errorf("start node lease of %s: %w", node, mapError(err))
	}
	return nl, nil
}

// RenewNodeLease extends nl by ttl from now, with one statement that
// writes one row, and returns it with its new expiry and its Lost count. A
// node lease that already ran out or was ended is ErrFenced: every
// identity lease under it is void, and stays so.
func (s *Store) RenewNodeLease(ctx context.Context, nl NodeLease, ttl time.Duration) (NodeLease, error) {
	err := s.leasePool.QueryRow(ctx, `UPDATE node_leases SET expires_at = now() + make_interval(secs => $2)
		WHERE id = $1 AND expires_at > now() RETURNING expires_at, lost`, nl.ID, ttl.Seconds()).Scan(&nl.ExpiresAt, &nl.Lost)
	if errors.Is(err, pgx.ErrNoRows) {
		return NodeLease{}, fmt.Errorf("renew node lease %d of %s: %w", nl.ID, nl.Node, ErrFenced)
	}
	if err != nil {
		return NodeLease{}, fmt.Errorf("renew node lease %d of %s: %w", nl.ID, nl.Node, mapError(err))
	}
	return nl, nil
}

// EndNodeLease ends nl at once, when its node stops: every identity lease
// still under it becomes void, as if released. Its expiry becomes its
// start, which no renewal in flight can see as unexpired, so the end is
// never undone.
func (s *Store) EndNodeLease(ctx context.Context, nl NodeLease) error {
	if _, err := s.leasePool.Exec(ctx, `UPDATE node_leases SET expires_at = started_at WHERE id = $1`, nl.ID); err != nil {
		return fmt.Errorf("end node lease %d of %s: %w", nl.ID, nl.Node, mapError(err))
	}
	return nil
}

// leaseBatch bounds the leases one statement checks or renews, so the
// arrays sent to Postgres stay a few hundred kilobytes however many
// identities a node hosts.
const leaseBatch = 5000

// CheckLeases returns, by identity, the leases in ls that are still
// valid, with their current expiry, reading (never writing) a few thousand
// leases per statement. A lease missing from the result expired, was
// released or changed hands: its holder is fenced and must stop.
func (s *Store) CheckLeases(ctx context.Context, ls []Lease) (map[string]Lease, error) {
	return s.leaseRounds(ctx, ls, `
		SELECT l.identity, l.owner, l.epoch, coalesce(l.node_lease, 0), `+leaseExpiry+`
		FROM unnest($1::text[], $2::text[], $3::bigint[]) AS r(identity, owner, epoch)
		JOIN identity_leases l ON l.identity = r.identity AND l.owner = r.owner AND l.epoch = r.epoch
		LEFT JOIN node_leases n ON n.id = l.node_lease
		WHERE `+leaseLive, "check")
}

// RenewLeases extends, with one statement per few thousand leases, every
// lease in ls taken on its own (AcquireLease) that its holder still holds,
// keeping their epochs. It returns the renewed leases by identity. A lease
// missing from the result expired, was released or changed hands: its
// holder is fenced and must stop. A released lease is never renewed, even
// by a renewal that started before the release.
//
// Leases under a node lease are not renewed one by one; they live as long
// as their node lease (RenewNodeLease), and RenewLeases leaves them out.
func (s *Store) RenewLeases(ctx context.Context, ls []Lease, ttl time.Duration) (map[string]Lease, error) {
	return s.leaseRounds(ctx, ls, `
		UPDATE identity_leases AS l
		SET expires_at = now() + make_interval(secs => $4), updated_at = now()
		FROM unnest($1::text[], $2::text[], $3::bigint[]) AS r(identity, owner, epoch)
		WHERE l.identity = r.identity AND l.owner = r.owner AND l.epoch = r.epoch
			AND l.node_lease IS NULL AND NOT l.released AND l.expires_at > now()
		RETURNING l.identity, l.owner, l.epoch, 0::bigint, l.expires_at`, "renew", ttl.Seconds())
}

// leaseRounds runs query, which returns leases, over ls in batches of
// leaseBatch: its parameters are the batch's identities, owners and
// epochs, then extra.
func (s *Store) leaseRounds(ctx context.Context, ls []Lease, query, what string, extra ...any) (map[string]Lease, error) {
	out := make(map[string]Lease, len(ls))
	for start := 0; start < len(ls); start += leaseBatch {
		batch := ls[start:min(start+leaseBatch, len(ls))]
		ids := make([]string, len(batch))
		owners := make([]string, len(batch))
		epochs := make([]int64, len(batch))
		for i, l := range batch {
			ids[i], owners[i], epochs[i] = l.Identity, l.Owner, l.Epoch
		}
		rows, err := s.pool.Query(ctx, query, append([]any{ids, owners, epochs}, extra...)...)
		if err != nil {
			return nil, fmt.Errorf("%s %d leases: %w", what, len(batch), mapError(err))
		}
		for rows.Next() {
			var l Lease
			if err := rows.Scan(&l.Identity, &l.Owner, &l.Epoch, &l.Node, &l.ExpiresAt); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%s %d leases: %w", what, len(batch), mapError(err))
			}
			out[l.Identity] = l
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("%s %d leases: %w", what, len(batch), mapError(err))
		}
	}
	return out, nil
}
