package persistence

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"
)

// maxQuarantineReason bounds the stored reason; longer reasons are cut.
const maxQuarantineReason = 2000

// maxQuarantineTopic bounds the stored topic; longer topics are cut.
const maxQuarantineTopic = 512

// QuarantinePrefixBytes is how much of a quarantined input is kept: its
// first bytes, next to its SHA-256 and its size.
const QuarantinePrefixBytes = 256

// DefaultQuarantineRows is how many quarantined messages a bridge keeps
// unless SetQuarantineRows says otherwise; older ones are deleted as new
// ones come.
const DefaultQuarantineRows = 1000

// QuarantinedMessage is input that could not be handled, kept for an
// operator: the reason, the input's hash and size, and its first bytes.
type QuarantinedMessage struct {
	ID       int64
	BridgeID string
	Topic    string
	// Envelope is the first QuarantinePrefixBytes of the input.
	Envelope []byte
	// Hash is the SHA-256 of the whole input; nil when no input was kept.
	Hash []byte
	// Size is the length of the whole input.
	Size      int
	Reason    string
	CreatedAt time.Time
}

// SetQuarantineRows sets how many quarantined messages each bridge keeps
// (at least 1). Call it before the store is used.
func (s *Store) SetQuarantineRows(n int) {
	s.quarantineRows.Store(int64(max(n, 1)))
}

func (s *Store) quarantineCap() int64 {
	if n := s.quarantineRows.Load(); n > 0 {
		return n
	}
	return DefaultQuarantineRows
}

// cutText cuts s to at most n bytes on a rune boundary and makes it valid
// UTF-8, which Postgres text requires.
func cutText(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	// A rune cut in two becomes invalid bytes, which are dropped.
	return strings.ToValidUTF8(s, "")
}

// Quarantine keeps a message that could not be handled (malformed
// envelope, poison message) with the reason: the SHA-256 and the size of
// input and its first QuarantinePrefixBytes, never more, so hostile input
// cannot grow the table. Each bridge keeps its newest rows up to its cap:
// the insert deletes the older ones in the same statement. bridgeID may be
// empty when the message could not be tied to a bridge; such rows share
// one cap.
func (s *Store) Quarantine(ctx context.Context, bridgeID, topic string, input []byte, reason string) error {
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
	reason = cutText(reason, maxQuarantineReason)
	topic = cutText(topic, maxQuarantineTopic)
	var hash []byte
	if len(input) > 0 {
		h := sha256.Sum256(input)
		hash = h[:]
	}
	prefix := input[:min(len(input), QuarantinePrefixBytes)]
	if prefix == nil {
		prefix = []byte{}
	}
	// The statement's snapshot does not see the row it inserts: keeping
	// cap-1 of the rows before it keeps cap in all.
	same := "bridge_id = $1"
	if bridge == nil {
		same = "bridge_id IS NULL"
	}
	_, err := s.pool.Exec(ctx, `WITH ins AS (
			INSERT INTO quarantined_messages (bridge_id, topic, envelope, envelope_hash, envelope_size, reason)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id)
		DELETE FROM quarantined_messages WHERE `+same+` AND id <= (
			SELECT id FROM quarantined_messages WHERE `+same+` ORDER BY id DESC OFFSET $7 LIMIT 1)`,
		bridge, topic, prefix, hash, len(input), reason, s.quarantineCap()-1)
	if err != nil {
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
	rows, err := s.pool.Query(ctx, `SELECT id, bridge_id::text, topic, envelope, envelope_hash, envelope_size, reason, created_at
		FROM quarantined_messages WHERE bridge_id = $1 ORDER BY id DESC LIMIT $2`, bridgeID, limit)
	if err != nil {
		return nil, fmt.Errorf("load quarantined messages: %w", mapError(err))
	}
	defer rows.Close()
	var out []QuarantinedMessage
	for rows.Next() {
		var q QuarantinedMessage
		if err := rows.Scan(&q.ID, &q.BridgeID, &q.Topic, &q.Envelope, &q.Hash, &q.Size, &q.Reason, &q.CreatedAt); err != nil {
			return nil, fmt.Errorf("load quarantined messages: %w", mapError(err))
		}
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load quarantined messages: %w", mapError(err))
	}
	return out, nil
}
