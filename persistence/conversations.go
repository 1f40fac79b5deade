package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Conversation is a V2 conversation a bridge takes part in. KeyMaterial is
// the conversation's secret; it is stored sealed.
type Conversation struct {
	BridgeID       string
	Topic          string
	PeerAddress    string
	ConversationID string
	Metadata       map[string]string
	CreatedNs      int64
	KeyMaterial    []byte
	CreatedAt      time.Time
}

// SaveConversation stores a conversation of a bridge. Saving a topic the
// bridge already has keeps the stored one.
func (s *Store) SaveConversation(ctx context.Context, c Conversation) error {
	if !validID(c.BridgeID) {
		return fmt.Errorf("save conversation: %w", ErrNotFound)
	}
	sealed, err := s.sealer.Seal(c.KeyMaterial, conversationKeyAAD(c.BridgeID, c.Topic))
	if err != nil {
		return fmt.Errorf("save conversation: %w", err)
	}
	meta := c.Metadata
	if meta == nil {
		meta = map[string]string{}
	}
	_, err = s.pool.Exec(ctx, `
		INSERT INTO conversations (bridge_id, topic, peer_address, conversation_id, metadata, created_ns, key_id, key_nonce, key_ciphertext)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (bridge_id, topic) DO NOTHING`,
		c.BridgeID, c.Topic, c.PeerAddress, c.ConversationID, meta, c.CreatedNs, sealed.KeyID, sealed.Nonce, sealed.Ciphertext)
	if err != nil {
		return fmt.Errorf("save conversation: %w", mapError(err))
	}
	return nil
}

// Conversations returns every conversation of a bridge with its key
// material decrypted, oldest first.
func (s *Store) Conversations(ctx context.Context, bridgeID string) ([]Conversation, error) {
	if !validID(bridgeID) {
		return nil, fmt.Errorf("load conversations: %w", ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, conversationsQuery, bridgeID)
	if err != nil {
		return nil, fmt.Errorf("load conversations: %w", mapError(err))
	}
	return s.scanConversations(rows, bridgeID)
}

// conversationsQuery selects a bridge's conversations ($1), oldest first.
const conversationsQuery = `
		SELECT bridge_id, topic, peer_address, conversation_id, metadata, created_ns, key_id, key_nonce, key_ciphertext, created_at
		FROM conversations WHERE bridge_id = $1 ORDER BY created_ns, topic`

// scanConversations reads the rows of conversationsQuery, decrypting each
// conversation's key material, and closes them.
func (s *Store) scanConversations(rows pgx.Rows, bridgeID string) ([]Conversation, error) {
	defer rows.Close()
	var out []Conversation
	for rows.Next() {
		var (
			c      Conversation
			sealed Sealed
		)
		if err := rows.Scan(&c.BridgeID, &c.Topic, &c.PeerAddress, &c.ConversationID, &c.Metadata, &c.CreatedNs,
			&sealed.KeyID, &sealed.Nonce, &sealed.Ciphertext, &c.CreatedAt); err != nil {
			return nil, fmt.Errorf("load conversations: %w", mapError(err))
		}
		var err error
		c.KeyMaterial, err = s.sealer.Open(sealed, conversationKeyAAD(c.BridgeID, c.Topic))
		if err != nil {
			return nil, fmt.Errorf("load conversation %s of bridge %s: %w", c.Topic, bridgeID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load conversations: %w", mapError(err))
	}
	return out, nil
}
