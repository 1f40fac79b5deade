package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MaxTombstoneReplies bounds the conversations one tombstone answers.
const MaxTombstoneReplies = 1000

// The tombstones' sealed keys are re-encrypted by Reseal like the bridges'
// own; they keep the additional data of the rows they came from.
func init() {
	sealedColumns = append(sealedColumns,
		sealedColumn{
			table: "bridge_tombstones", key: "bridge_id::text, address", keyID: "key_id", nonce: "key_nonce", ciphertext: "key_ciphertext",
			where: "bridge_id = $4::uuid AND address = $5",
			aad:   func(k []string) []byte { return bridgeKeyAAD(k[0], k[1]) },
		},
		sealedColumn{
			table: "tombstone_conversations", key: "bridge_id::text, topic", keyID: "key_id", nonce: "key_nonce", ciphertext: "key_ciphertext",
			where: "bridge_id = $4::uuid AND topic = $5",
			aad:   func(k []string) []byte { return conversationKeyAAD(k[0], k[1]) },
		})
}

// SetTombstoneFor makes DeleteBridge leave a tombstone that lives for d;
// 0 (the default) deletes the keys with the bridge.
func (s *Store) SetTombstoneFor(d time.Duration) { s.tombstoneFor.Store(int64(d)) }

// tombstone copies the sealed key and conversations of a bridge of the
// account into the tombstone tables, in the transaction that deletes it.
func (s *Store) tombstone(ctx context.Context, tx pgx.Tx, accountID, bridgeID string) error {
	d := time.Duration(s.tombstoneFor.Load())
	if d <= 0 {
		return nil
	}
	tag, err := tx.Exec(ctx, `INSERT INTO bridge_tombstones (bridge_id, address, key_id, key_nonce, key_ciphertext, expires_at)
		SELECT id, address, key_id, key_nonce, key_ciphertext, now() + make_interval(secs => $3)
		FROM bridges WHERE id = $1 AND account_id = $2
		ON CONFLICT DO NOTHING`, bridgeID, accountID, d.Seconds())
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO tombstone_conversations (bridge_id, topic, peer_address, created_ns, key_id, key_nonce, key_ciphertext)
		SELECT bridge_id, topic, peer_address, created_ns, key_id, key_nonce, key_ciphertext
		FROM conversations WHERE bridge_id = $1`, bridgeID)
	return err
}

// Tombstone is a deleted bridge that still answers, with the topics it
// listens on: its invite topic is derived from Address.
type Tombstone struct {
	BridgeID string
	Address  string
	// Topics are the conversation topics the bridge had.
	Topics    []string
	DeletedAt time.Time
	ExpiresAt time.Time
}

// LiveTombstones returns every tombstone that has not expired, with its
// conversation topics, in two queries.
func (s *Store) LiveTombstones(ctx context.Context) ([]Tombstone, error) {
	rows, err := s.pool.Query(ctx, `SELECT bridge_id::text, address, deleted_at, expires_at FROM bridge_tombstones
		WHERE expires_at > now() ORDER BY bridge_id`)
	if err != nil {
		return nil, fmt.Errorf("load tombstones: %w", mapError(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Tombstone, error) {
		var t Tombstone
		err := r.Scan(&t.BridgeID, &t.Address, &t.DeletedAt, &t.ExpiresAt)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("load tombstones: %w", mapError(err))
	}
	if len(list) == 0 {
		return nil, nil
	}
	byID := make(map[string]*Tombstone, len(list))
	for i := range list {
		byID[list[i].BridgeID] = &list[i]
	}
	trows, err := s.pool.Query(ctx, `SELECT c.bridge_id::text, c.topic FROM tombstone_conversations c
		JOIN bridge_tombstones t ON t.bridge_id = c.bridge_id WHERE t.expires_at > now()`)
	if err != nil {
		return nil, fmt.Errorf("load tombstone topics: %w", mapError(err))
	}
	defer trows.Close()
	for trows.Next() {
		var id, topic string
		if err := trows.Scan(&id, &topic); err != nil {
			return nil, fmt.Errorf("load tombstone topics: %w", mapError(err))
		}
		if t := byID[id]; t != nil {
			t.Topics = append(t.Topics, topic)
		}
	}
	if err := trows.Err(); err != nil {
		return nil, fmt.Errorf("load tombstone topics: %w", mapError(err))
	}
	return list, nil
}

// TombstoneKey opens the key bundle of a live tombstone.
func (s *Store) TombstoneKey(ctx context.Context, bridgeID string) ([]byte, error) {
	if !validID(bridgeID) {
		return nil, fmt.Errorf("load tombstone key: %w", ErrNotFound)
	}
	var (
		address string
		sealed  Sealed
	)
	err := s.pool.QueryRow(ctx, `SELECT address, key_id, key_nonce, key_ciphertext FROM bridge_tombstones
		WHERE bridge_id = $1 AND expires_at > now()`, bridgeID).Scan(&address, &sealed.KeyID, &sealed.Nonce, &sealed.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("load tombstone key %s: %w", bridgeID, mapError(err))
	}
	bundle, err := s.sealer.Open(sealed, bridgeKeyAAD(bridgeID, address))
	if err != nil {
		return nil, fmt.Errorf("load tombstone key %s: %w", bridgeID, err)
	}
	return bundle, nil
}

// TombstoneConversation opens one conversation a tombstone kept.
func (s *Store) TombstoneConversation(ctx context.Context, bridgeID, topic string) (Conversation, error) {
	if !validID(bridgeID) {
		return Conversation{}, fmt.Errorf("load tombstone conversation: %w", ErrNotFound)
	}
	c := Conversation{BridgeID: bridgeID, Topic: topic}
	var sealed Sealed
	err := s.pool.QueryRow(ctx, `SELECT peer_address, created_ns, key_id, key_nonce, key_ciphertext FROM tombstone_conversations
		WHERE bridge_id = $1 AND topic = $2`, bridgeID, topic).Scan(&c.PeerAddress, &c.CreatedNs, &sealed.KeyID, &sealed.Nonce, &sealed.Ciphertext)
	if err != nil {
		return Conversation{}, fmt.Errorf("load tombstone conversation: %w", mapError(err))
	}
	if c.KeyMaterial, err = s.sealer.Open(sealed, conversationKeyAAD(bridgeID, topic)); err != nil {
		return Conversation{}, fmt.Errorf("load tombstone conversation: %w", err)
	}
	return c, nil
}

// ClaimTombstoneReply records that the tombstone answers the conversation
// on topic and reports whether this caller is the first: the line goes
// out once per conversation, whichever node saw the message. A tombstone
// that answered MaxTombstoneReplies conversations answers no more.
func (s *Store) ClaimTombstoneReply(ctx context.Context, bridgeID, topic string) (bool, error) {
	if !validID(bridgeID) {
		return false, fmt.Errorf("claim tombstone reply: %w", ErrNotFound)
	}
	var claimed bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		// The tombstone row is the lock that makes the count exact.
		if err := tx.QueryRow(ctx, `SELECT 1 FROM bridge_tombstones WHERE bridge_id = $1 AND expires_at > now() FOR UPDATE`,
			bridgeID).Scan(&one); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO tombstone_replies (bridge_id, topic)
			SELECT $1, $2 WHERE (SELECT count(*) FROM tombstone_replies WHERE bridge_id = $1) < $3
			ON CONFLICT DO NOTHING`, bridgeID, topic, MaxTombstoneReplies)
		claimed = err == nil && tag.RowsAffected() == 1
		return err
	})
	if err = mapError(err); errors.Is(err, ErrNotFound) {
		return false, nil // expired meanwhile: no answer
	}
	if err != nil {
		return false, fmt.Errorf("claim tombstone reply: %w", err)
	}
	return claimed, nil
}

// PurgeTombstones deletes the tombstones that expired, and with them their
// keys and conversations, and returns how many it deleted.
func (s *Store) PurgeTombstones(ctx context.Context) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM bridge_tombstones WHERE expires_at <= now()`)
	if err != nil {
		return 0, fmt.Errorf("purge tombstones: %w", mapError(err))
	}
	return int(tag.RowsAffected()), nil
}
