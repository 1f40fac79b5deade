package persistence

import (
	"context"
	"fmt"
	"time"
)

// renewBatch bounds the leases one statement renews, so the arrays sent to
// Postgres stay a few hundred kilobytes however many identities a node
// hosts.
const renewBatch = 5000

// RenewLeases extends, with one statement per few thousand leases, every
// lease in ls that its holder still holds, keeping their epochs. It returns
// the renewed leases by identity. A lease missing from the result expired,
// was released or changed hands: its holder is fenced and must stop.
//
// A node renews all the leases of the identities it hosts this way, so the
// cost of keeping leases fresh is a few statements per renewal period
// instead of one round trip per identity.
func (s *Store) RenewLeases(ctx context.Context, ls []Lease, ttl time.Duration) (map[string]Lease, error) {
	renewed := make(map[string]Lease, len(ls))
	for start := 0; start < len(ls); start += renewBatch {
		batch := ls[start:min(start+renewBatch, len(ls))]
		ids := make([]string, len(batch))
		owners := make([]string, len(batch))
		epochs := make([]int64, len(batch))
		for i, l := range batch {
			ids[i], owners[i], epochs[i] = l.Identity, l.Owner, l.Epoch
		}
		rows, err := s.pool.Query(ctx, `
			UPDATE identity_leases AS l
			SET expires_at = now() + make_interval(secs => $4), updated_at = now()
			FROM unnest($1::text[], $2::text[], $3::bigint[]) AS r(identity, owner, epoch)
			WHERE l.identity = r.identity AND l.owner = r.owner AND l.epoch = r.epoch AND l.expires_at > now()
			RETURNING l.identity, l.owner, l.epoch, l.expires_at`, ids, owners, epochs, ttl.Seconds())
		if err != nil {
			return nil, fmt.Errorf("renew %d leases: %w", len(batch), mapError(err))
		}
		for rows.Next() {
			var l Lease
			if err := rows.Scan(&l.Identity, &l.Owner, &l.Epoch, &l.ExpiresAt); err != nil {
				rows.Close()
				return nil, fmt.Errorf("renew %d leases: %w", len(batch), mapError(err))
			}
			renewed[l.Identity] = l
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("renew %d leases: %w", len(batch), mapError(err))
		}
	}
	return renewed, nil
}
