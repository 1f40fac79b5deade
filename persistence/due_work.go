package persistence

// Due work, for the node's scheduler (actors/due.go), and the channel of
// configuration events.

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// BridgeChangedChannel is the Postgres notification channel on which every
// change of a bridge's configuration (its row, its forward configuration,
// its webhook secrets) is announced with the bridge's id, by the triggers
// of migration 0009.
const BridgeChangedChannel = "bridge_changed"

// DueWork returns the ids of the bridges, of the whole cluster, that have
// work due now: a delivery to attempt (pending, or failed and due for its
// retry; not while the endpoint's breaker is open and its probe not yet
// due; only for an active bridge), a reply to publish, or broadcast copies
// to queue. At most limit ids, in no order. It is one statement whose cost
// follows the bridges with work waiting, not the number of bridges: the
// deliveries part skips from one waiting bridge to the next through
// deliveries_bridge_due_idx.
func (s *Store) DueWork(ctx context.Context, limit int) ([]string, error) {
	return s.dueWork(ctx, nil, limit)
}

// DueWorkOn is DueWork for the bridges whose identity lease lives under
// the node lease nl (unreleased): the node's own. A waiting bridge of
// another node costs one probe of the identity_leases primary key, and no
// look at its deliveries' due times, its breaker or its replies.
func (s *Store) DueWorkOn(ctx context.Context, nl NodeLease, limit int) ([]string, error) {
	return s.dueWork(ctx, &nl.ID, limit)
}

func (s *Store) dueWork(ctx context.Context, node *int64, limit int) ([]string, error) {
	if limit <= 0 {
		limit = 10000
	}
	// mine is true of a bridge id (text) hosted under the node lease $2,
	// or of every bridge without one.
	mine := func(id string) string {
		return `($2::bigint IS NULL OR EXISTS (SELECT 1 FROM identity_leases l WHERE l.identity = ` + id +
			` AND l.node_lease = $2 AND NOT l.released))`
	}
	rows, err := s.pool.Query(ctx, `
		WITH RECURSIVE waiting(bridge_id) AS (
			(SELECT bridge_id FROM deliveries WHERE status IN ('pending', 'failed') ORDER BY bridge_id LIMIT 1)
			UNION ALL
			SELECT (SELECT d.bridge_id FROM deliveries d WHERE d.status IN ('pending', 'failed') AND d.bridge_id > w.bridge_id
				ORDER BY d.bridge_id LIMIT 1)
			FROM waiting w WHERE w.bridge_id IS NOT NULL
		)
		(SELECT w.bridge_id::text FROM waiting w JOIN bridges b ON b.id = w.bridge_id AND b.status = 'active'
			WHERE `+mine("w.bridge_id::text")+`
				AND EXISTS (SELECT 1 FROM deliveries d WHERE d.bridge_id = w.bridge_id
					AND d.status IN ('pending', 'failed') AND d.next_attempt_at <= now())
				AND NOT EXISTS (SELECT 1 FROM endpoint_health h WHERE h.bridge_id = w.bridge_id
					AND h.state = 'open' AND h.next_probe_at > now())
		UNION
		SELECT DISTINCT r.bridge_id::text FROM reply_outbox r WHERE r.status IN ('pending', 'failed') AND r.next_attempt_at <= now()
			AND `+mine("r.bridge_id::text")+`
		UNION
		SELECT b.id::text FROM bridges b WHERE b.broadcasts_pending AND `+mine("b.id::text")+`)
		LIMIT $1`, limit, node)
	if err != nil {
		return nil, fmt.Errorf("load due work: %w", mapError(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("load due work: %w", mapError(err))
	}
	return ids, nil
}

// EnabledBridgeIDs returns the ids of every bridge that is not disabled, in
// id order, for placement: ids only, one short row each.
func (s *Store) EnabledBridgeIDs(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text FROM bridges WHERE status <> 'disabled' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list enabled bridges: %w", mapError(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list enabled bridges: %w", mapError(err))
	}
	return ids, nil
}

// EnabledBridgeIDsAmong returns those of ids that name a bridge that is
// not disabled, in id order: placement's look at the bridges that changed.
// Ids that are not a bridge's are left out.
func (s *Store) EnabledBridgeIDsAmong(ctx context.Context, ids []string) ([]string, error) {
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if validID(id) {
			valid = append(valid, id)
		}
	}
	if len(valid) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id::text FROM bridges WHERE id = ANY($1::text[]::uuid[]) AND status <> 'disabled' ORDER BY id`, valid)
	if err != nil {
		return nil, fmt.Errorf("list enabled bridges: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list enabled bridges: %w", mapError(err))
	}
	return out, nil
}

// Listen calls fn with the channel and payload of every notification on
// channels, on one connection taken out of the pool, until ctx ends (nil)
// or the connection fails (an error: the caller listens again, and must
// assume it missed notifications). ready is called once listening, before
// any notification.
func (s *Store) Listen(ctx context.Context, channels []string, ready func(), fn func(channel, payload string)) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("listen: %w", mapError(err))
	}
	// The connection leaves the pool: no other query may get a
	// listening connection.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("listen %s: %w", ch, mapError(err))
		}
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("listen: %w", err)
		}
		fn(n.Channel, n.Payload)
	}
}
