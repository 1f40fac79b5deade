package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cursor is the newest envelope of a topic whose delivery is durably
// recorded; replay after activation starts after it.
type Cursor struct {
	Topic           string
	LastTimestampNs int64
	LastDigest      []byte
	UpdatedAt       time.Time
}

// SaveCursor moves the cursor of a bridge's topic forward, under the
// caller's lease. A cursor never moves back: saving an older position
// keeps the newer one. A lost lease is ErrFenced.
func (s *Store) SaveCursor(ctx context.Context, l Lease, bridgeID, topic string, timestampNs int64, digest []byte) error {
	if !validID(bridgeID) {
		return fmt.Errorf("save cursor: %w", ErrNotFound)
	}
	// One statement: the cursor moves only while l is the current lease.
	var leased bool
	err := s.pool.QueryRow(ctx, `WITH `+leaseCTE+`,
		moved AS (
			INSERT INTO cursors AS c (bridge_id, topic, last_timestamp_ns, last_digest)
			SELECT $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM lease)
			ON CONFLICT (bridge_id, topic) DO UPDATE SET last_timestamp_ns = EXCLUDED.last_timestamp_ns,
				last_digest = EXCLUDED.last_digest, updated_at = now()
			WHERE c.last_timestamp_ns <= EXCLUDED.last_timestamp_ns)
		SELECT EXISTS (SELECT 1 FROM lease)`, leaseArgs(l, bridgeID, topic, timestampNs, digest)...).Scan(&leased)
	if err == nil && !leased {
		err = fencedError(l)
	}
	if err != nil {
		return fmt.Errorf("save cursor of %s: %w", topic, mapError(err))
	}
	return nil
}

// Cursors returns every cursor of a bridge, by topic.
func (s *Store) Cursors(ctx context.Context, bridgeID string) (map[string]Cursor, error) {
	if !validID(bridgeID) {
		return nil, fmt.Errorf("load cursors: %w", ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, cursorsQuery, bridgeID)
	if err != nil {
		return nil, fmt.Errorf("load cursors: %w", mapError(err))
	}
	return scanCursors(rows)
}

// cursorsQuery selects every cursor of a bridge ($1).
const cursorsQuery = `SELECT topic, last_timestamp_ns, last_digest, updated_at FROM cursors WHERE bridge_id = $1`

// scanCursors reads the rows of cursorsQuery, by topic.
func scanCursors(rows pgx.Rows) (map[string]Cursor, error) {
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Cursor, error) {
		var c Cursor
		err := r.Scan(&c.Topic, &c.LastTimestampNs, &c.LastDigest, &c.UpdatedAt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("load cursors: %w", mapError(err))
	}
	out := make(map[string]Cursor, len(list))
	for _, c := range list {
		out[c.Topic] = c
	}
	return out, nil
}
