package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// WebhookSecret is a Standard Webhooks signing secret of a bridge.
type WebhookSecret struct {
	// Secret is the "whsec_" secret.
	Secret    string
	CreatedAt time.Time
	// ExpiresAt is nil for the current secret; a rotated-out secret stays
	// valid until then.
	ExpiresAt *time.Time
}

func (s *Store) insertWebhookSecret(ctx context.Context, tx pgx.Tx, bridgeID, secret string) error {
	id := newID()
	sealed, err := s.sealer.Seal([]byte(secret), webhookSecretAAD(bridgeID, id))
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO webhook_secrets (id, bridge_id, key_id, nonce, ciphertext) VALUES ($1, $2, $3, $4, $5)`,
		id, bridgeID, sealed.KeyID, sealed.Nonce, sealed.Ciphertext)
	return err
}

// RotateWebhookSecret gives a bridge of the account a new webhook secret and
// returns it. The previous secret stays valid for grace, so receivers can
// switch over; secrets whose grace has ended are deleted.
func (s *Store) RotateWebhookSecret(ctx context.Context, accountID, bridgeID string, grace time.Duration) (string, error) {
	if !validID(accountID) || !validID(bridgeID) {
		return "", fmt.Errorf("rotate webhook secret: %w", ErrNotFound)
	}
	secret := newWebhookSecret()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id string
		if err := tx.QueryRow(ctx, `SELECT id FROM bridges WHERE id = $1 AND account_id = $2 FOR UPDATE`,
			bridgeID, accountID).Scan(&id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM webhook_secrets WHERE bridge_id = $1 AND expires_at <= now()`, bridgeID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE webhook_secrets SET expires_at = now() + make_interval(secs => $2)
			WHERE bridge_id = $1 AND expires_at IS NULL`, bridgeID, grace.Seconds()); err != nil {
			return err
		}
		return s.insertWebhookSecret(ctx, tx, bridgeID, secret)
	})
	if err != nil {
		return "", fmt.Errorf("rotate webhook secret: %w", mapError(err))
	}
	return secret, nil
}

// WebhookSecrets returns the secrets a delivery of the bridge is signed
// with: the current one first, then rotated-out ones still in their grace
// period.
func (s *Store) WebhookSecrets(ctx context.Context, bridgeID string) ([]WebhookSecret, error) {
	if !validID(bridgeID) {
		return nil, fmt.Errorf("load webhook secrets: %w", ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, webhookSecretsQuery, bridgeID)
	if err != nil {
		return nil, fmt.Errorf("load webhook secrets: %w", mapError(err))
	}
	return s.scanWebhookSecrets(rows, bridgeID)
}

// webhookSecretColumns are the columns openWebhookSecrets reads of a
// webhook_secrets row.
const webhookSecretColumns = `id, key_id, nonce, ciphertext, created_at, expires_at`

// webhookSecretsQuery selects the valid secrets of bridge $1, the current
// one first.
const webhookSecretsQuery = `
	SELECT ` + webhookSecretColumns + ` FROM webhook_secrets
	WHERE bridge_id = $1 AND (expires_at IS NULL OR expires_at > now())
	ORDER BY expires_at DESC NULLS FIRST, created_at DESC`

// bridgesSecretsQuery selects the valid secrets of the bridges $1, each
// bridge's current one first.
const bridgesSecretsQuery = `
	SELECT bridge_id::text, ` + webhookSecretColumns + ` FROM webhook_secrets
	WHERE bridge_id = ANY((SELECT $1::text[]::uuid[])::uuid[]) AND (expires_at IS NULL OR expires_at > now())
	ORDER BY bridge_id, expires_at DESC NULLS FIRST, created_at DESC`

// scanBridgesSecrets reads the next result of br, the rows of
// bridgesSecretsQuery, and opens them, by bridge. A bridge without a
// valid secret has no entry.
func (s *Store) scanBridgesSecrets(br pgx.BatchResults) (map[string][]WebhookSecret, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("load webhook secrets: %w", mapError(err))
	}
	secrets := map[string][]WebhookSecret{}
	var bridgeID string
	err = s.openWebhookSecrets(rows, []any{&bridgeID}, func() string { return bridgeID }, func(b string, ws WebhookSecret) {
		secrets[b] = append(secrets[b], ws)
	})
	if err != nil {
		return nil, err
	}
	return secrets, nil
}

// distinct returns the values of ids once each, in their first order.
func distinct(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// scanWebhookSecrets reads the rows of webhookSecretsQuery and opens them;
// no secret is ErrNotFound. It closes rows.
func (s *Store) scanWebhookSecrets(rows pgx.Rows, bridgeID string) ([]WebhookSecret, error) {
	var out []WebhookSecret
	err := s.openWebhookSecrets(rows, nil, func() string { return bridgeID }, func(_ string, ws WebhookSecret) {
		out = append(out, ws)
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load webhook secrets: %w", ErrNotFound)
	}
	return out, nil
}

// openWebhookSecrets reads rows of webhook secrets, each the columns head
// scans followed by webhookSecretColumns, and opens them in order. bridge
// names the bridge of the row just scanned, whose id the secret is sealed
// with; add receives each opened secret with it. It closes rows.
func (s *Store) openWebhookSecrets(rows pgx.Rows, head []any, bridge func() string, add func(bridgeID string, ws WebhookSecret)) error {
	defer rows.Close()
	for rows.Next() {
		var (
			id     string
			sealed Sealed
			ws     WebhookSecret
		)
		dest := append(append(make([]any, 0, len(head)+6), head...),
			&id, &sealed.KeyID, &sealed.Nonce, &sealed.Ciphertext, &ws.CreatedAt, &ws.ExpiresAt)
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("load webhook secrets: %w", mapError(err))
		}
		bridgeID := bridge()
		plain, err := s.sealer.Open(sealed, webhookSecretAAD(bridgeID, id))
		if err != nil {
			return fmt.Errorf("load webhook secrets of bridge %s: %w", bridgeID, err)
		}
		ws.Secret = string(plain)
		add(bridgeID, ws)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load webhook secrets: %w", mapError(err))
	}
	return nil
}
