package persistence

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrQuotaExceeded means the account already holds as many bridges as its
// quota allows.
var ErrQuotaExceeded = errors.New("quota exceeded")

// SendRate is a token bucket: PerSecond sends a second, Burst at once.
type SendRate struct {
	PerSecond int
	Burst     int
}

// takeSendSQL takes one send from the bucket of subject $1 at $2 sends a
// second and a burst of $3, returning a row only when there was one. The
// upsert locks the bucket row, so concurrent sends on every node of the
// cluster take from the same bucket one after the other.
const takeSendSQL = `
	INSERT INTO send_buckets AS b (subject, tokens, updated_at)
	VALUES ($1, $3::double precision - 1, now())
	ON CONFLICT (subject) DO UPDATE SET
		tokens = least($3::double precision, b.tokens + extract(epoch FROM now() - b.updated_at)::double precision * $2) - 1,
		updated_at = now()
	WHERE least($3::double precision, b.tokens + extract(epoch FROM now() - b.updated_at)::double precision * $2) >= 1
	RETURNING tokens`

func (r SendRate) check() error {
	if r.PerSecond < 1 || r.Burst < 1 {
		return fmt.Errorf("send rate %+v: %w", r, ErrInvalid)
	}
	return nil
}

// TakeSend takes one send from the token bucket of subject (an account id,
// or a bridge id for bridges of system accounts) and reports whether there
// was one. It is one statement.
func (s *Store) TakeSend(ctx context.Context, subject string, rate SendRate) (bool, error) {
	if !validID(subject) {
		return false, fmt.Errorf("take send: %w", ErrNotFound)
	}
	if err := rate.check(); err != nil {
		return false, fmt.Errorf("take send: %w", err)
	}
	var left float64
	err := s.pool.QueryRow(ctx, takeSendSQL, subject, float64(rate.PerSecond), float64(rate.Burst)).Scan(&left)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("take send: %w", mapError(err))
	}
	return true, nil
}

// BridgeForSend returns a bridge of the account, like GetBridge, and in the
// same statement takes one send from the account's bucket; allowed reports
// whether there was one. A send that names a bridge the account does not
// have still counts.
func (s *Store) BridgeForSend(ctx context.Context, accountID, bridgeID string, rate SendRate) (b Bridge, allowed bool, err error) {
	if !validID(accountID) || !validID(bridgeID) {
		return Bridge{}, false, fmt.Errorf("get bridge for send: %w", ErrNotFound)
	}
	if err := rate.check(); err != nil {
		return Bridge{}, false, fmt.Errorf("get bridge for send: %w", err)
	}
	row := s.pool.QueryRow(ctx, "WITH take AS ("+takeSendSQL+") SELECT "+bridgeColumns+", EXISTS (SELECT 1 FROM take)"+bridgeFrom+
		"WHERE b.id = $4 AND b.account_id = $1", accountID, float64(rate.PerSecond), float64(rate.Burst), bridgeID)
	b, err = s.scanBridge(extraColumn{row: row, dest: &allowed})
	if err != nil {
		return Bridge{}, false, fmt.Errorf("get bridge for send: %w", mapError(err))
	}
	return b, allowed, nil
}

// extraColumn scans one more column after those its caller asks for.
type extraColumn struct {
	row  pgx.Row
	dest any
}

func (e extraColumn) Scan(dest ...any) error { return e.row.Scan(append(dest, e.dest)...) }

// TokenFailures returns how many failed token attempts client (its
// address) made in the current fixed window of length window, on every
// node of the cluster.
func (s *Store) TokenFailures(ctx context.Context, client string, window time.Duration) (int, error) {
	if window < time.Second {
		return 0, fmt.Errorf("count token failures: window %s is shorter than a second: %w", window, ErrInvalid)
	}
	key := sha256.Sum256([]byte(client))
	var n int
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce(sum(count), 0) FROM auth_failure_windows
		WHERE client = $1 AND window_start = to_timestamp(floor(extract(epoch FROM now()) / $2) * $2)`,
		key[:], window.Seconds()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count token failures: %w", mapError(err))
	}
	return n, nil
}

// RecordTokenFailure counts one failed token attempt of client in the
// current window and returns the window's count so far. Windows more than
// ten windows old are deleted on the way.
func (s *Store) RecordTokenFailure(ctx context.Context, client string, window time.Duration) (int, error) {
	if window < time.Second {
		return 0, fmt.Errorf("record token failure: window %s is shorter than a second: %w", window, ErrInvalid)
	}
	key := sha256.Sum256([]byte(client))
	var n int
	err := s.pool.QueryRow(ctx, `
		WITH old AS (DELETE FROM auth_failure_windows WHERE window_start < now() - make_interval(secs => $2 * 10))
		INSERT INTO auth_failure_windows AS w (client, window_start, count)
		VALUES ($1, to_timestamp(floor(extract(epoch FROM now()) / $2) * $2), 1)
		ON CONFLICT (client, window_start) DO UPDATE SET count = w.count + 1
		RETURNING count`, key[:], window.Seconds()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("record token failure: %w", mapError(err))
	}
	return n, nil
}
