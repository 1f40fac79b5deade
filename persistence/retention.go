package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// retentionBatch is how many rows one statement of the retention sweep
// changes, and retentionBatches how many statements one step runs in one
// sweep; what is left waits for the next sweep.
const (
	retentionBatch   = 1000
	retentionBatches = 100
)

// Retention says how long the store keeps what it need not keep for ever.
// A zero duration keeps it for ever.
type Retention struct {
	// Payload is how long the content of a final delivery (succeeded or
	// dead) and of a sent (or dead) reply is kept after its last status
	// change. Then the content is erased; the row and its status stay.
	Payload time.Duration
	// Quarantine is how long a quarantined message is kept.
	Quarantine time.Duration
	// Live is how long a live message waits for an acknowledgement before
	// it is dead (BRIDGE_LIVE_RETENTION); acknowledged and dead live
	// messages keep their content for Payload.
	Live time.Duration
}

// SweepResult counts what one retention sweep did.
type SweepResult struct {
	// Sealed is the number of payloads and replies an earlier version
	// wrote in clear that the sweep sealed.
	Sealed int
	// PurgedDeliveries and PurgedReplies are the rows whose content was
	// erased.
	PurgedDeliveries int
	PurgedReplies    int
	// QuarantineDeleted is the number of quarantined messages deleted.
	QuarantineDeleted int
	// LiveExpired is the number of live messages that became dead, and
	// PurgedLive the live messages whose content was erased.
	LiveExpired int
	PurgedLive  int
}

// SweepRetention seals content left in clear by an earlier version, erases
// the content of final deliveries and replies older than r.Payload, and
// deletes quarantined messages older than r.Quarantine. Every node runs it
// on a timer (one sweep per node, not per identity); the statements skip
// rows other transactions hold, so nodes sweeping at once do not wait for
// each other. It returns what it did, with every error it met.
func (s *Store) SweepRetention(ctx context.Context, r Retention) (SweepResult, error) {
	var res SweepResult
	var errs []error
	n, err := s.SealClearContent(ctx, retentionBatch*retentionBatches)
	res.Sealed = n
	if err != nil {
		errs = append(errs, err)
	}
	if r.Payload > 0 {
		res.PurgedDeliveries, err = s.sweepBatches(ctx, `WITH due AS (
				SELECT id FROM deliveries
				WHERE purged_at IS NULL AND status IN ('succeeded', 'dead') AND updated_at < now() - make_interval(secs => $1)
				ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
			UPDATE deliveries d SET payload = '', payload_key_id = NULL, payload_nonce = NULL,
				reply = NULL, reply_key_id = NULL, reply_nonce = NULL, purged_at = now()
			FROM due WHERE d.id = due.id`, r.Payload)
		if err != nil {
			errs = append(errs, fmt.Errorf("purge delivery payloads: %w", err))
		}
		res.PurgedReplies, err = s.sweepBatches(ctx, `WITH due AS (
				SELECT id FROM reply_outbox
				WHERE purged_at IS NULL AND status IN ('sent', 'dead') AND updated_at < now() - make_interval(secs => $1)
				ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
			UPDATE reply_outbox o SET envelope = '', envelope_key_id = NULL, envelope_nonce = NULL, purged_at = now()
			FROM due WHERE o.id = due.id`, r.Payload)
		if err != nil {
			errs = append(errs, fmt.Errorf("purge outbox replies: %w", err))
		}
	}
	if r.Live > 0 {
		if res.LiveExpired, err = s.ExpireLive(ctx, r.Live); err != nil {
			errs = append(errs, err)
		}
	}
	if r.Payload > 0 {
		if res.PurgedLive, err = s.purgeLive(ctx, r.Payload); err != nil {
			errs = append(errs, fmt.Errorf("purge live messages: %w", err))
		}
	}
	if r.Quarantine > 0 {
		res.QuarantineDeleted, err = s.sweepBatches(ctx, `DELETE FROM quarantined_messages WHERE id IN (
				SELECT id FROM quarantined_messages WHERE created_at < now() - make_interval(secs => $1)
				ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, r.Quarantine)
		if err != nil {
			errs = append(errs, fmt.Errorf("delete old quarantined messages: %w", err))
		}
	}
	return res, errors.Join(errs...)
}

// sweepBatches runs stmt (with the age in seconds as $1 and the batch
// size as $2) until it changes fewer rows than a batch, at most
// retentionBatches times, and returns how many rows it changed.
func (s *Store) sweepBatches(ctx context.Context, stmt string, age time.Duration) (int, error) {
	total := 0
	for range retentionBatches {
		tag, err := s.pool.Exec(ctx, stmt, age.Seconds(), retentionBatch)
		if err != nil {
			return total, mapError(err)
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < retentionBatch {
			break
		}
	}
	return total, nil
}
