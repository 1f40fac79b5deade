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

// ContactPublished is one record of SetContactsPublished: the bridge
// whose identity published the contact bundle of Digest.
type ContactPublished struct {
	BridgeID string
	Digest   []byte
}

// SetContactsPublished is SetContactPublished for many bridges in one
// statement, which commits without waiting for the disk; the errors are in
// the order of ps, each what SetContactPublished returns for its record. A
// bridge named twice keeps the digest of its last record, as two calls
// one after the other leave it.
func (s *Store) SetContactsPublished(ctx context.Context, ps []ContactPublished) []error {
	out := make([]error, len(ps))
	last := map[string]int{} // canonical id -> its last record
	var ids []string
	var digests [][]byte
	for i, p := range ps {
		if !validID(p.BridgeID) {
			out[i] = fmt.Errorf("record published contact: %w", ErrNotFound)
			continue
		}
		c := canonicalID(p.BridgeID)
		if k, ok := last[c]; ok {
			digests[k] = p.Digest
			continue
		}
		last[c] = len(ids)
		ids, digests = append(ids, c), append(digests, p.Digest)
	}
	if len(ids) == 0 {
		return out
	}
	// Only bridges that exist are written: one deleted meanwhile is
	// ErrNotFound for its record alone, not a foreign-key error for all.
	rows, err := s.pool.Query(ctx, `
		WITH up AS (
			INSERT INTO contact_publications AS p (bridge_id, digest)
			SELECT u.id, u.digest FROM unnest($1::uuid[], $2::bytea[]) AS u(id, digest)
			WHERE EXISTS (SELECT 1 FROM bridges b WHERE b.id = u.id)
			ORDER BY u.id
			ON CONFLICT (bridge_id) DO UPDATE SET digest = EXCLUDED.digest, published_at = now()
			RETURNING p.bridge_id::text)
		SELECT up.bridge_id FROM up, `+asyncCommit, ids, digests)
	written := map[string]bool{}
	if err == nil {
		for rows.Next() {
			var id string
			if err = rows.Scan(&id); err != nil {
				break
			}
			written[id] = true
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	// A failed statement wrote nothing; each bridge's record is written
	// again on its own, so a bridge deleted after the statement's snapshot
	// saw it (its foreign key fails) is ErrNotFound for its own records
	// alone, as is any other error of one record.
	var alone []error
	if err != nil {
		alone = make([]error, len(ids))
		for k := range ids {
			alone[k] = s.SetContactPublished(ctx, ids[k], digests[k])
		}
	}
	for i, p := range ps {
		if out[i] != nil {
			continue
		}
		switch {
		case alone != nil:
			out[i] = alone[last[canonicalID(p.BridgeID)]]
		case !written[canonicalID(p.BridgeID)]:
			out[i] = fmt.Errorf("record published contact: %w", ErrNotFound)
		}
	}
	return out
}

// ActivationStateResult is the answer to one bridge of ActivationStates:
// its state, or the error ActivationState would have returned for it.
type ActivationStateResult struct {
	State ActivationState
	Err   error
}

// ActivationStates is ActivationState for many bridges in one round trip:
// a node that activates thousands of identities at its start reads their
// states in a few statements instead of five each. The answers are in the
// order of bridgeIDs, each what ActivationState answers for its bridge.
func (s *Store) ActivationStates(ctx context.Context, bridgeIDs []string) []ActivationStateResult {
	out := make([]ActivationStateResult, len(bridgeIDs))
	var ids []string
	want := map[string][]int{} // canonical id -> its places in out
	for i, id := range bridgeIDs {
		if !validID(id) {
			out[i].Err = fmt.Errorf("load key bundle: %w", ErrNotFound)
			continue
		}
		c := canonicalID(id)
		if _, ok := want[c]; !ok {
			ids = append(ids, c)
		}
		want[c] = append(want[c], i)
	}
	if len(ids) == 0 {
		return out
	}
	var batch pgx.Batch
	batch.Queue(`SELECT id::text, address, key_id, key_nonce, key_ciphertext, status FROM bridges WHERE id = ANY($1::uuid[])`, ids)
	batch.Queue(`
		SELECT bridge_id, topic, peer_address, conversation_id, metadata, created_ns, key_id, key_nonce, key_ciphertext, created_at
		FROM conversations WHERE bridge_id = ANY($1::uuid[]) ORDER BY bridge_id, created_ns, topic`, ids)
	batch.Queue(`SELECT bridge_id::text, topic, last_timestamp_ns, last_digest, updated_at FROM cursors WHERE bridge_id = ANY($1::uuid[])`, ids)
	batch.Queue(`SELECT bridge_id::text, digest FROM contact_publications WHERE bridge_id = ANY($1::uuid[])`, ids)
	states, err := s.activationStates(ctx, &batch, ids)
	for c, places := range want {
		for _, i := range places {
			switch {
			case err != nil:
				out[i].Err = err
			case states[c] == nil:
				out[i].Err = fmt.Errorf("load key bundle of bridge %s: %w", bridgeIDs[i], ErrNotFound)
			default:
				out[i] = *states[c]
			}
		}
	}
	return out
}

// activationStates runs the batch of ActivationStates and returns what it
// read by canonical bridge id; a bridge that is not there is absent. An
// error is the whole batch's.
func (s *Store) activationStates(ctx context.Context, batch *pgx.Batch, ids []string) (map[string]*ActivationStateResult, error) {
	br := s.pool.SendBatch(ctx, batch)
	defer br.Close()
	states := make(map[string]*ActivationStateResult, len(ids))
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("load key bundles: %w", mapError(err))
	}
	for rows.Next() {
		var (
			id     string
			sealed Sealed
			st     ActivationState
		)
		if err := rows.Scan(&id, &st.Address, &sealed.KeyID, &sealed.Nonce, &sealed.Ciphertext, &st.Status); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load key bundles: %w", mapError(err))
		}
		r := &ActivationStateResult{}
		if st.KeyBundle, err = s.sealer.Open(sealed, bridgeKeyAAD(id, st.Address)); err != nil {
			r.Err = fmt.Errorf("load key bundle of bridge %s: %w", id, err)
		}
		st.Cursors = map[string]Cursor{}
		r.State = st
		states[id] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load key bundles: %w", mapError(err))
	}
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("load conversations: %w", mapError(err))
	}
	for rows.Next() {
		var (
			c      Conversation
			sealed Sealed
		)
		if err := rows.Scan(&c.BridgeID, &c.Topic, &c.PeerAddress, &c.ConversationID, &c.Metadata, &c.CreatedNs,
			&sealed.KeyID, &sealed.Nonce, &sealed.Ciphertext, &c.CreatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load conversations: %w", mapError(err))
		}
		r := states[canonicalID(c.BridgeID)]
		if r == nil || r.Err != nil {
			continue
		}
		if c.KeyMaterial, err = s.sealer.Open(sealed, conversationKeyAAD(c.BridgeID, c.Topic)); err != nil {
			r.Err = fmt.Errorf("load conversation %s of bridge %s: %w", c.Topic, c.BridgeID, err)
			continue
		}
		r.State.Conversations = append(r.State.Conversations, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load conversations: %w", mapError(err))
	}
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("load cursors: %w", mapError(err))
	}
	for rows.Next() {
		var (
			id string
			c  Cursor
		)
		if err := rows.Scan(&id, &c.Topic, &c.LastTimestampNs, &c.LastDigest, &c.UpdatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load cursors: %w", mapError(err))
		}
		if r := states[id]; r != nil {
			r.State.Cursors[c.Topic] = c
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load cursors: %w", mapError(err))
	}
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("load published contacts: %w", mapError(err))
	}
	for rows.Next() {
		var (
			id     string
			digest []byte
		)
		if err := rows.Scan(&id, &digest); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load published contacts: %w", mapError(err))
		}
		if r := states[id]; r != nil {
			r.State.ContactDigest = digest
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load published contacts: %w", mapError(err))
	}
	return states, nil
}
