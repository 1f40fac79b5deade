package persistence

// What an activation reads of its bridge, in one round trip, and the
// contact bundle its identity last published (migration 0012).

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ActivationState is what an identity's activation reads of its bridge
// once it holds its lease.
type ActivationState struct {
	// KeyBundle is the bridge's private key bundle, opened.
	KeyBundle []byte
	// Address is the bridge's address, which the sealed bundle is bound
	// to.
	Address string
	// Conversations are the bridge's conversations, oldest first, with
	// their key material opened.
	Conversations []Conversation
	// Cursors are the bridge's cursors, by topic.
	Cursors map[string]Cursor
	// ContactDigest is the digest SetContactPublished last recorded for
	// the bridge; nil if none.
	ContactDigest []byte
	// Status is the bridge's status: an activation that finds it
	// disabled stops and releases its lease.
	Status BridgeStatus
}

// ActivationState reads, in one round trip, the key bundle, the
// conversations, the cursors, the published contact's digest and the
// status of a bridge: what KeyBundle, Conversations and Cursors return,
// each under the same error.
func (s *Store) ActivationState(ctx context.Context, bridgeID string) (ActivationState, error) {
	if !validID(bridgeID) {
		return ActivationState{}, fmt.Errorf("load key bundle: %w", ErrNotFound)
	}
	bridgeID = canonicalID(bridgeID)
	var batch pgx.Batch
	batch.Queue(keyBundleQuery, bridgeID)
	batch.Queue(conversationsQuery, bridgeID)
	batch.Queue(cursorsQuery, bridgeID)
	batch.Queue(`SELECT digest FROM contact_publications WHERE bridge_id = $1`, bridgeID)
	batch.Queue(`SELECT status FROM bridges WHERE id = $1`, bridgeID)
	br := s.pool.SendBatch(ctx, &batch)
	defer br.Close()

	var st ActivationState
	var err error
	if st.KeyBundle, st.Address, err = s.scanKeyBundle(br.QueryRow(), bridgeID); err != nil {
		return ActivationState{}, err
	}
	rows, err := br.Query()
	if err != nil {
		return ActivationState{}, fmt.Errorf("load conversations: %w", mapError(err))
	}
	if st.Conversations, err = s.scanConversations(rows, bridgeID); err != nil {
		return ActivationState{}, err
	}
	if rows, err = br.Query(); err != nil {
		return ActivationState{}, fmt.Errorf("load cursors: %w", mapError(err))
	}
	if st.Cursors, err = scanCursors(rows); err != nil {
		return ActivationState{}, err
	}
	if err := br.QueryRow().Scan(&st.ContactDigest); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return ActivationState{}, fmt.Errorf("load published contact: %w", mapError(err))
	}
	if err := br.QueryRow().Scan(&st.Status); err != nil {
		return ActivationState{}, fmt.Errorf("load bridge status: %w", mapError(err))
	}
	return st, nil
}

// SetContactPublished records that the bridge's identity published the
// contact bundle whose digest (32 bytes) is given. It is written once per
// activated identity, and commits without waiting for the disk
// (asyncCommit): losing it only publishes the same bundle again.
func (s *Store) SetContactPublished(ctx context.Context, bridgeID string, digest []byte) error {
	if !validID(bridgeID) {
		return fmt.Errorf("record published contact: %w", ErrNotFound)
	}
	_, err := s.pool.Exec(ctx, `
		WITH up AS (
			INSERT INTO contact_publications (bridge_id, digest) VALUES ($1, $2)
			ON CONFLICT (bridge_id) DO UPDATE SET digest = EXCLUDED.digest, published_at = now()
			RETURNING 1)
		SELECT count(*) FROM up, `+asyncCommit, canonicalID(bridgeID), digest)
	if err != nil {
		return fmt.Errorf("record published contact: %w", mapError(err))
	}
	return nil
}
