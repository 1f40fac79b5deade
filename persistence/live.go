package persistence

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeliveryMode says where a bridge's inbound messages go.
type DeliveryMode string

// The delivery modes.
const (
	// DeliveryWebhook messages go to the bridge's webhook only.
	DeliveryWebhook DeliveryMode = "webhook"
	// DeliveryLive messages go to the bridge's live consumers only.
	DeliveryLive DeliveryMode = "live"
	// DeliveryBoth messages go to the webhook and to the live consumers.
	DeliveryBoth DeliveryMode = "both"
)

// Live returns whether the mode feeds the live stream.
func (m DeliveryMode) Live() bool { return m == DeliveryLive || m == DeliveryBoth }

// Webhook returns whether the mode calls the webhook. The zero mode is the
// webhook.
func (m DeliveryMode) Webhook() bool { return m != DeliveryLive }

func (m DeliveryMode) orWebhook() DeliveryMode {
	if m == "" {
		return DeliveryWebhook
	}
	return m
}

// LiveNotifyChannel is the Postgres channel on which a new live message of
// a bridge is announced; the payload is the bridge id.
const LiveNotifyChannel = "bridge_live"

// ErrUnknownLiveMessage means a consumer named a live message that is not
// one of its bridge's pending messages sent to it.
var ErrUnknownLiveMessage = errors.New("unknown live message")

// ErrAlreadyReplied means a live message already has its one reply; the
// error comes with the reply's message id.
var ErrAlreadyReplied = errors.New("message already has a reply")

// LiveMessage is one message of a bridge's live stream.
type LiveMessage struct {
	// ID is the message's position in the stream, its cursor: the id of
	// its delivery.
	ID            int64
	BridgeID      string
	MessageID     string
	Topic         string
	SenderAddress string
	// Body is the JSON webhook body of the message.
	Body      []byte
	CreatedAt time.Time
	// Sends counts how many times the message was sent to a consumer.
	Sends int
}

func liveBodyAAD(bridgeID, messageID string) []byte {
	return []byte("live-body\x00" + bridgeID + "\x00" + messageID)
}

// HandOverLive puts delivery d in its bridge's live stream, under the
// caller's lease, with body as the notification's params, and announces
// it on LiveNotifyChannel. With complete, the delivery itself is done: it
// is marked succeeded in the same transaction. A message already in the
// stream stays as it is, unless it was dead (a replayed dead letter), when
// it is pending again.
func (s *Store) HandOverLive(ctx context.Context, l Lease, d Delivery, body []byte, complete bool) error {
	if !validID(d.BridgeID) {
		return fmt.Errorf("hand over live message: %w", ErrNotFound)
	}
	bridgeID := canonicalID(d.BridgeID)
	sealed, err := s.sealContent(body, liveBodyAAD(bridgeID, d.MessageID))
	if err != nil {
		return fmt.Errorf("hand over live message: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO live_messages (bridge_id, id, message_id, topic, sender_address, body, body_key_id, body_nonce)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (bridge_id, message_id) DO UPDATE SET status = 'pending', created_at = now(), updated_at = now(),
				claimed_by = NULL, claimed_until = NULL
			WHERE live_messages.status = 'dead'`,
			bridgeID, d.ID, d.MessageID, d.Topic, d.SenderAddress, sealed.data, sealed.keyID, sealed.nonce); err != nil {
			return err
		}
		if complete {
			if _, err := tx.Exec(ctx, `UPDATE deliveries SET status = 'succeeded', attempts = attempts + 1, last_error = '',
				updated_at = now() WHERE id = $1 AND status IN ('pending', 'failed')`, d.ID); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, LiveNotifyChannel, bridgeID)
		return err
	})
	if err != nil {
		return fmt.Errorf("hand over live message: %w", mapError(err))
	}
	return nil
}

// ClaimLive claims for consumer up to limit pending messages of a bridge
// after the cursor after that no other consumer holds, oldest first, until
// ttl from now, and returns them.
func (s *Store) ClaimLive(ctx context.Context, bridgeID, consumer string, after int64, limit int, ttl time.Duration) ([]LiveMessage, error) {
	if !validID(bridgeID) {
		return nil, fmt.Errorf("claim live messages: %w", ErrNotFound)
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT id FROM live_messages
			WHERE bridge_id = $1 AND status = 'pending' AND id > $2 AND (claimed_by IS NULL OR claimed_until < now())
			ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
		UPDATE live_messages m SET claimed_by = $3, claimed_until = now() + make_interval(secs => $5), sends = sends + 1
		FROM due WHERE m.id = due.id
		RETURNING m.id, m.bridge_id::text, m.message_id, m.topic, m.sender_address, m.body, m.body_key_id, m.body_nonce, m.created_at, m.sends`,
		bridgeID, after, consumer, limit, ttl.Seconds())
	if err != nil {
		return nil, fmt.Errorf("claim live messages: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LiveMessage, error) {
		var m LiveMessage
		var c storedContent
		if err := r.Scan(&m.ID, &m.BridgeID, &m.MessageID, &m.Topic, &m.SenderAddress, &c.data, &c.keyID, &c.nonce, &m.CreatedAt, &m.Sends); err != nil {
			return m, err
		}
		body, err := s.openContent(c, liveBodyAAD(m.BridgeID, m.MessageID))
		if err != nil {
			return m, fmt.Errorf("open live message %d: %w", m.ID, err)
		}
		m.Body = body
		return m, nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim live messages: %w", mapError(err))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// AckLive acknowledges a bridge's live message that consumer holds: it
// leaves the stream. Acknowledging it again is not an error.
func (s *Store) AckLive(ctx context.Context, bridgeID, consumer, messageID string) error {
	if !validID(bridgeID) {
		return fmt.Errorf("ack live message: %w", ErrUnknownLiveMessage)
	}
	var status string
	var holder *string
	err := s.pool.QueryRow(ctx, `UPDATE live_messages m SET status = CASE WHEN m.status = 'pending' AND m.claimed_by = $3 THEN 'acked' ELSE m.status END,
			updated_at = now(), claimed_by = CASE WHEN m.status = 'pending' AND m.claimed_by = $3 THEN NULL ELSE m.claimed_by END
		FROM live_messages old WHERE old.id = m.id AND m.bridge_id = $1 AND m.message_id = $2
		RETURNING old.status, old.claimed_by`, bridgeID, messageID, consumer).Scan(&status, &holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("ack live message: %w", ErrUnknownLiveMessage)
	}
	if err != nil {
		return fmt.Errorf("ack live message: %w", mapError(err))
	}
	if status == "acked" || (status == "pending" && holder != nil && *holder == consumer) {
		return nil
	}
	return fmt.Errorf("ack live message: %w", ErrUnknownLiveMessage)
}

// RenewLiveClaims extends to ttl from now the claims of the consumers, the
// ones a node's open sockets hold.
func (s *Store) RenewLiveClaims(ctx context.Context, consumers []string, ttl time.Duration) error {
	if len(consumers) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `UPDATE live_messages SET claimed_until = now() + make_interval(secs => $2)
		WHERE status = 'pending' AND claimed_by = ANY($1)`, consumers, ttl.Seconds()); err != nil {
		return fmt.Errorf("renew live claims: %w", mapError(err))
	}
	return nil
}

// ReleaseLive gives back the messages consumer holds and did not
// acknowledge, for the next consumer.
func (s *Store) ReleaseLive(ctx context.Context, consumer string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE live_messages SET claimed_by = NULL, claimed_until = NULL
		WHERE status = 'pending' AND claimed_by = $1`, consumer); err != nil {
		return fmt.Errorf("release live claims: %w", mapError(err))
	}
	return nil
}

// LiveBacklog is the state of the live streams of all bridges.
type LiveBacklog struct {
	// Pending is how many messages wait for an acknowledgement.
	Pending int64
	// Oldest is the age of the oldest of them; 0 when there is none.
	Oldest time.Duration
}

// LiveBacklog returns how many live messages wait and how old the oldest is.
func (s *Store) LiveBacklog(ctx context.Context) (LiveBacklog, error) {
	var b LiveBacklog
	var secs float64
	if err := s.pool.QueryRow(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
		FROM live_messages WHERE status = 'pending'`).Scan(&b.Pending, &secs); err != nil {
		return b, fmt.Errorf("load live backlog: %w", mapError(err))
	}
	b.Oldest = time.Duration(secs * float64(time.Second))
	return b, nil
}

// ExpireLive makes dead the live messages that waited longer than age
// without an acknowledgement, and their deliveries with them, which become
// dead letters the owner can list and replay. It returns how many expired.
func (s *Store) ExpireLive(ctx context.Context, age time.Duration) (int, error) {
	n, err := s.sweepBatches(ctx, `WITH due AS (
			SELECT id FROM live_messages WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)
			ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED),
		dead_deliveries AS (
			UPDATE deliveries d SET status = 'dead', last_error = 'live: no consumer acknowledged it within BRIDGE_LIVE_RETENTION',
				updated_at = now()
			FROM due WHERE d.id = due.id)
		UPDATE live_messages m SET status = 'dead', claimed_by = NULL, claimed_until = NULL, updated_at = now()
		FROM due WHERE m.id = due.id`, age)
	if err != nil {
		return n, fmt.Errorf("expire live messages: %w", err)
	}
	return n, nil
}

// purgeLive erases the content of acknowledged and dead live messages
// older than age.
func (s *Store) purgeLive(ctx context.Context, age time.Duration) (int, error) {
	return s.sweepBatches(ctx, `WITH due AS (
			SELECT id FROM live_messages
			WHERE purged_at IS NULL AND status IN ('acked', 'dead') AND updated_at < now() - make_interval(secs => $1)
			ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		UPDATE live_messages m SET body = '', body_key_id = NULL, body_nonce = NULL, purged_at = now()
		FROM due WHERE m.id = due.id`, age)
}
