package persistence

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Subscriptions are a bridge's subscribe commands: an XMTP user who sends
// SubscribeWord becomes a subscriber, one who sends UnsubscribeWord stops
// being one. When Enabled is false, both words are ordinary messages.
type Subscriptions struct {
	Enabled         bool
	SubscribeWord   string
	UnsubscribeWord string
}

// DefaultSubscriptions are the commands of a new bridge.
var DefaultSubscriptions = Subscriptions{Enabled: true, SubscribeWord: "/subscribe", UnsubscribeWord: "/unsubscribe"}

// Command returns what text asks for: +1 to subscribe, -1 to unsubscribe,
// 0 for neither (or when subscriptions are off). Words match whole,
// trimmed and without regard to case.
func (s Subscriptions) Command(text string) int {
	if !s.Enabled {
		return 0
	}
	t := strings.TrimSpace(text)
	switch {
	case strings.EqualFold(t, s.SubscribeWord):
		return 1
	case strings.EqualFold(t, s.UnsubscribeWord):
		return -1
	}
	return 0
}

// MaxSubscribers is how many subscribers a bridge holds at most: anyone can
// make XMTP identities, so a hostile crowd cannot grow the table without
// bound.
const MaxSubscribers = 100_000

// Subscriber is an XMTP user subscribed to a bridge.
type Subscriber struct {
	Address   string
	CreatedAt time.Time
}

// SetSubscribed adds (on) or removes an XMTP user's subscription to a
// bridge, under the caller's lease. Doing it twice changes nothing. A new
// subscriber of a bridge that holds max (MaxSubscribers when 0) is
// ErrQuotaExceeded.
func (s *Store) SetSubscribed(ctx context.Context, l Lease, bridgeID, address string, on bool) error {
	return s.setSubscribed(ctx, l, bridgeID, address, on, MaxSubscribers)
}

func (s *Store) setSubscribed(ctx context.Context, l Lease, bridgeID, address string, on bool, max int) error {
	if !validID(bridgeID) {
		return fmt.Errorf("set subscription: %w", ErrNotFound)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		if !on {
			_, err := tx.Exec(ctx, `DELETE FROM subscribers WHERE bridge_id = $1 AND lower(address) = lower($2)`, bridgeID, address)
			return err
		}
		// The bridge row is locked so that concurrent subscribers are
		// counted one after the other.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM bridges WHERE id = $1 FOR UPDATE`, bridgeID); err != nil {
			return err
		}
		var exists bool
		var n int
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subscribers WHERE bridge_id = $1 AND address = $2),
			(SELECT count(*) FROM subscribers WHERE bridge_id = $1)`, bridgeID, address).Scan(&exists, &n); err != nil {
			return err
		}
		if exists {
			return nil
		}
		if n >= max {
			return ErrQuotaExceeded
		}
		_, err := tx.Exec(ctx, `INSERT INTO subscribers (bridge_id, address) VALUES ($1, $2) ON CONFLICT DO NOTHING`, bridgeID, address)
		return err
	})
	if err != nil {
		return fmt.Errorf("set subscription: %w", mapError(err))
	}
	return nil
}

// ListSubscribers returns one page of an account's bridge's subscribers,
// by address, and the cursor of the next page ("" at the end).
func (s *Store) ListSubscribers(ctx context.Context, accountID, bridgeID string, page Page) ([]Subscriber, string, error) {
	if !validID(accountID) || !validID(bridgeID) {
		return nil, "", fmt.Errorf("list subscribers: %w", ErrNotFound)
	}
	if page.After != "" && !isAddress(page.After) {
		return nil, "", fmt.Errorf("list subscribers: %w", ErrInvalidCursor)
	}
	var owned bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM bridges WHERE id = $1 AND account_id = $2)`,
		bridgeID, accountID).Scan(&owned); err != nil {
		return nil, "", fmt.Errorf("list subscribers: %w", mapError(err))
	}
	if !owned {
		return nil, "", fmt.Errorf("list subscribers: %w", ErrNotFound)
	}
	limit := page.limit()
	rows, err := s.pool.Query(ctx, `SELECT address, created_at FROM subscribers WHERE bridge_id = $1 AND address > $2
		ORDER BY address LIMIT $3`, bridgeID, page.After, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list subscribers: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Subscriber])
	if err != nil {
		return nil, "", fmt.Errorf("list subscribers: %w", mapError(err))
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].Address
	}
	return out, next, nil
}

// RemoveSubscriber removes a subscriber of an account's bridge; one that is
// not there is ErrNotFound.
func (s *Store) RemoveSubscriber(ctx context.Context, accountID, bridgeID, address string) error {
	if !validID(accountID) || !validID(bridgeID) {
		return fmt.Errorf("remove subscriber: %w", ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM subscribers s USING bridges b
		WHERE s.bridge_id = b.id AND b.id = $1 AND b.account_id = $2 AND lower(s.address) = lower($3)`, bridgeID, accountID, address)
	if err != nil {
		return fmt.Errorf("remove subscriber: %w", mapError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("remove subscriber: %w", ErrNotFound)
	}
	return nil
}

// isAddress reports whether a is 0x and 40 hex digits.
func isAddress(a string) bool {
	if len(a) != 42 || a[:2] != "0x" {
		return false
	}
	for _, c := range a[2:] {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}
