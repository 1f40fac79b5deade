package persistence

import (
	"context"
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
	// One statement, fenced by l (fenced.go). The update's own condition,
	// status <> 'succeeded', is what gives one reply only: a concurrent
	// completion of the same delivery waits for this one's row lock, then
	// finds the delivery succeeded and inserts nothing.
	var (
		id                     *int64
		bridgeID, topic, keyID *string
		timestampNs            *int64
		envelope, nonce        []byte
		// text is the reply's text sealed for the delivery's record.
		text, textNonce []byte
		textKeyID       *string
	)
	if reply != nil {
		rid, err := s.nextReplyID(ctx)
		if err != nil {
			return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, err)
		}
		env := reply.Envelope
		if env == nil {
			env = []byte{}
		}
		canon := canonicalID(reply.BridgeID)
		sealed, err := s.sealContent(env, replyEnvelopeAAD(canon, rid))
		if err != nil {
			return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, err)
		}
		id, bridgeID, topic, timestampNs = &rid, &reply.BridgeID, &reply.Topic, &reply.TimestampNs
		envelope, keyID, nonce = sealed.data, sealed.keyID, sealed.nonce
		if reply.Text != "" {
			// The reply's text is kept, sealed, in the delivery's record.
			t, err := s.sealContent([]byte(reply.Text), deliveryReplyAAD(canon, deliveryID))
			if err != nil {
				return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, err)
			}
			text, textKeyID, textNonce = t.data, t.keyID, t.nonce
		}
	}
	var code *int
	if a.StatusCode != 0 {
		code = &a.StatusCode
	}
	var leased, found, inserted bool
	err = s.pool.QueryRow(ctx, `WITH `+leaseCTE+`,
		target AS (SELECT id FROM deliveries WHERE id = $4 AND EXISTS (SELECT 1 FROM lease)),
		attempt AS (
			INSERT INTO delivery_attempts (delivery_id, status_code, latency_ms, error)
			SELECT id, $5, $6, $7 FROM target),
		done AS (
			UPDATE deliveries SET status = 'succeeded', attempts = attempts + 1, last_error = '', updated_at = now(),
				reply = COALESCE($15, reply), reply_key_id = COALESCE($16, reply_key_id), reply_nonce = COALESCE($17, reply_nonce)
			WHERE id = $4 AND status <> 'succeeded' AND EXISTS (SELECT 1 FROM lease) RETURNING id),
		outbox AS (
			INSERT INTO reply_outbox (id, bridge_id, delivery_id, topic, timestamp_ns, envelope, envelope_key_id, envelope_nonce)
			OVERRIDING SYSTEM VALUE
			SELECT $8, $9, done.id, $10, $11, $12, $13, $14 FROM done WHERE $8::bigint IS NOT NULL
			RETURNING id)
		SELECT EXISTS (SELECT 1 FROM lease), EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM done),
			EXISTS (SELECT 1 FROM outbox)`,
		leaseArgs(l, deliveryID, code, float64(a.Latency)/float64(time.Millisecond), a.Error,
			id, bridgeID, topic, timestampNs, envelope, keyID, nonce, text, textKeyID, textNonce)...).Scan(&leased, &found, &completed, &inserted)
	switch {
	case err != nil:
		return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, mapError(err))
	case !leased:
		return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, fencedError(l))
	case !found:
		return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, ErrNotFound)
	}
	if inserted {
		replyID = *id
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
