package persistence

import (
	"context"
	"fmt"
	"sync"
)

// replyIDBlock is how many outbox ids one database round trip draws. A
// reply's envelope is sealed to its row id, so the id must be known before
// the row is written; drawing them in blocks lets a completion write its
// reply in the same statement as the rest. Ids a node drew but did not use
// (it stopped) are gaps in the sequence, which nothing relies on.
const replyIDBlock = 64

// idBlock is a block of reply_outbox ids drawn from the table's sequence.
// It is safe for concurrent use.
type idBlock struct {
	mu   sync.Mutex
	free []int64
}

// nextReplyID returns an unused reply_outbox id, drawing a block from the
// sequence when the last one is used up.
func (s *Store) nextReplyID(ctx context.Context) (int64, error) {
	b := &s.replyIDs
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.free) == 0 {
		rows, err := s.pool.Query(ctx, `SELECT nextval(pg_get_serial_sequence('reply_outbox', 'id'))
			FROM generate_series(1, $1) ORDER BY 1`, replyIDBlock)
		if err != nil {
			return 0, fmt.Errorf("draw reply ids: %w", mapError(err))
		}
		var id int64
		for rows.Next() {
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return 0, fmt.Errorf("draw reply ids: %w", mapError(err))
			}
			b.free = append(b.free, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			b.free = nil
			return 0, fmt.Errorf("draw reply ids: %w", mapError(err))
		}
		if len(b.free) == 0 {
			return 0, fmt.Errorf("draw reply ids: %w", ErrNotFound)
		}
	}
	id := b.free[0]
	b.free = b.free[1:]
	return id, nil
}
