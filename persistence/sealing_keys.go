package persistence

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
)

// ErrKeyMismatch means the database holds values sealed under a master key
// id whose key is not the one this node has: another checkout's dev key,
// or a BRIDGE_MASTER_KEY that changed without a rotation.
var ErrKeyMismatch = errors.New("the master key does not match the database")

// CheckSealingKeys compares the node's master keys with the fingerprints
// the database recorded for their ids (table sealing_keys) and records the
// current key's fingerprint when its id has none. A database sealed before
// the fingerprints existed is checked by opening one system identity
// sealed under the current key id. It fails with ErrKeyMismatch, naming
// the key id, when a key does not match; it never reads or logs a key.
func (s *Store) CheckSealingKeys(ctx context.Context) error { return s.checkSealingKeys(ctx, true) }

// VerifySealingKeys is CheckSealingKeys for a check that writes nothing:
// a key id without a fingerprint is checked by opening a system identity
// only, and not recorded. A database not migrated yet passes.
func (s *Store) VerifySealingKeys(ctx context.Context) error {
	var migrated bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('sealing_keys') IS NOT NULL AND to_regclass('system_identities') IS NOT NULL`).Scan(&migrated); err != nil {
		return fmt.Errorf("check master keys: %w", mapError(err))
	}
	if !migrated {
		return nil
	}
	return s.checkSealingKeys(ctx, false)
}

func (s *Store) checkSealingKeys(ctx context.Context, record bool) error {
	ids := make([]string, 0, len(s.sealer.fingerprints))
	for id := range s.sealer.fingerprints {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		want := s.sealer.fingerprints[id]
		var stored []byte
		err := s.pool.QueryRow(ctx, `SELECT fingerprint FROM sealing_keys WHERE key_id = $1`, id).Scan(&stored)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if id != s.sealer.current {
				continue
			}
			if err := s.probeKey(ctx, id); err != nil {
				return err
			}
			if !record {
				continue
			}
			if _, err := s.pool.Exec(ctx, `INSERT INTO sealing_keys (key_id, fingerprint) VALUES ($1, $2)
				ON CONFLICT (key_id) DO NOTHING`, id, want); err != nil {
				return fmt.Errorf("record master key %s: %w", id, mapError(err))
			}
			// Another node may have recorded its key at the same moment.
			if err := s.pool.QueryRow(ctx, `SELECT fingerprint FROM sealing_keys WHERE key_id = $1`, id).Scan(&stored); err != nil {
				return fmt.Errorf("check master key %s: %w", id, mapError(err))
			}
		case err != nil:
			return fmt.Errorf("check master key %s: %w", id, mapError(err))
		}
		if !hmac.Equal(stored, want) {
			return fmt.Errorf("check master key %s: %w", id, ErrKeyMismatch)
		}
	}
	return nil
}

// probeKey opens one system identity sealed under key id, if there is one:
// a database sealed before sealing_keys existed has no fingerprint to
// compare.
func (s *Store) probeKey(ctx context.Context, id string) error {
	var (
		role    SystemRole
		address string
		v       = Sealed{KeyID: id}
	)
	err := s.pool.QueryRow(ctx, `SELECT role, address, key_nonce, key_ciphertext FROM system_identities
		WHERE key_id = $1 ORDER BY role LIMIT 1`, id).Scan(&role, &address, &v.Nonce, &v.Ciphertext)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check master key %s: %w", id, mapError(err))
	}
	if _, err := s.sealer.Open(v, systemKeyAAD(role, address)); err != nil {
		if errors.Is(err, ErrDecrypt) {
			return fmt.Errorf("check master key %s: %w", id, ErrKeyMismatch)
		}
		return fmt.Errorf("check master key %s: %w", id, err)
	}
	return nil
}
