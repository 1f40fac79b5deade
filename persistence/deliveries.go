package persistence

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeliveryStatus is the state of a delivery.
type DeliveryStatus string

// The states of a delivery.
const (
	// DeliveryPending deliveries have not been attempted yet.
	DeliveryPending DeliveryStatus = "pending"
	// DeliverySucceeded deliveries got a 2xx answer.
	DeliverySucceeded DeliveryStatus = "succeeded"
	// DeliveryFailed deliveries failed and wait for a retry.
	DeliveryFailed DeliveryStatus = "failed"
	// DeliveryDead deliveries ran out of attempts: they are dead letters.
	DeliveryDead DeliveryStatus = "dead"
)

// Delivery is one inbound XMTP message on its way to the owner's endpoint.
type Delivery struct {
	ID            int64
	BridgeID      string
	MessageID     string
	Topic         string
	SenderAddress string
	SentNs        int64
	Payload       []byte
	Status        DeliveryStatus
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// PurgedAt is when the retention sweep erased the payload of this
	// final delivery (Payload is then empty); nil while it is kept.
	PurgedAt *time.Time
	// Reply is the text the endpoint answered, when HasReply; it is kept
	// sealed and erased with the payload.
	Reply    string
	HasReply bool
}

// NewDelivery is what RecordDelivery needs.
type NewDelivery struct {
	BridgeID string
	// MessageID is the idempotency key, the envelope's hash.
	MessageID     string
	Topic         string
	SenderAddress string
	SentNs        int64
	Payload       []byte
	// Lease, when set, fences the write: a new delivery is recorded only
	// while Lease is the identity's current lease, else ErrFenced.
	Lease *Lease
}

// DeliveryAttempt is the outcome of one HTTP attempt of a delivery.
type DeliveryAttempt struct {
	// StatusCode is 0 when no response arrived.
	StatusCode int
	Latency    time.Duration
	Error      string
}

// statusCode is the attempt's status as stored: none when no response
// arrived or when what arrived is not an HTTP status (100 to 599), which
// the table refuses, so that such an answer cannot lose the attempt's
// record.
func (a DeliveryAttempt) statusCode() *int {
	if a.StatusCode < 100 || a.StatusCode > 599 {
		return nil
	}
	return &a.StatusCode
}

const deliveryColumns = `d.id, d.bridge_id, d.message_id, d.topic, d.sender_address, d.sent_ns, d.payload,
	d.payload_key_id, d.payload_nonce, d.status, d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.updated_at,
	d.purged_at, d.reply, d.reply_key_id, d.reply_nonce`

// scanDelivery reads a row of deliveryColumns and opens its payload.
func (s *Store) scanDelivery(r pgx.Row) (Delivery, error) {
	var d Delivery
	var c, reply storedContent
	if err := r.Scan(&d.ID, &d.BridgeID, &d.MessageID, &d.Topic, &d.SenderAddress, &d.SentNs, &c.data,
		&c.keyID, &c.nonce, &d.Status, &d.Attempts, &d.NextAttemptAt, &d.LastError, &d.CreatedAt, &d.UpdatedAt,
		&d.PurgedAt, &reply.data, &reply.keyID, &reply.nonce); err != nil {
		return Delivery{}, err
	}
	payload, err := s.openContent(c, deliveryPayloadAAD(d.BridgeID, d.MessageID))
	if err != nil {
		return Delivery{}, fmt.Errorf("open payload of delivery %d: %w", d.ID, err)
	}
	d.Payload = payload
	if reply.keyID != nil {
		text, err := s.openContent(reply, deliveryReplyAAD(d.BridgeID, d.ID))
		if err != nil {
			return Delivery{}, fmt.Errorf("open reply of delivery %d: %w", d.ID, err)
		}
		d.Reply, d.HasReply = string(text), true
	}
	return d, nil
}

// RecordDelivery durably records an inbound message, its payload sealed
// to the row. It is idempotent on (bridge, message id): recording the same
// message again returns the existing delivery and created = false. A
// bridge that does not exist (or is being deleted) gets no row
// (bridge_accepts_writes, migration 0014): ErrNotFound, or ErrFenced when
// the message carries a lease.
func (s *Store) RecordDelivery(ctx context.Context, nd NewDelivery) (d Delivery, created bool, err error) {
	if !validID(nd.BridgeID) {
		return Delivery{}, false, fmt.Errorf("record delivery: %w", ErrNotFound)
	}
	nd.BridgeID = canonicalID(nd.BridgeID)
	payload := nd.Payload
	if payload == nil {
		payload = []byte{}
	}
	sealed, err := s.sealContent(payload, deliveryPayloadAAD(nd.BridgeID, nd.MessageID))
	if err != nil {
		return Delivery{}, false, fmt.Errorf("record delivery: %w", err)
	}
	if nd.Lease == nil {
		d, err = s.scanDelivery(s.pool.QueryRow(ctx, `
			INSERT INTO deliveries AS d (bridge_id, message_id, topic, sender_address, sent_ns, payload, payload_key_id, payload_nonce)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE bridge_accepts_writes($1)
			ON CONFLICT (bridge_id, message_id) DO NOTHING
			RETURNING `+deliveryColumns,
			nd.BridgeID, nd.MessageID, nd.Topic, nd.SenderAddress, nd.SentNs, sealed.data, sealed.keyID, sealed.nonce))
	} else {
		// One statement: the row is inserted only while the lease is
		// current, with no transaction round trips on the hot path.
		l := nd.Lease
		d, err = s.scanDelivery(s.pool.QueryRow(ctx, `
			INSERT INTO deliveries AS d (bridge_id, message_id, topic, sender_address, sent_ns, payload, payload_key_id, payload_nonce)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8
			WHERE EXISTS (SELECT 1 FROM identity_leases l
				WHERE l.identity = $9 AND l.owner = $10 AND l.epoch = $11 AND `+leaseLive+`) AND bridge_accepts_writes($1)
			ON CONFLICT (bridge_id, message_id) DO NOTHING
			RETURNING `+deliveryColumns,
			nd.BridgeID, nd.MessageID, nd.Topic, nd.SenderAddress, nd.SentNs, sealed.data, sealed.keyID, sealed.nonce,
			l.Identity, l.Owner, l.Epoch))
	}
	if err == nil {
		return d, true, nil
	}
	if err = mapError(err); err != ErrNotFound {
		return Delivery{}, false, fmt.Errorf("record delivery: %w", err)
	}
	d, err = s.scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries d
		WHERE d.bridge_id = $1 AND d.message_id = $2`, nd.BridgeID, nd.MessageID))
	if nd.Lease != nil && errors.Is(mapError(err), ErrNotFound) {
		// Nothing was inserted and there is no row: the lease is gone.
		return Delivery{}, false, fmt.Errorf("record delivery: epoch %d: %w", nd.Lease.Epoch, ErrFenced)
	}
	if err != nil {
		return Delivery{}, false, fmt.Errorf("record delivery: %w", mapError(err))
	}
	return d, false, nil
}

// RecordAttempt stores the outcome of one attempt of a delivery and moves
// the delivery to status; nextAttemptAt matters only for DeliveryFailed.
func (s *Store) RecordAttempt(ctx context.Context, deliveryID int64, a DeliveryAttempt, status DeliveryStatus, nextAttemptAt time.Time) error {
	return s.recordAttempt(ctx, deliveryID, a, status, nextAttemptAt)
}

// RecordLeasedAttempt is RecordAttempt for the activation holding l: it
// writes nothing and returns ErrFenced unless l is still the identity's
// current lease.
func (s *Store) RecordLeasedAttempt(ctx context.Context, l Lease, deliveryID int64, a DeliveryAttempt, status DeliveryStatus, nextAttemptAt time.Time) error {
	// One statement, fenced by l (fenced.go).
	code := a.statusCode()
	// Only a delivery still waiting moves: an attempt that started from a
	// copy read before another attempt completed the delivery (or made it
	// a dead letter) must not turn it back into one to retry, which would
	// make a second reply. Its outcome is then not recorded.
	var leased, found, exists bool
	err := s.pool.QueryRow(ctx, `WITH `+leaseCTE+`,
		done AS (
			UPDATE deliveries SET status = $5, attempts = attempts + 1, next_attempt_at = $6,
				last_error = $7, updated_at = now()
			WHERE id = $4 AND status IN ('pending', 'failed') AND EXISTS (SELECT 1 FROM lease) RETURNING id),
		attempt AS (
			INSERT INTO delivery_attempts (delivery_id, status_code, latency_ms, error)
			SELECT id, $8, $9, $7 FROM done)
		SELECT EXISTS (SELECT 1 FROM lease), EXISTS (SELECT 1 FROM done), EXISTS (SELECT 1 FROM deliveries WHERE id = $4)`,
		leaseArgs(l, deliveryID, string(status), nextAttemptAt, a.Error, code,
			float64(a.Latency)/float64(time.Millisecond))...).Scan(&leased, &found, &exists)
	switch {
	case err != nil:
		return fmt.Errorf("record delivery attempt: %w", mapError(err))
	case !leased:
		return fmt.Errorf("record delivery attempt: %w", fencedError(l))
	case !found && !exists:
		return fmt.Errorf("record delivery attempt: %w", ErrNotFound)
	}
	return nil
}

func (s *Store) recordAttempt(ctx context.Context, deliveryID int64, a DeliveryAttempt, status DeliveryStatus, nextAttemptAt time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		code := a.statusCode()
		if _, err := tx.Exec(ctx, `INSERT INTO delivery_attempts (delivery_id, status_code, latency_ms, error) VALUES ($1, $2, $3, $4)`,
			deliveryID, code, float64(a.Latency)/float64(time.Millisecond), a.Error); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3,
			last_error = $4, updated_at = now() WHERE id = $1`, deliveryID, string(status), nextAttemptAt, a.Error)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record delivery attempt: %w", mapError(err))
	}
	return nil
}

// ListDeliveries returns a page of the deliveries of a bridge of the
// account, newest first, and the cursor of the next page. status filters
// by status when it is not empty; DeliveryDead lists the dead letters. A
// bridge of another account is ErrNotFound.
func (s *Store) ListDeliveries(ctx context.Context, accountID, bridgeID string, status DeliveryStatus, page Page) ([]Delivery, string, error) {
	if !validID(accountID) || !validID(bridgeID) {
		return nil, "", fmt.Errorf("list deliveries: %w", ErrNotFound)
	}
	before, err := int64Cursor(page.After)
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	var owned bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM bridges WHERE id = $1 AND account_id = $2)`,
		bridgeID, accountID).Scan(&owned); err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", mapError(err))
	}
	if !owned {
		return nil, "", fmt.Errorf("list deliveries: %w", ErrNotFound)
	}
	limit := page.limit()
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries d
		WHERE d.bridge_id = $1 AND d.id < $2 AND ($3 = '' OR d.status = $3)
		ORDER BY d.id DESC LIMIT $4`, bridgeID, before, string(status), limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return s.scanDelivery(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", mapError(err))
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = strconv.FormatInt(out[limit-1].ID, 10)
	}
	return out, next, nil
}

// DueDeliveries returns up to limit deliveries of a bridge that are due for
// an attempt (pending, or failed with next_attempt_at passed), oldest
// first. The endpoint's health gates them (see endpoint_health.go): while
// its breaker is open, none until the probe is due, then only the oldest,
// for the probe; while it is disabled, only the oldest, which the breaker
// lets through once the owner has set the bridge active again (a bridge
// that is not active is not swept).
func (s *Store) DueDeliveries(ctx context.Context, bridgeID string, limit int) ([]Delivery, error) {
	if !validID(bridgeID) {
		return nil, fmt.Errorf("load due deliveries: %w", ErrNotFound)
	}
	limit = Page{Limit: limit}.limit()
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries d
		WHERE d.bridge_id = $1 AND d.status IN ('pending', 'failed') AND d.next_attempt_at <= now()
			AND NOT EXISTS (SELECT 1 FROM endpoint_health h WHERE h.bridge_id = d.bridge_id
				AND h.state = 'open' AND h.next_probe_at > now())
		ORDER BY d.id LIMIT (SELECT CASE WHEN EXISTS (SELECT 1 FROM endpoint_health h
			WHERE h.bridge_id = $1 AND h.state IN ('open', 'disabled')) THEN 1 ELSE $2 END)`, bridgeID, limit)
	if err != nil {
		return nil, fmt.Errorf("load due deliveries: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return s.scanDelivery(r) })
	if err != nil {
		return nil, fmt.Errorf("load due deliveries: %w", mapError(err))
	}
	return out, nil
}

// ReplayDeadLetter puts a dead delivery of a bridge of the account back in
// the queue with a fresh attempt budget. A delivery that is not dead, whose
// payload the retention sweep purged, or that belongs to another account,
// is ErrNotFound. The owner replaying is taken as a sign that the endpoint
// is fixed: when its breaker is open, the next probe is due at once.
func (s *Store) ReplayDeadLetter(ctx context.Context, accountID, bridgeID string, deliveryID int64) (Delivery, error) {
	if !validID(accountID) || !validID(bridgeID) {
		return Delivery{}, fmt.Errorf("replay dead letter: %w", ErrNotFound)
	}
	d, err := s.scanDelivery(s.pool.QueryRow(ctx, `
		UPDATE deliveries AS d SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
		FROM bridges b
		WHERE d.id = $1 AND d.bridge_id = $2 AND d.status = 'dead' AND d.purged_at IS NULL
			AND b.id = d.bridge_id AND b.account_id = $3
		RETURNING `+deliveryColumns, deliveryID, bridgeID, accountID))
	if err != nil {
		return Delivery{}, fmt.Errorf("replay dead letter: %w", mapError(err))
	}
	if _, err := s.pool.Exec(ctx, `UPDATE endpoint_health SET next_probe_at = now()
		WHERE bridge_id = $1 AND state = 'open' AND next_probe_at > now()`, bridgeID); err != nil {
		return Delivery{}, fmt.Errorf("replay dead letter: %w", mapError(err))
	}
	return d, nil
}

// LatestSentNs returns the largest sent time (sent_ns) among a bridge's
// deliveries, 0 when it has none. The node reads it once per activation
// that forwards early (actors/early.go): a message recorded before the
// activation, whose signed sent time a sender chose in the future, must
// not look new to it when it is published again. It reads every delivery
// of the bridge through deliveries_bridge_idx.
func (s *Store) LatestSentNs(ctx context.Context, bridgeID string) (int64, error) {
	if !validID(bridgeID) {
		return 0, fmt.Errorf("latest sent time: %w", ErrNotFound)
	}
	var ns int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(sent_ns), 0) FROM deliveries WHERE bridge_id = $1`, bridgeID).Scan(&ns); err != nil {
		return 0, fmt.Errorf("latest sent time: %w", mapError(err))
	}
	return ns, nil
}
