package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// EndpointState is the health of a bridge's endpoint, shared by every node.
type EndpointState string

// The states of an endpoint.
const (
	// EndpointHealthy endpoints get every attempt.
	EndpointHealthy EndpointState = "healthy"
	// EndpointFailing endpoints failed their last attempts, fewer in a row
	// than open the breaker; they still get every attempt.
	EndpointFailing EndpointState = "failing"
	// EndpointOpen endpoints get no attempts, only one probe at a time, at
	// NextProbeAt.
	EndpointOpen EndpointState = "open"
	// EndpointDisabled endpoints were open for too long: the bridge is
	// stopped as with a 410 until its owner sets it active again.
	EndpointDisabled EndpointState = "disabled"
)

// EndpointStates lists every state, in the order metrics export them.
var EndpointStates = []EndpointState{EndpointHealthy, EndpointFailing, EndpointOpen, EndpointDisabled}

// EndpointHealth is the health row of a bridge's endpoint. A bridge
// without a row is healthy, with zero times.
type EndpointHealth struct {
	BridgeID      string
	State         EndpointState
	FailureStreak int
	LastSuccessAt *time.Time
	LastFailureAt *time.Time
	OpenedAt      *time.Time
	// NextProbeAt is set only while the state is open.
	NextProbeAt   *time.Time
	ProbeInterval time.Duration
	ChangedAt     time.Time
}

// BreakerRules are the thresholds RecordEndpointOutcome applies.
type BreakerRules struct {
	// OpenAfter is the failure streak that opens the breaker.
	OpenAfter int
	// ProbeMin is the wait before the first probe of an open endpoint.
	ProbeMin time.Duration
}

const healthColumns = `bridge_id, state, failure_streak, last_success_at, last_failure_at, opened_at, next_probe_at,
	probe_interval_ms, changed_at`

func scanHealth(r pgx.Row) (EndpointHealth, error) {
	var h EndpointHealth
	var ms int64
	err := r.Scan(&h.BridgeID, &h.State, &h.FailureStreak, &h.LastSuccessAt, &h.LastFailureAt, &h.OpenedAt,
		&h.NextProbeAt, &ms, &h.ChangedAt)
	h.ProbeInterval = time.Duration(ms) * time.Millisecond
	return h, err
}

// EndpointHealthOf returns the health of a bridge's endpoint; a bridge with
// no row yet is healthy.
func (s *Store) EndpointHealthOf(ctx context.Context, bridgeID string) (EndpointHealth, error) {
	if !validID(bridgeID) {
		return EndpointHealth{}, fmt.Errorf("load endpoint health: %w", ErrNotFound)
	}
	h, err := scanHealth(s.pool.QueryRow(ctx, `SELECT `+healthColumns+` FROM endpoint_health WHERE bridge_id = $1`, bridgeID))
	if errors.Is(err, pgx.ErrNoRows) {
		return EndpointHealth{BridgeID: canonicalID(bridgeID), State: EndpointHealthy}, nil
	}
	if err != nil {
		return EndpointHealth{}, fmt.Errorf("load endpoint health: %w", mapError(err))
	}
	return h, nil
}

// RecordEndpointOutcome moves the health of a bridge's endpoint on the
// outcome of one real attempt and returns the states before and after. A
// success makes it healthy; when it was open, every waiting delivery of
// the bridge (pending, or failed with a later next attempt) becomes due at
// once, in the same transaction: the recovery flush. A failure lengthens
// the streak and opens the breaker at rules.OpenAfter; an open or disabled
// endpoint stays so.
func (s *Store) RecordEndpointOutcome(ctx context.Context, bridgeID string, success bool, rules BreakerRules) (from, to EndpointState, err error) {
	if !validID(bridgeID) {
		return "", "", fmt.Errorf("record endpoint outcome: %w", ErrNotFound)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO endpoint_health (bridge_id) VALUES ($1) ON CONFLICT DO NOTHING`, bridgeID); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT state FROM endpoint_health WHERE bridge_id = $1 FOR UPDATE`, bridgeID).Scan(&from); err != nil {
			return err
		}
		if success {
			to = EndpointHealthy
			if _, err := tx.Exec(ctx, `UPDATE endpoint_health SET state = 'healthy', failure_streak = 0,
				last_success_at = now(), opened_at = NULL, next_probe_at = NULL, probe_interval_ms = 0,
				changed_at = CASE WHEN state = 'healthy' THEN changed_at ELSE now() END
				WHERE bridge_id = $1`, bridgeID); err != nil {
				return err
			}
			if from == EndpointOpen {
				_, err := tx.Exec(ctx, `UPDATE deliveries SET next_attempt_at = now(), updated_at = now()
					WHERE bridge_id = $1 AND status IN ('pending', 'failed') AND next_attempt_at > now()`, bridgeID)
				return err
			}
			return nil
		}
		openAfter := max(rules.OpenAfter, 1)
		return tx.QueryRow(ctx, `UPDATE endpoint_health SET
				failure_streak = failure_streak + 1, last_failure_at = now(),
				state = CASE WHEN state IN ('open', 'disabled') THEN state
					WHEN failure_streak + 1 >= $2 THEN 'open' ELSE 'failing' END,
				opened_at = CASE WHEN state IN ('open', 'disabled') THEN opened_at
					WHEN failure_streak + 1 >= $2 THEN now() ELSE NULL END,
				next_probe_at = CASE WHEN state IN ('open', 'disabled') THEN next_probe_at
					WHEN failure_streak + 1 >= $2 THEN now() + $3 * interval '1 millisecond' ELSE NULL END,
				probe_interval_ms = CASE WHEN state IN ('open', 'disabled') THEN probe_interval_ms
					WHEN failure_streak + 1 >= $2 THEN $3 ELSE 0 END,
				changed_at = CASE WHEN state IN ('healthy', 'failing') AND failure_streak + 1 >= $2 THEN now()
					WHEN state = 'healthy' THEN now() ELSE changed_at END
			WHERE bridge_id = $1 RETURNING state`, bridgeID, openAfter, rules.ProbeMin.Milliseconds()).Scan(&to)
	})
	if err != nil {
		return "", "", fmt.Errorf("record endpoint outcome: %w", mapError(err))
	}
	return from, to, nil
}

// ClaimProbe claims the next probe of an open endpoint whose probe is due:
// it pushes next_probe_at one interval further, the interval doubling from
// probeMin up to probeMax, so that of every node and attempt asking, one
// gets the probe per interval. It reports whether this caller got it, and
// then when the next probe is due.
func (s *Store) ClaimProbe(ctx context.Context, bridgeID string, probeMin, probeMax time.Duration) (bool, time.Time, error) {
	if !validID(bridgeID) {
		return false, time.Time{}, fmt.Errorf("claim probe: %w", ErrNotFound)
	}
	var next time.Time
	err := s.pool.QueryRow(ctx, `UPDATE endpoint_health SET
			probe_interval_ms = LEAST(GREATEST(probe_interval_ms * 2, $2), $3),
			next_probe_at = now() + LEAST(GREATEST(probe_interval_ms * 2, $2), $3) * interval '1 millisecond'
		WHERE bridge_id = $1 AND state = 'open' AND next_probe_at <= now()
		RETURNING next_probe_at`,
		bridgeID, probeMin.Milliseconds(), max(probeMax, probeMin).Milliseconds()).Scan(&next)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("claim probe: %w", mapError(err))
	}
	return true, next, nil
}

// DisableEndpoint moves an endpoint that has been open since before
// openedBefore to disabled, and reports whether it did.
func (s *Store) DisableEndpoint(ctx context.Context, bridgeID string, openedBefore time.Time) (bool, error) {
	if !validID(bridgeID) {
		return false, fmt.Errorf("disable endpoint: %w", ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE endpoint_health SET state = 'disabled', next_probe_at = NULL, changed_at = now()
		WHERE bridge_id = $1 AND state = 'open' AND opened_at <= $2`, bridgeID, openedBefore)
	if err != nil {
		return false, fmt.Errorf("disable endpoint: %w", mapError(err))
	}
	return tag.RowsAffected() == 1, nil
}

// ResetEndpointHealth forgets the health of a bridge's endpoint (it is
// healthy again), for a disabled endpoint whose owner set the bridge
// active again.
func (s *Store) ResetEndpointHealth(ctx context.Context, bridgeID string) error {
	if !validID(bridgeID) {
		return fmt.Errorf("reset endpoint health: %w", ErrNotFound)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM endpoint_health WHERE bridge_id = $1`, bridgeID); err != nil {
		return fmt.Errorf("reset endpoint health: %w", mapError(err))
	}
	return nil
}

// ExpireWaitingDeliveries makes a dead letter of every delivery of the
// bridge but except that waits (pending or failed) and was created before
// createdBefore, while l is the identity's current lease: the age bound
// still holds while the breaker keeps attempts back. It returns how many.
func (s *Store) ExpireWaitingDeliveries(ctx context.Context, l Lease, bridgeID string, except int64, createdBefore time.Time) (int64, error) {
	if !validID(bridgeID) {
		return 0, fmt.Errorf("expire waiting deliveries: %w", ErrNotFound)
	}
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE deliveries SET status = 'dead', last_error = 'too old: the endpoint was down',
			updated_at = now() WHERE bridge_id = $1 AND id <> $3 AND status IN ('pending', 'failed') AND created_at < $2`,
			bridgeID, createdBefore, except)
		n = tag.RowsAffected()
		return err
	})
	if errors.Is(err, ErrFenced) {
		return 0, fmt.Errorf("expire waiting deliveries: %w", err)
	}
	if err != nil {
		return 0, fmt.Errorf("expire waiting deliveries: %w", mapError(err))
	}
	return n, nil
}

// EndpointCounts returns how many bridges' endpoints are in each state
// (a bridge without a health row counts as healthy) and how many
// deliveries wait on endpoints that are open or disabled, in one query.
//
// Every node runs it on each metrics scrape, so it reads nothing that
// grows with the number of bridges: the number of bridges is the sum of
// bridge_counts' 64 slots, which triggers on bridges keep in the
// transaction that inserts or deletes them (migration 0016); the states
// other than healthy are counted through endpoint_health_state_idx, which
// holds only those rows; healthy is the rest. The backlog reads the
// waiting deliveries of open and disabled endpoints only
// (deliveries_waiting_idx). TestEndpointCountsPlanReadsNoBridges.
func (s *Store) EndpointCounts(ctx context.Context) (map[EndpointState]int64, int64, error) {
	out := make(map[EndpointState]int64, len(EndpointStates))
	for _, st := range EndpointStates {
		out[st] = 0
	}
	var all, failing, open, disabled, backlog int64
	err := s.pool.QueryRow(ctx, endpointCountsQuery).Scan(&all, &failing, &open, &disabled, &backlog)
	if err != nil {
		return nil, 0, fmt.Errorf("count endpoint states: %w", mapError(err))
	}
	out[EndpointFailing], out[EndpointOpen], out[EndpointDisabled] = failing, open, disabled
	out[EndpointHealthy] = max(all-failing-open-disabled, 0)
	return out, backlog, nil
}

// endpointCountsQuery is EndpointCounts' read: the number of bridges, the
// endpoints failing, open and disabled, and the backlog.
const endpointCountsQuery = `SELECT
		(SELECT coalesce(sum(n), 0)::bigint FROM bridge_counts),
		h.failing, h.open, h.disabled,
		(SELECT count(*) FROM endpoint_health w JOIN deliveries d ON d.bridge_id = w.bridge_id
			WHERE w.state IN ('open', 'disabled') AND d.status IN ('pending', 'failed'))
	FROM (SELECT count(*) FILTER (WHERE state = 'failing') AS failing,
			count(*) FILTER (WHERE state = 'open') AS open,
			count(*) FILTER (WHERE state = 'disabled') AS disabled
		FROM endpoint_health WHERE state <> 'healthy') h`
