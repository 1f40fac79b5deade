package persistence

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// SendSource says which path a sent message took.
type SendSource string

// The paths a message is sent on.
const (
	// SendREST messages were sent over POST /v1/bridges/{id}/messages.
	SendREST SendSource = "rest"
	// SendReverse messages were commands of the API server's own XMTP
	// identity to the reverse proxy.
	SendReverse SendSource = "reverse"
	// SendLive messages were `send` or `reply` frames of a live consumer.
	SendLive SendSource = "live"
	// SendBroadcast messages were one subscriber's copy of a broadcast.
	SendBroadcast SendSource = "broadcast"
)

// SendStatus is the state of a sent message as its owner sees it.
type SendStatus string

// The states of a sent message.
const (
	// SendQueued messages wait for a publish or a retry of one.
	SendQueued SendStatus = "queued"
	// SendSent messages were published to the XMTP network.
	SendSent SendStatus = "sent"
	// SendFailed messages could not be published and will not be tried
	// again.
	SendFailed SendStatus = "failed"
)

// maxSendError is the longest last error a sent message keeps.
const maxSendError = 2000

// SentMessage is the status of one message a bridge sent for its owner.
type SentMessage struct {
	ID        int64
	BridgeID  string
	MessageID string
	Source    SendSource
	To        string
	Status    SendStatus
	Attempts  int
	LastError string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// A message sent through the outbox reads its status, attempts and last
// error from its reply: pending and failed replies are queued, sent ones
// sent and dead ones failed.
const sentColumns = `s.id, s.bridge_id, s.message_id, s.source, s.to_address,
	CASE WHEN r.id IS NULL THEN s.status WHEN r.status = 'sent' THEN 'sent' WHEN r.status = 'dead' THEN 'failed' ELSE 'queued' END,
	COALESCE(r.attempts, s.attempts), COALESCE(r.last_error, s.last_error), s.created_at, GREATEST(s.updated_at, r.updated_at)`

const sentFrom = ` FROM sent_messages s LEFT JOIN reply_outbox r ON r.id = s.reply_id`

func scanSent(r pgx.Row) (SentMessage, error) {
	var m SentMessage
	err := r.Scan(&m.ID, &m.BridgeID, &m.MessageID, &m.Source, &m.To, &m.Status, &m.Attempts, &m.LastError, &m.CreatedAt, &m.UpdatedAt)
	return m, err
}

func clipError(s string) string {
	if len(s) > maxSendError {
		return s[:maxSendError]
	}
	return s
}

// RecordSend stores the status of a message the bridge publishes itself
// (not through the outbox): SendQueued before the publish, then SendSent
// or SendFailed with the error, each counting one attempt. The same message
// id updates its row, whatever its source was.
func (s *Store) RecordSend(ctx context.Context, bridgeID, messageID string, source SendSource, to string, status SendStatus, lastError string) error {
	if !validID(bridgeID) {
		return fmt.Errorf("record send: %w", ErrNotFound)
	}
	attempts := 0
	if status != SendQueued {
		attempts = 1
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO sent_messages (bridge_id, message_id, source, to_address, status, attempts, last_error)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (bridge_id, message_id) DO UPDATE SET status = EXCLUDED.status,
			attempts = sent_messages.attempts + EXCLUDED.attempts, last_error = EXCLUDED.last_error, updated_at = now()`,
		bridgeID, messageID, string(source), to, string(status), attempts, clipError(lastError))
	if err != nil {
		return fmt.Errorf("record send: %w", mapError(err))
	}
	return nil
}

// MarkSendSource sets the source of a message already recorded, for a
// path (a live `send`) that reaches the bridge the way a REST send does.
func (s *Store) MarkSendSource(ctx context.Context, bridgeID, messageID string, source SendSource) error {
	if !validID(bridgeID) {
		return fmt.Errorf("mark send source: %w", ErrNotFound)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE sent_messages SET source = $3 WHERE bridge_id = $1 AND message_id = $2`,
		bridgeID, messageID, string(source)); err != nil {
		return fmt.Errorf("mark send source: %w", mapError(err))
	}
	return nil
}

// recordOutboxSend records, within tx, a message that goes through the
// outbox as reply replyID.
func recordOutboxSend(ctx context.Context, tx pgx.Tx, bridgeID, messageID string, source SendSource, to string, replyID int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO sent_messages (bridge_id, message_id, source, to_address, reply_id)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (bridge_id, message_id) DO NOTHING`,
		bridgeID, messageID, string(source), to, replyID)
	return err
}

// SentMessage returns the status of one message of an account's bridge.
func (s *Store) SentMessage(ctx context.Context, accountID, bridgeID, messageID string) (SentMessage, error) {
	if !validID(accountID) || !validID(bridgeID) || messageID == "" || len(messageID) > 256 {
		return SentMessage{}, fmt.Errorf("load sent message: %w", ErrNotFound)
	}
	m, err := scanSent(s.pool.QueryRow(ctx, `SELECT `+sentColumns+sentFrom+`
		JOIN bridges b ON b.id = s.bridge_id
		WHERE s.bridge_id = $1 AND b.account_id = $2 AND s.message_id = $3`, bridgeID, accountID, messageID))
	if err != nil {
		return SentMessage{}, fmt.Errorf("load sent message: %w", mapError(err))
	}
	return m, nil
}

// ListSentMessages returns one page of an account's bridge's sent
// messages, newest first, and the cursor of the next page ("" at the end).
func (s *Store) ListSentMessages(ctx context.Context, accountID, bridgeID string, page Page) ([]SentMessage, string, error) {
	if !validID(accountID) || !validID(bridgeID) {
		return nil, "", fmt.Errorf("list sent messages: %w", ErrNotFound)
	}
	before, err := int64Cursor(page.After)
	if err != nil {
		return nil, "", fmt.Errorf("list sent messages: %w", err)
	}
	var owned bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM bridges WHERE id = $1 AND account_id = $2)`,
		bridgeID, accountID).Scan(&owned); err != nil {
		return nil, "", fmt.Errorf("list sent messages: %w", mapError(err))
	}
	if !owned {
		return nil, "", fmt.Errorf("list sent messages: %w", ErrNotFound)
	}
	limit := page.limit()
	rows, err := s.pool.Query(ctx, `SELECT `+sentColumns+sentFrom+`
		WHERE s.bridge_id = $1 AND s.id < $2 ORDER BY s.id DESC LIMIT $3`, bridgeID, before, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list sent messages: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SentMessage, error) { return scanSent(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list sent messages: %w", mapError(err))
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = strconv.FormatInt(out[limit-1].ID, 10)
	}
	return out, next, nil
}

// EnqueueSend puts r in the outbox under the caller's lease and records it,
// in the same transaction, as message messageID sent on source to the
// address to; its status is then the reply's. It returns the outbox id. A
// lost lease is ErrFenced.
func (s *Store) EnqueueSend(ctx context.Context, l Lease, r Reply, messageID string, source SendSource, to string) (int64, error) {
	if !validID(r.BridgeID) {
		return 0, fmt.Errorf("enqueue send: %w", ErrNotFound)
	}
	var id int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		var err error
		if id, err = s.insertReply(ctx, tx, r); err != nil {
			return err
		}
		return recordOutboxSend(ctx, tx, r.BridgeID, messageID, source, to, id)
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue send: %w", mapError(err))
	}
	return id, nil
}
