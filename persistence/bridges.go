package persistence

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// BridgeStatus is the lifecycle state of a bridge.
type BridgeStatus string

// The states of a bridge.
const (
	// StatusActive bridges are kept online by the cluster.
	StatusActive BridgeStatus = "active"
	// StatusDisabled bridges were switched off by their owner.
	StatusDisabled BridgeStatus = "disabled"
	// StatusEndpointGone bridges stopped because their endpoint went away.
	StatusEndpointGone BridgeStatus = "endpoint_gone"
)

// Valid reports whether st is a known status.
func (st BridgeStatus) Valid() bool {
	return st == StatusActive || st == StatusDisabled || st == StatusEndpointGone
}

// BodyFormat is how the forward handler writes a message into an HTTP body.
type BodyFormat string

// The body formats of the forward handler.
const (
	// FormatRelaycc is the body the relaycc bridge sends.
	FormatRelaycc BodyFormat = "relaycc"
	// FormatJSON is this system's own JSON body.
	FormatJSON BodyFormat = "json"
)

// ReplyMode says what the forward handler does with the HTTP response.
type ReplyMode string

// The reply modes of the forward handler.
const (
	// ReplyNone drops the response.
	ReplyNone ReplyMode = "none"
	// ReplyReply sends the response back as an XMTP reply (relaycc isBot).
	ReplyReply ReplyMode = "reply"
)

// RetryMode says which failed answers of a bridge's endpoint are retried.
type RetryMode string

// The retry modes of the forward handler.
const (
	// RetryStandard retries every non-2xx answer but 410 (Standard
	// Webhooks); the default.
	RetryStandard RetryMode = "standard"
	// RetryFinal4xx makes a 4xx answer other than 429 final.
	RetryFinal4xx RetryMode = "final4xx"
)

// ForwardConfig is the forward handler configuration of a bridge.
type ForwardConfig struct {
	URL        string
	BodyFormat BodyFormat
	ReplyMode  ReplyMode
	// Retry is the retry mode; "" is stored as RetryStandard.
	Retry          RetryMode
	Timeout        time.Duration
	MaxConcurrency int
	// Headers are extra request headers; they are stored sealed.
	Headers      map[string]string
	AllowSenders []string
	DenySenders  []string
}

// Bridge is a bridge identity without its secrets.
type Bridge struct {
	ID           string
	AccountID    string
	Address      string
	Name         string
	Status       BridgeStatus
	Forward      ForwardConfig
	HasHookToken bool
	// Delivery says where inbound messages go: the webhook, the live
	// stream, or both.
	Delivery DeliveryMode
	// Subscriptions are the bridge's subscribe commands.
	Subscriptions Subscriptions
	// BroadcastsPending says a broadcast has copies left to queue.
	BroadcastsPending bool
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// NewBridge is what CreateBridge needs.
type NewBridge struct {
	AccountID string
	// Address is the EIP-55 address of the identity.
	Address string
	Name    string
	// KeyBundle is the encoded private key bundle; it is stored sealed.
	KeyBundle []byte
	Forward   ForwardConfig
	// Delivery is the delivery mode; the webhook when empty.
	Delivery DeliveryMode
	// Subscriptions are the subscribe commands; DefaultSubscriptions
	// when nil.
	Subscriptions *Subscriptions
	// IssueHookToken asks for a relaycc hook token.
	IssueHookToken bool
	// MaxBridges, when above 0, is the account's bridge quota: creating
	// the bridge fails with ErrQuotaExceeded when the account already
	// holds that many.
	MaxBridges int
}

// BridgeSecrets are the secrets issued with a bridge. They are returned
// once and stored only sealed (the webhook secret) or hashed (the token).
type BridgeSecrets struct {
	WebhookSecret string
	HookToken     string
}

const bridgeColumns = `
	b.id, b.account_id, b.address, b.name, b.status, b.hook_token_hash IS NOT NULL, b.created_at, b.updated_at,
	f.url, f.body_format, f.reply_mode, f.timeout_ms, f.max_concurrency, f.allow_senders, f.deny_senders,
	f.headers_key_id, f.headers_nonce, f.headers_ciphertext, f.retry, b.delivery,
	b.subscriptions, b.subscribe_word, b.unsubscribe_word, b.broadcasts_pending`

const bridgeFrom = ` FROM bridges b JOIN forward_configs f ON f.bridge_id = b.id `

// scanBridge reads a row of bridgeColumns and opens the sealed headers.
func (s *Store) scanBridge(r pgx.Row) (Bridge, error) {
	var (
		b         Bridge
		timeoutMS int
		headers   Sealed
	)
	err := r.Scan(&b.ID, &b.AccountID, &b.Address, &b.Name, &b.Status, &b.HasHookToken, &b.CreatedAt, &b.UpdatedAt,
		&b.Forward.URL, &b.Forward.BodyFormat, &b.Forward.ReplyMode, &timeoutMS, &b.Forward.MaxConcurrency,
		&b.Forward.AllowSenders, &b.Forward.DenySenders, &headers.KeyID, &headers.Nonce, &headers.Ciphertext, &b.Forward.Retry, &b.Delivery,
		&b.Subscriptions.Enabled, &b.Subscriptions.SubscribeWord, &b.Subscriptions.UnsubscribeWord, &b.BroadcastsPending)
	if err != nil {
		return Bridge{}, err
	}
	b.Forward.Timeout = time.Duration(timeoutMS) * time.Millisecond
	plain, err := s.sealer.Open(headers, forwardHeadersAAD(b.ID))
	if err != nil {
		return Bridge{}, fmt.Errorf("open forward headers of bridge %s: %w", b.ID, err)
	}
	if err := json.Unmarshal(plain, &b.Forward.Headers); err != nil {
		return Bridge{}, fmt.Errorf("decode forward headers of bridge %s: %w", b.ID, err)
	}
	if b.Forward.Headers == nil {
		b.Forward.Headers = map[string]string{}
	}
	return b, nil
}

func (s *Store) collectBridges(rows pgx.Rows) ([]Bridge, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Bridge, error) { return s.scanBridge(r) })
}

// CreateBridge stores a bridge, its sealed key bundle, its forward
// configuration and a new webhook secret in one transaction.
func (s *Store) CreateBridge(ctx context.Context, nb NewBridge) (Bridge, BridgeSecrets, error) {
	if !validID(nb.AccountID) {
		return Bridge{}, BridgeSecrets{}, fmt.Errorf("create bridge: %w", ErrNotFound)
	}
	if len(nb.KeyBundle) == 0 {
		return Bridge{}, BridgeSecrets{}, fmt.Errorf("create bridge: %w: empty key bundle", ErrInvalid)
	}
	id := newID()
	sealedKey, err := s.sealer.Seal(nb.KeyBundle, bridgeKeyAAD(id, nb.Address))
	if err != nil {
		return Bridge{}, BridgeSecrets{}, fmt.Errorf("create bridge: %w", err)
	}
	var secrets BridgeSecrets
	var hookHash []byte
	if nb.IssueHookToken {
		secrets.HookToken = newToken(HookTokenPrefix)
		hookHash = HashToken(secrets.HookToken)
	}
	secrets.WebhookSecret = newWebhookSecret()

	subs := DefaultSubscriptions
	if nb.Subscriptions != nil {
		subs = *nb.Subscriptions
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if nb.MaxBridges > 0 {
			if err := checkBridgeQuota(ctx, tx, nb.AccountID, nb.MaxBridges); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO bridges (id, account_id, address, name, key_id, key_nonce, key_ciphertext, hook_token_hash, delivery,
				subscriptions, subscribe_word, unsubscribe_word)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			id, nb.AccountID, nb.Address, nb.Name, sealedKey.KeyID, sealedKey.Nonce, sealedKey.Ciphertext, hookHash, string(nb.Delivery.orWebhook()),
			subs.Enabled, subs.SubscribeWord, subs.UnsubscribeWord)
		if err != nil {
			return err
		}
		if err := s.upsertForward(ctx, tx, id, nb.Forward); err != nil {
			return err
		}
		return s.insertWebhookSecret(ctx, tx, id, secrets.WebhookSecret)
	})
	if err != nil {
		return Bridge{}, BridgeSecrets{}, fmt.Errorf("create bridge: %w", mapError(err))
	}
	b, err := s.bridgeWhere(ctx, s.pool, "b.id = $1", id)
	if err != nil {
		return Bridge{}, BridgeSecrets{}, fmt.Errorf("create bridge: %w", err)
	}
	return b, secrets, nil
}

// checkBridgeQuota locks the account row, so that concurrent creations on
// any node count one after the other, and then counts its bridges; the
// count is a statement of its own so that it sees the bridges committed
// while it waited for the lock.
func checkBridgeQuota(ctx context.Context, tx pgx.Tx, accountID string, max int) error {
	var one int
	if err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE`, accountID).Scan(&one); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM bridges WHERE account_id = $1`, accountID).Scan(&n); err != nil {
		return err
	}
	if n >= max {
		return fmt.Errorf("%w: the account holds %d bridges, its quota", ErrQuotaExceeded, n)
	}
	return nil
}

func (s *Store) upsertForward(ctx context.Context, tx pgx.Tx, bridgeID string, f ForwardConfig) error {
	headers := f.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	plain, err := json.Marshal(headers)
	if err != nil {
		return fmt.Errorf("encode forward headers: %w", err)
	}
	sealed, err := s.sealer.Seal(plain, forwardHeadersAAD(bridgeID))
	if err != nil {
		return err
	}
	allow, deny := f.AllowSenders, f.DenySenders
	if allow == nil {
		allow = []string{}
	}
	if deny == nil {
		deny = []string{}
	}
	retry := f.Retry
	if retry == "" {
		retry = RetryStandard
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO forward_configs (bridge_id, url, body_format, reply_mode, timeout_ms, max_concurrency,
			allow_senders, deny_senders, headers_key_id, headers_nonce, headers_ciphertext, retry)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (bridge_id) DO UPDATE SET url = $2, body_format = $3, reply_mode = $4, timeout_ms = $5,
			max_concurrency = $6, allow_senders = $7, deny_senders = $8, headers_key_id = $9, headers_nonce = $10,
			headers_ciphertext = $11, retry = $12, updated_at = now()`,
		bridgeID, f.URL, string(f.BodyFormat), string(f.ReplyMode), f.Timeout.Milliseconds(), f.MaxConcurrency,
		allow, deny, sealed.KeyID, sealed.Nonce, sealed.Ciphertext, string(retry))
	return err
}

func (s *Store) bridgeWhere(ctx context.Context, q querier, where string, args ...any) (Bridge, error) {
	b, err := s.scanBridge(q.QueryRow(ctx, "SELECT "+bridgeColumns+bridgeFrom+"WHERE "+where, args...))
	if err != nil {
		return Bridge{}, mapError(err)
	}
	return b, nil
}

// GetBridge returns a bridge of the account. A bridge of another account is
// ErrNotFound, exactly like a bridge that does not exist.
func (s *Store) GetBridge(ctx context.Context, accountID, bridgeID string) (Bridge, error) {
	if !validID(accountID) || !validID(bridgeID) {
		return Bridge{}, fmt.Errorf("get bridge: %w", ErrNotFound)
	}
	b, err := s.bridgeWhere(ctx, s.pool, "b.id = $1 AND b.account_id = $2", bridgeID, accountID)
	if err != nil {
		return Bridge{}, fmt.Errorf("get bridge: %w", err)
	}
	return b, nil
}

// BridgeByID returns a bridge whatever its account, for the runtime.
func (s *Store) BridgeByID(ctx context.Context, bridgeID string) (Bridge, error) {
	if !validID(bridgeID) {
		return Bridge{}, fmt.Errorf("get bridge: %w", ErrNotFound)
	}
	b, err := s.bridgeWhere(ctx, s.pool, "b.id = $1", bridgeID)
	if err != nil {
		return Bridge{}, fmt.Errorf("get bridge: %w", err)
	}
	return b, nil
}

// BridgeByAddress returns the bridge with the given address, compared
// without regard to case.
func (s *Store) BridgeByAddress(ctx context.Context, address string) (Bridge, error) {
	b, err := s.bridgeWhere(ctx, s.pool, "lower(b.address) = lower($1)", address)
	if err != nil {
		return Bridge{}, fmt.Errorf("get bridge by address: %w", err)
	}
	return b, nil
}

// BridgeByHookToken returns the bridge whose relaycc hook token is token,
// looked up by the token's hash.
func (s *Store) BridgeByHookToken(ctx context.Context, token string) (Bridge, error) {
	b, err := s.bridgeWhere(ctx, s.pool, "b.hook_token_hash = $1", HashToken(token))
	if err != nil {
		return Bridge{}, fmt.Errorf("get bridge by hook token: %w", err)
	}
	return b, nil
}

// ListBridges returns a page of the account's bridges, oldest first, and
// the cursor of the next page ("" after the last).
func (s *Store) ListBridges(ctx context.Context, accountID string, page Page) ([]Bridge, string, error) {
	if !validID(accountID) {
		return nil, "", nil
	}
	return s.listBridges(ctx, "b.account_id = $3", page, accountID)
}

// ListAllBridges returns a page of every bridge of every account, for
// operators and the placement reconciler.
func (s *Store) ListAllBridges(ctx context.Context, page Page) ([]Bridge, string, error) {
	return s.listBridges(ctx, "true", page)
}

func (s *Store) listBridges(ctx context.Context, where string, page Page, args ...any) ([]Bridge, string, error) {
	after, err := uuidCursor(page.After)
	if err != nil {
		return nil, "", fmt.Errorf("list bridges: %w", err)
	}
	limit := page.limit()
	rows, err := s.pool.Query(ctx, "SELECT "+bridgeColumns+bridgeFrom+
		"WHERE b.id > $1 AND "+where+" ORDER BY b.id LIMIT $2", append([]any{after, limit + 1}, args...)...)
	if err != nil {
		return nil, "", fmt.Errorf("list bridges: %w", mapError(err))
	}
	bridges, err := s.collectBridges(rows)
	if err != nil {
		return nil, "", fmt.Errorf("list bridges: %w", mapError(err))
	}
	next := ""
	if len(bridges) > limit {
		bridges = bridges[:limit]
		next = bridges[limit-1].ID
	}
	return bridges, next, nil
}

// UpdateBridge changes a bridge of the account in one transaction: it loads
// the bridge with a row lock, lets change edit the name, status, delivery mode and
// forward configuration, and stores the result. Other fields are ignored. An error
// from change aborts the update and is returned as it is.
func (s *Store) UpdateBridge(ctx context.Context, accountID, bridgeID string, change func(*Bridge) error) (Bridge, error) {
	if !validID(accountID) || !validID(bridgeID) {
		return Bridge{}, fmt.Errorf("update bridge: %w", ErrNotFound)
	}
	var out Bridge
	var changeErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b, err := s.bridgeWhere(ctx, tx, "b.id = $1 AND b.account_id = $2 FOR UPDATE OF b", bridgeID, accountID)
		if err != nil {
			return err
		}
		if err := change(&b); err != nil {
			changeErr = err
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE bridges SET name = $2, status = $3, delivery = $4, subscriptions = $5,
			subscribe_word = $6, unsubscribe_word = $7, updated_at = now() WHERE id = $1`,
			bridgeID, b.Name, string(b.Status), string(b.Delivery), b.Subscriptions.Enabled,
			b.Subscriptions.SubscribeWord, b.Subscriptions.UnsubscribeWord); err != nil {
			return err
		}
		if err := s.upsertForward(ctx, tx, bridgeID, b.Forward); err != nil {
			return err
		}
		out, err = s.bridgeWhere(ctx, tx, "b.id = $1", bridgeID)
		return err
	})
	if changeErr != nil {
		return Bridge{}, changeErr
	}
	if err != nil {
		return Bridge{}, fmt.Errorf("update bridge: %w", mapError(err))
	}
	return out, nil
}

// SetBridgeStatus sets the status of a bridge, for the runtime (for example
// endpoint_gone).
func (s *Store) SetBridgeStatus(ctx context.Context, bridgeID string, status BridgeStatus) error {
	if !validID(bridgeID) {
		return fmt.Errorf("set bridge status: %w", ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE bridges SET status = $2, updated_at = now() WHERE id = $1`, bridgeID, string(status))
	if err != nil {
		return fmt.Errorf("set bridge status: %w", mapError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set bridge status: %w", ErrNotFound)
	}
	return nil
}

// SetLeasedBridgeStatus is SetBridgeStatus for the activation holding l: it
// writes nothing and returns ErrFenced unless l is still the identity's
// current lease.
func (s *Store) SetLeasedBridgeStatus(ctx context.Context, l Lease, bridgeID string, status BridgeStatus) error {
	if !validID(bridgeID) {
		return fmt.Errorf("set bridge status: %w", ErrNotFound)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE bridges SET status = $2, updated_at = now() WHERE id = $1`, bridgeID, string(status))
		if err != nil {
			return mapError(err)
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set bridge status: %w", err)
	}
	return nil
}

// DeleteBridge deletes a bridge of the account and, by cascade, everything
// that belongs to it: keys, secrets, conversations, cursors, deliveries.
func (s *Store) DeleteBridge(ctx context.Context, accountID, bridgeID string) error {
	if !validID(accountID) || !validID(bridgeID) {
		return fmt.Errorf("delete bridge: %w", ErrNotFound)
	}
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// With tombstones on, the sealed key and conversations move to
		// the tombstone first (persistence/tombstones.go).
		if err := s.tombstone(ctx, tx, accountID, bridgeID); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `
			WITH gone AS (DELETE FROM bridges WHERE id = $1 AND account_id = $2 RETURNING id),
			bucket AS (DELETE FROM send_buckets WHERE subject IN (SELECT id FROM gone))
			SELECT count(*) FROM gone`, bridgeID, accountID).Scan(&n)
	})
	if err != nil {
		return fmt.Errorf("delete bridge: %w", mapError(err))
	}
	if n == 0 {
		return fmt.Errorf("delete bridge: %w", ErrNotFound)
	}
	return nil
}

// KeyBundle returns the decrypted private key bundle of a bridge.
func (s *Store) KeyBundle(ctx context.Context, bridgeID string) ([]byte, error) {
	if !validID(bridgeID) {
		return nil, fmt.Errorf("load key bundle: %w", ErrNotFound)
	}
	plain, _, err := s.scanKeyBundle(s.pool.QueryRow(ctx, keyBundleQuery, bridgeID), bridgeID)
	return plain, err
}

// keyBundleQuery selects a bridge's ($1) address and sealed key bundle.
const keyBundleQuery = `SELECT address, key_id, key_nonce, key_ciphertext FROM bridges WHERE id = $1`

// scanKeyBundle reads the row of keyBundleQuery and opens the bundle; it
// returns the bundle and the bridge's address.
func (s *Store) scanKeyBundle(row pgx.Row, bridgeID string) ([]byte, string, error) {
	var (
		address string
		sealed  Sealed
	)
	if err := row.Scan(&address, &sealed.KeyID, &sealed.Nonce, &sealed.Ciphertext); err != nil {
		return nil, "", fmt.Errorf("load key bundle of bridge %s: %w", bridgeID, mapError(err))
	}
	plain, err := s.sealer.Open(sealed, bridgeKeyAAD(bridgeID, address))
	if err != nil {
		return nil, "", fmt.Errorf("load key bundle of bridge %s: %w", bridgeID, err)
	}
	return plain, address, nil
}
