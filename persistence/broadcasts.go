package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// A broadcast is the owner's message to every subscriber of a bridge. Its
// creation snapshots the subscribers as recipients and raises the bridge's
// broadcasts_pending hint; the grain then queues each recipient's copy
// into the outbox once (QueueBroadcastCopy), at most the broadcast rate a
// second, and lowers the hint when none is left (FinishBroadcasts).

// errCopyTaken means a recipient's copy was already queued or failed.
var errCopyTaken = errors.New("broadcast copy already handled")

// maxBroadcastFailures is how many failures a broadcast's status lists.
const maxBroadcastFailures = 100

func broadcastContentAAD(bridgeID, broadcastID string) []byte {
	return []byte("broadcast-content\x00" + bridgeID + "\x00" + broadcastID)
}

// Broadcast is a broadcast as created.
type Broadcast struct {
	ID         string
	BridgeID   string
	Recipients int
	CreatedAt  time.Time
}

// CreateBroadcast stores a broadcast of text to the current subscribers of
// an account's bridge.
func (s *Store) CreateBroadcast(ctx context.Context, accountID, bridgeID, text string) (Broadcast, error) {
	if !validID(accountID) || !validID(bridgeID) {
		return Broadcast{}, fmt.Errorf("create broadcast: %w", ErrNotFound)
	}
	b := Broadcast{ID: uuid.NewString(), BridgeID: canonicalID(bridgeID)}
	sealed, err := s.sealContent([]byte(text), broadcastContentAAD(b.BridgeID, b.ID))
	if err != nil {
		return Broadcast{}, fmt.Errorf("create broadcast: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The bridge row is locked first: FinishBroadcasts, which lowers
		// the hint, takes the same lock before it looks.
		tag, err := tx.Exec(ctx, `UPDATE bridges SET broadcasts_pending = true WHERE id = $1 AND account_id = $2`, bridgeID, accountID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		if _, err := tx.Exec(ctx, `INSERT INTO broadcasts (id, bridge_id, content, content_key_id, content_nonce, recipients)
			VALUES ($1, $2, $3, $4, $5, 0)`, b.ID, bridgeID, sealed.data, sealed.keyID, sealed.nonce); err != nil {
			return err
		}
		tag, err = tx.Exec(ctx, `INSERT INTO broadcast_recipients (broadcast_id, address)
			SELECT $1, address FROM subscribers WHERE bridge_id = $2`, b.ID, bridgeID)
		if err != nil {
			return err
		}
		b.Recipients = int(tag.RowsAffected())
		return tx.QueryRow(ctx, `UPDATE broadcasts SET recipients = $2 WHERE id = $1 RETURNING created_at`, b.ID, b.Recipients).Scan(&b.CreatedAt)
	})
	if err != nil {
		return Broadcast{}, fmt.Errorf("create broadcast: %w", mapError(err))
	}
	return b, nil
}

// BroadcastCopy is one recipient's copy of a broadcast, to queue.
type BroadcastCopy struct {
	BroadcastID string
	Address     string
	Content     string
}

// BroadcastBatch returns, under the caller's lease, the next copies of a
// bridge's oldest broadcast that has copies to queue, at most rate of them
// and no sooner than the rate allows; more says whether copies are left
// after these (now or later).
func (s *Store) BroadcastBatch(ctx context.Context, l Lease, bridgeID string, rate int) (copies []BroadcastCopy, more bool, err error) {
	if !validID(bridgeID) || rate <= 0 {
		return nil, false, fmt.Errorf("load broadcast batch: %w", ErrNotFound)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		var id string
		var due bool
		var c storedContent
		err := tx.QueryRow(ctx, `SELECT b.id::text, b.next_batch_at <= now(), b.content, b.content_key_id, b.content_nonce FROM broadcasts b
			WHERE b.bridge_id = $1 AND EXISTS (SELECT 1 FROM broadcast_recipients r WHERE r.broadcast_id = b.id AND r.status = 'pending')
			ORDER BY b.created_at, b.id LIMIT 1 FOR UPDATE OF b SKIP LOCKED`, bridgeID).Scan(&id, &due, &c.data, &c.keyID, &c.nonce)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		more = true
		if !due {
			return nil
		}
		text, err := s.openContent(c, broadcastContentAAD(canonicalID(bridgeID), id))
		if err != nil {
			return fmt.Errorf("open broadcast %s: %w", id, err)
		}
		rows, err := tx.Query(ctx, `SELECT address FROM broadcast_recipients WHERE broadcast_id = $1 AND status = 'pending'
			ORDER BY address LIMIT $2`, id, rate)
		if err != nil {
			return err
		}
		addrs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, a := range addrs {
			copies = append(copies, BroadcastCopy{BroadcastID: id, Address: a, Content: string(text)})
		}
		// The next batch of this bridge waits as long as this one takes
		// at the rate.
		_, err = tx.Exec(ctx, `UPDATE broadcasts SET next_batch_at = now() + make_interval(secs => $2), updated_at = now()
			WHERE id = $1`, id, float64(len(addrs))/float64(rate))
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("load broadcast batch: %w", mapError(err))
	}
	return copies, more, nil
}

// QueueBroadcastCopy puts one recipient's copy in the outbox as r, records
// it as message messageID sent by broadcast, and marks the copy queued,
// all in one transaction under the caller's lease. A copy already handled
// adds nothing and returns ok false: each recipient gets one copy.
func (s *Store) QueueBroadcastCopy(ctx context.Context, l Lease, c BroadcastCopy, r Reply, messageID string) (replyID int64, ok bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		id, err := s.insertReply(ctx, tx, r)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE broadcast_recipients SET status = 'queued', reply_id = $3, message_id = $4, updated_at = now()
			WHERE broadcast_id = $1 AND address = $2 AND status = 'pending'`, c.BroadcastID, c.Address, id, messageID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errCopyTaken
		}
		replyID = id
		return recordOutboxSend(ctx, tx, r.BridgeID, messageID, SendBroadcast, c.Address, id)
	})
	if errors.Is(err, errCopyTaken) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("queue broadcast copy: %w", mapError(err))
	}
	return replyID, true, nil
}

// FailBroadcastCopy marks a recipient's copy failed with the reason (the
// recipient is not on the network, for example), under the caller's lease.
func (s *Store) FailBroadcastCopy(ctx context.Context, l Lease, c BroadcastCopy, reason string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE broadcast_recipients SET status = 'failed', last_error = $3, updated_at = now()
			WHERE broadcast_id = $1 AND address = $2 AND status = 'pending'`, c.BroadcastID, c.Address, clipError(reason))
		return err
	})
	if err != nil {
		return fmt.Errorf("fail broadcast copy: %w", mapError(err))
	}
	return nil
}

// FinishBroadcasts lowers a bridge's broadcasts_pending hint when none of
// its broadcasts has a copy left to queue, and erases the content of the
// broadcasts that are done.
func (s *Store) FinishBroadcasts(ctx context.Context, bridgeID string) error {
	if !validID(bridgeID) {
		return fmt.Errorf("finish broadcasts: %w", ErrNotFound)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// After the lock, a broadcast created meanwhile is visible to the
		// next statement.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM bridges WHERE id = $1 FOR UPDATE`, bridgeID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE bridges SET broadcasts_pending = false WHERE id = $1 AND NOT EXISTS (
				SELECT 1 FROM broadcasts b JOIN broadcast_recipients r ON r.broadcast_id = b.id
				WHERE b.bridge_id = $1 AND r.status = 'pending')`, bridgeID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE broadcasts b SET content = '', content_key_id = NULL, content_nonce = NULL, purged_at = now()
			WHERE b.bridge_id = $1 AND b.purged_at IS NULL
			AND NOT EXISTS (SELECT 1 FROM broadcast_recipients r WHERE r.broadcast_id = b.id AND r.status = 'pending')`, bridgeID)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish broadcasts: %w", mapError(err))
	}
	return nil
}

// BroadcastFailure is one recipient whose copy failed.
type BroadcastFailure struct {
	Address string
	Reason  string
}

// BroadcastStatus counts a broadcast's copies: sent (published), failed
// (the recipient could not be reached, or the publish gave up) and pending
// (not queued yet, or queued and not published yet).
type BroadcastStatus struct {
	Broadcast
	Sent, Failed, Pending int
	// Failures are up to 100 of the failed copies with their reason.
	Failures []BroadcastFailure
}

// BroadcastStatus returns the status of a broadcast of an account's bridge.
func (s *Store) BroadcastStatus(ctx context.Context, accountID, bridgeID, broadcastID string) (BroadcastStatus, error) {
	if !validID(accountID) || !validID(bridgeID) || !validID(broadcastID) {
		return BroadcastStatus{}, fmt.Errorf("load broadcast: %w", ErrNotFound)
	}
	var st BroadcastStatus
	err := s.pool.QueryRow(ctx, `SELECT b.id::text, b.bridge_id::text, b.recipients, b.created_at,
			count(*) FILTER (WHERE r.status = 'queued' AND o.status = 'sent'),
			count(*) FILTER (WHERE r.status = 'failed' OR o.status = 'dead'),
			count(*) FILTER (WHERE r.status = 'pending' OR (r.status = 'queued' AND (o.status IS NULL OR o.status IN ('pending', 'failed'))))
		FROM broadcasts b JOIN bridges br ON br.id = b.bridge_id
		LEFT JOIN broadcast_recipients r ON r.broadcast_id = b.id LEFT JOIN reply_outbox o ON o.id = r.reply_id
		WHERE b.id = $1 AND b.bridge_id = $2 AND br.account_id = $3
		GROUP BY b.id`, broadcastID, bridgeID, accountID).Scan(&st.ID, &st.BridgeID, &st.Recipients, &st.CreatedAt,
		&st.Sent, &st.Failed, &st.Pending)
	if err != nil {
		return BroadcastStatus{}, fmt.Errorf("load broadcast: %w", mapError(err))
	}
	rows, err := s.pool.Query(ctx, `SELECT r.address, CASE WHEN r.status = 'failed' THEN r.last_error ELSE o.last_error END
		FROM broadcast_recipients r LEFT JOIN reply_outbox o ON o.id = r.reply_id
		WHERE r.broadcast_id = $1 AND (r.status = 'failed' OR o.status = 'dead') ORDER BY r.address LIMIT $2`, broadcastID, maxBroadcastFailures)
	if err != nil {
		return BroadcastStatus{}, fmt.Errorf("load broadcast failures: %w", mapError(err))
	}
	st.Failures, err = pgx.CollectRows(rows, pgx.RowToStructByPos[BroadcastFailure])
	if err != nil {
		return BroadcastStatus{}, fmt.Errorf("load broadcast failures: %w", mapError(err))
	}
	return st, nil
}
