package persistence

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrSystemAccount means an ordinary account was needed and a system
// account (such as the relaycc account) was named.
var ErrSystemAccount = errors.New("system account")

// MoveBridge moves a bridge into the ordinary account accountID, for an
// operator taking a bridge made by relaycc /signup (owned by the hidden
// relaycc system account) into a /v1 account whose API key then manages
// it. maxBridges, when above 0, is the target's bridge quota
// (ErrQuotaExceeded). A missing bridge or account is ErrNotFound, a system
// account as the target ErrSystemAccount. The bridge keeps its key, its
// secrets and its deliveries.
func (s *Store) MoveBridge(ctx context.Context, bridgeID, accountID string, maxBridges int) (Bridge, error) {
	if !validID(bridgeID) || !validID(accountID) {
		return Bridge{}, fmt.Errorf("move bridge: %w", ErrNotFound)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var system *string
		if err := tx.QueryRow(ctx, `SELECT system_name FROM accounts WHERE id = $1 FOR UPDATE`, accountID).Scan(&system); err != nil {
			return err
		}
		if system != nil {
			return ErrSystemAccount
		}
		var current string
		if err := tx.QueryRow(ctx, `SELECT account_id::text FROM bridges WHERE id = $1 FOR UPDATE`, bridgeID).Scan(&current); err != nil {
			return err
		}
		if current == canonicalID(accountID) {
			return nil
		}
		if maxBridges > 0 {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM bridges WHERE account_id = $1`, accountID).Scan(&n); err != nil {
				return err
			}
			if n >= maxBridges {
				return ErrQuotaExceeded
			}
		}
		_, err := tx.Exec(ctx, `UPDATE bridges SET account_id = $2, updated_at = now() WHERE id = $1`, bridgeID, accountID)
		return err
	})
	if errors.Is(err, ErrSystemAccount) || errors.Is(err, ErrQuotaExceeded) {
		return Bridge{}, fmt.Errorf("move bridge: %w", err)
	}
	if err != nil {
		return Bridge{}, fmt.Errorf("move bridge: %w", mapError(err))
	}
	b, err := s.bridgeWhere(ctx, s.pool, "b.id = $1", bridgeID)
	if err != nil {
		return Bridge{}, fmt.Errorf("move bridge: %w", err)
	}
	return b, nil
}
