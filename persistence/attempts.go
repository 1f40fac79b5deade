package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MaxAttemptsShown bounds the attempts AttemptsOf returns per delivery: a
// delivery replayed many times keeps every attempt in the table, and the
// owner's view shows the newest ones.
const MaxAttemptsShown = 50

// AttemptRecord is one recorded HTTP attempt of a delivery.
type AttemptRecord struct {
	ID         int64
	DeliveryID int64
	At         time.Time
	// StatusCode is 0 when no response arrived.
	StatusCode int
	Latency    time.Duration
	Error      string
}

// AttemptsOf returns the newest MaxAttemptsShown attempts of each of the
// deliveries, oldest first, in one query.
func (s *Store) AttemptsOf(ctx context.Context, deliveryIDs []int64) (map[int64][]AttemptRecord, error) {
	out := make(map[int64][]AttemptRecord, len(deliveryIDs))
	if len(deliveryIDs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id, delivery_id, created_at, COALESCE(status_code, 0), latency_ms, error FROM (
			SELECT *, row_number() OVER (PARTITION BY delivery_id ORDER BY id DESC) AS n
			FROM delivery_attempts WHERE delivery_id = ANY($1)) a
		WHERE n <= $2 ORDER BY delivery_id, id`, deliveryIDs, MaxAttemptsShown)
	if err != nil {
		return nil, fmt.Errorf("load delivery attempts: %w", mapError(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AttemptRecord, error) {
		var a AttemptRecord
		var ms float64
		err := r.Scan(&a.ID, &a.DeliveryID, &a.At, &a.StatusCode, &ms, &a.Error)
		a.Latency = time.Duration(ms * float64(time.Millisecond))
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("load delivery attempts: %w", mapError(err))
	}
	for _, a := range list {
		out[a.DeliveryID] = append(out[a.DeliveryID], a)
	}
	return out, nil
}

// GetDelivery returns one delivery of a bridge of the account. A delivery
// of another bridge or account is ErrNotFound, like one that does not
// exist.
func (s *Store) GetDelivery(ctx context.Context, accountID, bridgeID string, deliveryID int64) (Delivery, error) {
	if !validID(accountID) || !validID(bridgeID) {
		return Delivery{}, fmt.Errorf("get delivery: %w", ErrNotFound)
	}
	d, err := s.scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries d
		JOIN bridges b ON b.id = d.bridge_id
		WHERE d.id = $1 AND d.bridge_id = $2 AND b.account_id = $3`, deliveryID, bridgeID, accountID))
	if err != nil {
		return Delivery{}, fmt.Errorf("get delivery: %w", mapError(err))
	}
	return d, nil
}
