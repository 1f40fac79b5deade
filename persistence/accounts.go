package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Account is a tenant. Every bridge and API key belongs to one.
type Account struct {
	ID   string
	Name string
	// SystemName is set on accounts the system itself owns, such as the
	// account of bridges created through the relaycc-compatible endpoints.
	SystemName string
	CreatedAt  time.Time
}

// APIKey describes an API key without its secret, which is shown only once,
// when the key is created.
type APIKey struct {
	ID         string
	AccountID  string
	Prefix     string
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// apiKeyTouchInterval is how stale last_used_at may get before a lookup
// writes it again, so that authentication is not a write per request.
const apiKeyTouchInterval = time.Minute

// CreateAccount creates an account and its first API key in one
// transaction, and returns the key's secret, which is not stored.
func (s *Store) CreateAccount(ctx context.Context, name string) (Account, APIKey, string, error) {
	var (
		acct   Account
		key    APIKey
		secret string
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx,
			`INSERT INTO accounts (id, name) VALUES ($1, $2) RETURNING id, name, created_at`,
			newID(), name).Scan(&acct.ID, &acct.Name, &acct.CreatedAt)
		if err != nil {
			return err
		}
		key, secret, err = insertAPIKey(ctx, tx, acct.ID, "default")
		return err
	})
	if err != nil {
		return Account{}, APIKey{}, "", fmt.Errorf("create account: %w", mapError(err))
	}
	return acct, key, secret, nil
}

// EnsureSystemAccount returns the system account named systemName,
// creating it the first time.
func (s *Store) EnsureSystemAccount(ctx context.Context, systemName string) (Account, error) {
	var a Account
	err := s.pool.QueryRow(ctx, `
		INSERT INTO accounts (id, name, system_name) VALUES ($1, $2, $2)
		ON CONFLICT (system_name) DO UPDATE SET updated_at = accounts.updated_at
		RETURNING id, name, system_name, created_at`,
		newID(), systemName).Scan(&a.ID, &a.Name, &a.SystemName, &a.CreatedAt)
	if err != nil {
		return Account{}, fmt.Errorf("ensure system account %s: %w", systemName, mapError(err))
	}
	return a, nil
}

// GetAccount returns the account with the given id.
func (s *Store) GetAccount(ctx context.Context, id string) (Account, error) {
	if !validID(id) {
		return Account{}, fmt.Errorf("get account: %w", ErrNotFound)
	}
	var a Account
	var system *string
	err := s.pool.QueryRow(ctx, `SELECT id, name, system_name, created_at FROM accounts WHERE id = $1`, id).
		Scan(&a.ID, &a.Name, &system, &a.CreatedAt)
	if err != nil {
		return Account{}, fmt.Errorf("get account: %w", mapError(err))
	}
	if system != nil {
		a.SystemName = *system
	}
	return a, nil
}

// ListAccounts returns a page of all accounts, oldest first, and the cursor
// of the next page ("" after the last).
func (s *Store) ListAccounts(ctx context.Context, page Page) ([]Account, string, error) {
	after, err := uuidCursor(page.After)
	if err != nil {
		return nil, "", fmt.Errorf("list accounts: %w", err)
	}
	limit := page.limit()
	rows, err := s.pool.Query(ctx, `
		SELECT id, name, coalesce(system_name, ''), created_at FROM accounts
		WHERE id > $1 ORDER BY id LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list accounts: %w", mapError(err))
	}
	accounts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) {
		var a Account
		err := r.Scan(&a.ID, &a.Name, &a.SystemName, &a.CreatedAt)
		return a, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list accounts: %w", mapError(err))
	}
	next := ""
	if len(accounts) > limit {
		accounts = accounts[:limit]
		next = accounts[limit-1].ID
	}
	return accounts, next, nil
}

// AccountByAPIKey returns the account that owns the live (not revoked) API
// key secret, and the key. The key is looked up by its hash.
func (s *Store) AccountByAPIKey(ctx context.Context, secret string) (Account, APIKey, error) {
	var (
		a      Account
		k      APIKey
		system *string
	)
	err := s.pool.QueryRow(ctx, `
		SELECT a.id, a.name, a.system_name, a.created_at,
		       k.id, k.account_id, k.prefix, k.name, k.created_at, k.last_used_at, k.revoked_at
		FROM api_keys k JOIN accounts a ON a.id = k.account_id
		WHERE k.key_hash = $1 AND k.revoked_at IS NULL`, HashToken(secret)).
		Scan(&a.ID, &a.Name, &system, &a.CreatedAt,
			&k.ID, &k.AccountID, &k.Prefix, &k.Name, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
	if err != nil {
		return Account{}, APIKey{}, fmt.Errorf("find api key: %w", mapError(err))
	}
	if system != nil {
		a.SystemName = *system
	}
	if k.LastUsedAt == nil || time.Since(*k.LastUsedAt) > apiKeyTouchInterval {
		now := time.Now()
		if _, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = $2 WHERE id = $1`, k.ID, now); err != nil {
			return Account{}, APIKey{}, fmt.Errorf("touch api key: %w", mapError(err))
		}
		k.LastUsedAt = &now
	}
	return a, k, nil
}

// CreateAPIKey adds an API key to an account and returns its secret, which
// is not stored.
func (s *Store) CreateAPIKey(ctx context.Context, accountID, name string) (APIKey, string, error) {
	if !validID(accountID) {
		return APIKey{}, "", fmt.Errorf("create api key: %w", ErrNotFound)
	}
	k, secret, err := insertAPIKey(ctx, s.pool, accountID, name)
	if err != nil {
		return APIKey{}, "", fmt.Errorf("create api key: %w", mapError(err))
	}
	return k, secret, nil
}

// ListAPIKeys returns every key of an account, revoked ones included.
func (s *Store) ListAPIKeys(ctx context.Context, accountID string) ([]APIKey, error) {
	if !validID(accountID) {
		return nil, fmt.Errorf("list api keys: %w", ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, account_id, prefix, name, created_at, last_used_at, revoked_at
		FROM api_keys WHERE account_id = $1 ORDER BY id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", mapError(err))
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) {
		var k APIKey
		err := r.Scan(&k.ID, &k.AccountID, &k.Prefix, &k.Name, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", mapError(err))
	}
	return keys, nil
}

// RevokeAPIKey revokes a key of the account and announces it on
// LiveNotifyChannel, in the same transaction, so that every node closes
// the live sockets opened with it. Revoking a key of another account, or
// an unknown or already revoked key, is ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, accountID, keyID string) error {
	if !validID(accountID) || !validID(keyID) {
		return fmt.Errorf("revoke api key: %w", ErrNotFound)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE api_keys SET revoked_at = now()
			WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL`, keyID, accountID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, LiveNotifyChannel, liveRevokedKeyPrefix+canonicalID(keyID))
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke api key: %w", mapError(err))
	}
	return nil
}

// RevokedAPIKeys returns those of the key ids that are revoked or no
// longer exist: a node checks the keys of its open live sockets with it,
// in case it missed an announcement.
func (s *Store) RevokedAPIKeys(ctx context.Context, keyIDs []string) ([]string, error) {
	var valid []string
	for _, id := range keyIDs {
		if validID(id) {
			valid = append(valid, canonicalID(id))
		}
	}
	if len(valid) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT want::text FROM unnest($1::uuid[]) AS want
		WHERE NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.id = want AND k.revoked_at IS NULL)`, valid)
	if err != nil {
		return nil, fmt.Errorf("check api keys: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("check api keys: %w", mapError(err))
	}
	return out, nil
}

// querier is what a pool and a transaction have in common.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func insertAPIKey(ctx context.Context, q querier, accountID, name string) (APIKey, string, error) {
	secret := newToken(APIKeyPrefix)
	k := APIKey{ID: newID(), AccountID: accountID, Prefix: tokenDisplayPrefix(secret), Name: name}
	err := q.QueryRow(ctx, `
		INSERT INTO api_keys (id, account_id, key_hash, prefix, name) VALUES ($1, $2, $3, $4, $5)
		RETURNING created_at`, k.ID, accountID, HashToken(secret), k.Prefix, name).Scan(&k.CreatedAt)
	if err != nil {
		return APIKey{}, "", err
	}
	return k, secret, nil
}
