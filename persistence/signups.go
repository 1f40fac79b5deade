package persistence

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

// CountSignup counts one signup of client (its address) in the current
// fixed window of length window and returns how many the client made in
// that window so far, on every node of the cluster. Windows more than ten
// windows old are deleted on the way.
func (s *Store) CountSignup(ctx context.Context, client string, window time.Duration) (int, error) {
	if window < time.Second {
		return 0, fmt.Errorf("count signup: window %s is shorter than a second: %w", window, ErrInvalid)
	}
	key := sha256.Sum256([]byte(client))
	secs := window.Seconds()
	var n int
	err := s.pool.QueryRow(ctx, `
		WITH old AS (DELETE FROM signup_windows WHERE window_start < now() - make_interval(secs => $2 * 10))
		INSERT INTO signup_windows AS w (client, window_start, count)
		VALUES ($1, to_timestamp(floor(extract(epoch FROM now()) / $2) * $2), 1)
		ON CONFLICT (client, window_start) DO UPDATE SET count = w.count + 1
		RETURNING count`, key[:], secs).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count signup: %w", mapError(err))
	}
	return n, nil
}
