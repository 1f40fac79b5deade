package persistence

import (
	"context"
	"fmt"
	"time"
)

// CanaryResult is one canary round trip.
type CanaryResult struct {
	BridgeID   string
	Nonce      string
	SentAt     time.Time
	ReceivedAt *time.Time
	RTT        time.Duration
	Error      string
}

// RecordCanarySent records that a canary message with nonce was sent to a
// bridge.
func (s *Store) RecordCanarySent(ctx context.Context, bridgeID, nonce string, sentAt time.Time) error {
	if !validID(bridgeID) {
		return fmt.Errorf("record canary: %w", ErrNotFound)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO canary_results (bridge_id, nonce, sent_at) VALUES ($1, $2, $3)`,
		bridgeID, nonce, sentAt); err != nil {
		return fmt.Errorf("record canary: %w", mapError(err))
	}
	return nil
}

// RecordCanaryReceived records the arrival of the canary with nonce and
// returns its round-trip time. An unknown nonce is ErrNotFound.
func (s *Store) RecordCanaryReceived(ctx context.Context, bridgeID, nonce string, receivedAt time.Time) (time.Duration, error) {
	if !validID(bridgeID) {
		return 0, fmt.Errorf("record canary arrival: %w", ErrNotFound)
	}
	var rttMS float64
	err := s.pool.QueryRow(ctx, `UPDATE canary_results SET received_at = $3,
			rtt_ms = greatest(0, extract(epoch FROM ($3 - sent_at)) * 1000)
		WHERE bridge_id = $1 AND nonce = $2 AND received_at IS NULL RETURNING rtt_ms`, bridgeID, nonce, receivedAt).Scan(&rttMS)
	if err != nil {
		return 0, fmt.Errorf("record canary arrival: %w", mapError(err))
	}
	return time.Duration(rttMS * float64(time.Millisecond)), nil
}

// RecordCanaryError records why the canary with nonce failed.
func (s *Store) RecordCanaryError(ctx context.Context, bridgeID, nonce, reason string) error {
	if !validID(bridgeID) {
		return fmt.Errorf("record canary error: %w", ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE canary_results SET error = $3 WHERE bridge_id = $1 AND nonce = $2`, bridgeID, nonce, reason)
	if err != nil {
		return fmt.Errorf("record canary error: %w", mapError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record canary error: %w", ErrNotFound)
	}
	return nil
}

// LatestCanary returns the most recently sent canary of a bridge.
func (s *Store) LatestCanary(ctx context.Context, bridgeID string) (CanaryResult, error) {
	if !validID(bridgeID) {
		return CanaryResult{}, fmt.Errorf("load canary: %w", ErrNotFound)
	}
	var (
		c     CanaryResult
		rttMS *float64
	)
	err := s.pool.QueryRow(ctx, `SELECT bridge_id, nonce, sent_at, received_at, rtt_ms, error FROM canary_results
		WHERE bridge_id = $1 ORDER BY sent_at DESC LIMIT 1`, bridgeID).
		Scan(&c.BridgeID, &c.Nonce, &c.SentAt, &c.ReceivedAt, &rttMS, &c.Error)
	if err != nil {
		return CanaryResult{}, fmt.Errorf("load canary: %w", mapError(err))
	}
	if rttMS != nil {
		c.RTT = time.Duration(*rttMS * float64(time.Millisecond))
	}
	return c, nil
}
