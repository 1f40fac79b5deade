package persistence

import (
	"context"
	"fmt"
	"time"
)

// maxQuarantineReason bounds the stored reason; longer reasons are cut.
const maxQuarantineReason = 2000

// QuarantinedMessage is input that could not be handled, kept for an
// operator.
type QuarantinedMessage struct {
	ID        int64
	BridgeID  string
	Topic     string
	Envelope  []byte
	Reason    string
	CreatedAt time.Time
}

// Quarantine keeps a message that could not be handled (malformed
// envelope, poison message) with the reason. bridgeID may be empty when
// the message could not be tied to a bridge.
func (s *Store) Quarantine(ctx context.Context, bridgeID, topic string, envelope []byte, reason string) error {
	var bridge *string
	if bridgeID != "" {
		if !validID(bridgeID) {
			return fmt.Errorf("quarantine message: %w", ErrNotFound)
		}
		bridge = &bridgeID
	}
	if reason == "" {
		reason = "unspecified"
	}
	if len(reason) > maxQuarantineReason {
		reason = reason[:maxQuarantineReason]
	}
	if envelope == nil {
		envelope = []byte{}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO quarantined_messages (bridge_id, topic, envelope, reason) VALUES ($1, $2, $3, $4)`,
		bridge, topic, envelope, reason); err != nil {
		return fmt.Errorf("quarantine message: %w", mapError(err))
	}
	return nil
}

// QuarantinedMessages returns the newest quarantined messages of a bridge,
// at most limit of them.
func (s *Store) QuarantinedMessages(ctx context.Context, bridgeID string, limit int) ([]QuarantinedMessage, error) {
	if !validID(bridgeID) {
		return nil, fmt.Errorf("load quarantined messages: %w", ErrNotFound)
	}
	limit = Page{Limit: limit}.limit()
	rows, err := s.pool.Query(ctx, `SELECT id, bridge_id::text, topic, envelope, reason, created_at FROM quarantined_messages
		WHERE bridge_id = $1 ORDER BY id DESC LIMIT $2`, bridgeID, limit)
	if err != nil {
		return nil, fmt.Errorf("load quarantined messages: %w", mapError(err))
	}
	defer rows.Close()
	var out []QuarantinedMessage
	for rows.Next() {
		var q QuarantinedMessage
		if err := rows.Scan(&q.ID, &q.BridgeID, &q.Topic, &q.Envelope, &q.Reason, &q.CreatedAt); err != nil {
			return nil, fmt.Errorf("load quarantined messages: %w", mapError(err))
		}
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load quarantined messages: %w", mapError(err))
	}
	return out, nil
}
