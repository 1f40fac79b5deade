package persistence

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// LiveTarget is what a reply to a live message needs: the conversation
// it came in and its sender, and the id of the reply it already has.
type LiveTarget struct {
	Topic         string
	SenderAddress string
	// ReplyMessageID is the message id of the message's one reply; empty
	// when it has none.
	ReplyMessageID string
}

// LiveTarget returns the conversation and sender of a bridge's live
// message, one still in the stream or already acknowledged.
func (s *Store) LiveTarget(ctx context.Context, bridgeID, messageID string) (LiveTarget, error) {
	if !validID(bridgeID) || messageID == "" || len(messageID) > 256 {
		return LiveTarget{}, fmt.Errorf("load live message: %w", ErrUnknownLiveMessage)
	}
	var t LiveTarget
	var reply *string
	err := s.pool.QueryRow(ctx, `SELECT topic, sender_address, reply_message_id FROM live_messages
		WHERE bridge_id = $1 AND message_id = $2`, bridgeID, messageID).Scan(&t.Topic, &t.SenderAddress, &reply)
	if errors.Is(err, pgx.ErrNoRows) {
		return LiveTarget{}, fmt.Errorf("load live message: %w", ErrUnknownLiveMessage)
	}
	if err != nil {
		return LiveTarget{}, fmt.Errorf("load live message: %w", mapError(err))
	}
	if reply != nil {
		t.ReplyMessageID = *reply
	}
	return t, nil
}

// EnqueueLiveReply puts r, the reply to a bridge's live message
// messageID, in the outbox and records it as message replyMessageID sent
// from a live consumer to the message's sender, all in one transaction. A
// message gets one reply: a second one is ErrAlreadyReplied, with the
// first one's id returned. The grain that holds the bridge publishes it.
func (s *Store) EnqueueLiveReply(ctx context.Context, messageID string, r Reply, replyMessageID string) (string, error) {
	if !validID(r.BridgeID) {
		return "", fmt.Errorf("enqueue live reply: %w", ErrUnknownLiveMessage)
	}
	var existing string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var reply *string
		var sender string
		// The bridge's row is locked first, as a delete of the bridge
		// locks it before the live messages its cascade removes: in the
		// other order the two would deadlock. insertReply locks the row
		// again, which it already holds.
		err := tx.QueryRow(ctx, `SELECT m.reply_message_id, m.sender_address
			FROM (SELECT id FROM bridges WHERE id = $1 FOR KEY SHARE) b
			JOIN live_messages m ON m.bridge_id = b.id AND m.message_id = $2
			FOR UPDATE OF m`, r.BridgeID, messageID).Scan(&reply, &sender)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrUnknownLiveMessage
		}
		if err != nil {
			return err
		}
		if reply != nil {
			existing = *reply
			return ErrAlreadyReplied
		}
		id, err := s.insertReply(ctx, tx, r)
		if err != nil {
			return err
		}
		if err := recordOutboxSend(ctx, tx, r.BridgeID, replyMessageID, SendLive, sender, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE live_messages SET reply_id = $3, reply_message_id = $4, updated_at = now()
			WHERE bridge_id = $1 AND message_id = $2`, r.BridgeID, messageID, id, replyMessageID)
		return err
	})
	switch {
	case errors.Is(err, ErrAlreadyReplied):
		return existing, fmt.Errorf("enqueue live reply: %w", ErrAlreadyReplied)
	case errors.Is(err, ErrUnknownLiveMessage):
		return "", fmt.Errorf("enqueue live reply: %w", ErrUnknownLiveMessage)
	case err != nil:
		return "", fmt.Errorf("enqueue live reply: %w", mapError(err))
	}
	return replyMessageID, nil
}

// ConversationByTopic returns one conversation of a bridge.
func (s *Store) ConversationByTopic(ctx context.Context, bridgeID, topic string) (Conversation, error) {
	if !validID(bridgeID) {
		return Conversation{}, fmt.Errorf("load conversation: %w", ErrNotFound)
	}
	var (
		c      Conversation
		sealed Sealed
	)
	err := s.pool.QueryRow(ctx, `
		SELECT bridge_id, topic, peer_address, conversation_id, metadata, created_ns, key_id, key_nonce, key_ciphertext, created_at
		FROM conversations WHERE bridge_id = $1 AND topic = $2`, bridgeID, topic).Scan(&c.BridgeID, &c.Topic, &c.PeerAddress,
		&c.ConversationID, &c.Metadata, &c.CreatedNs, &sealed.KeyID, &sealed.Nonce, &sealed.Ciphertext, &c.CreatedAt)
	if err != nil {
		return Conversation{}, fmt.Errorf("load conversation: %w", mapError(err))
	}
	if c.KeyMaterial, err = s.sealer.Open(sealed, conversationKeyAAD(c.BridgeID, c.Topic)); err != nil {
		return Conversation{}, fmt.Errorf("load conversation %s of bridge %s: %w", topic, bridgeID, err)
	}
	return c, nil
}

// liveRevokedKeyPrefix marks a revoked API key's id among the payloads of
// LiveNotifyChannel; the other payloads are bridge ids.
const liveRevokedKeyPrefix = "revoked-key:"

// LiveEvent is one announcement on LiveNotifyChannel: a new live message
// of a bridge, or a revoked API key.
type LiveEvent struct {
	// BridgeID is the bridge with a new live message.
	BridgeID string
	// RevokedKeyID is the API key just revoked, whose live sockets close.
	RevokedKeyID string
}

// ListenLive calls fn with every event announced on LiveNotifyChannel, on
// one connection of its own, until ctx ends or the connection fails; the
// caller listens again after a failure, and must assume it missed
// announcements. ready is called once listening.
func (s *Store) ListenLive(ctx context.Context, ready func(), fn func(LiveEvent)) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("listen live: %w", mapError(err))
	}
	// The connection leaves the pool: no other query may get a
	// listening connection.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+LiveNotifyChannel); err != nil {
		return fmt.Errorf("listen live: %w", mapError(err))
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("listen live: %w", err)
		}
		if key, ok := strings.CutPrefix(n.Payload, liveRevokedKeyPrefix); ok {
			fn(LiveEvent{RevokedKeyID: key})
			continue
		}
		fn(LiveEvent{BridgeID: n.Payload})
	}
}
