package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// CompleteDelivery records the successful attempt of a delivery and, when
// reply is not nil, puts the reply in the outbox, in one transaction under
// the caller's lease. A delivery that already succeeded is left as it is
// and gets no second reply: completed is false and replyID is 0. This is
// what makes every message get at most one reply even when its webhook was
// called more than once. A lost lease is ErrFenced.
func (s *Store) CompleteDelivery(ctx context.Context, l Lease, deliveryID int64, a DeliveryAttempt, reply *Reply) (replyID int64, completed bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		var status, bridgeID, messageID string
		if err := tx.QueryRow(ctx, `SELECT status, bridge_id::text, message_id FROM deliveries WHERE id = $1 FOR UPDATE`,
			deliveryID).Scan(&status, &bridgeID, &messageID); err != nil {
			return err
		}
		var code *int
		if a.StatusCode != 0 {
			code = &a.StatusCode
		}
		if _, err := tx.Exec(ctx, `INSERT INTO delivery_attempts (delivery_id, status_code, latency_ms, error) VALUES ($1, $2, $3, $4)`,
			deliveryID, code, float64(a.Latency)/float64(time.Millisecond), a.Error); err != nil {
			return err
		}
		if DeliveryStatus(status) == DeliverySucceeded {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET status = 'succeeded', attempts = attempts + 1,
			last_error = '', updated_at = now() WHERE id = $1`, deliveryID); err != nil {
			return err
		}
		completed = true
		if reply == nil {
			return nil
		}
		r := *reply
		r.DeliveryID = &deliveryID
		if r.Text != "" {
			sealed, err := s.sealContent([]byte(r.Text), deliveryReplyAAD(bridgeID, messageID))
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE deliveries SET reply = $2, reply_key_id = $3, reply_nonce = $4 WHERE id = $1`,
				deliveryID, sealed.data, sealed.keyID, sealed.nonce); err != nil {
				return err
			}
		}
		var err error
		replyID, err = s.insertReply(ctx, tx, r)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrFenced) {
			return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, err)
		}
		return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, mapError(err))
	}
	return replyID, completed, nil
}

// RepliesOf returns the outbox rows of a delivery, oldest first. The
// runtime's tests and the owner's delivery view use it to show the reply a
// message got.
func (s *Store) RepliesOf(ctx context.Context, deliveryID int64) ([]Reply, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+replyColumns+` FROM reply_outbox WHERE delivery_id = $1 ORDER BY id`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("load replies of delivery %d: %w", deliveryID, mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Reply, error) { return s.scanReply(r) })
	if err != nil {
		return nil, fmt.Errorf("load replies of delivery %d: %w", deliveryID, mapError(err))
	}
	return out, nil
}

// DeliveryByID returns a delivery whatever its bridge, for the runtime,
// which reloads a delivery before each attempt so that an attempt never
// works from a stale copy.
func (s *Store) DeliveryByID(ctx context.Context, deliveryID int64) (Delivery, error) {
	d, err := s.scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries d WHERE d.id = $1`, deliveryID))
	if err != nil {
		return Delivery{}, fmt.Errorf("get delivery %d: %w", deliveryID, mapError(err))
	}
	return d, nil
}
