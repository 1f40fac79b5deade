package persistence

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound means the row does not exist or belongs to another account.
var ErrNotFound = errors.New("not found")

// ErrConflict means the row would duplicate a unique value, such as a
// bridge address or a delivery's message id.
var ErrConflict = errors.New("conflict")

// ErrInvalid means a value broke a constraint of the schema.
var ErrInvalid = errors.New("invalid value")

// ErrInvalidCursor means a pagination cursor was not one this store issued.
var ErrInvalidCursor = errors.New("invalid cursor")

// DefaultPageSize is the page size used when a Page asks for none.
const DefaultPageSize = 50

// MaxPageSize is the largest page a list returns.
const MaxPageSize = 200

// Page selects one page of a list: the rows after the opaque cursor After
// (empty for the first page), at most Limit of them.
type Page struct {
	After string
	Limit int
}

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageSize
	case p.Limit > MaxPageSize:
		return MaxPageSize
	}
	return p.Limit
}

// Store is the Postgres store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// leasePool is the node lease's own connection (one at most, opened
	// when first used): a renewal never waits behind a pool that a burst
	// of activations or deliveries holds, since a node that misses its
	// renewals for a whole TTL loses every identity it hosts.
	leasePool *pgxpool.Pool
	sealer    *Sealer
	// quarantineRows is the per-bridge cap of quarantined messages; 0
	// means DefaultQuarantineRows.
	quarantineRows atomic.Int64
	// tombstoneFor is how long DeleteBridge keeps a tombstone, in
	// nanoseconds; 0 keeps none.
	tombstoneFor atomic.Int64
	// replyIDs hands out outbox ids drawn from the database in blocks.
	replyIDs idBlock
}

// An Option changes how Open connects.
type Option func(*options)

type options struct{ maxConns int }

// MaxConns caps the store's connections at n (pgx's default is four, or
// the number of CPUs if more: too few for a busy node, whose attempts then
// queue for a connection). A pool_max_conns parameter in the database URL
// wins over it; n <= 0 keeps pgx's default.
func MaxConns(n int) Option { return func(o *options) { o.maxConns = n } }

// Open connects to the database at databaseURL, which must already be
// migrated, and checks that it answers.
func Open(ctx context.Context, databaseURL string, sealer *Sealer, opts ...Option) (*Store, error) {
	if sealer == nil {
		return nil, errors.New("open store: a sealer is required")
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// The parse error can quote the URL, password included.
		return nil, errors.New("open store: parse database url: not a valid postgres url")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxConns > 0 && !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = int32(min(o.maxConns, math.MaxInt32))
	}
	// No JIT compilation (unless the URL asks for it with a jit
	// parameter): every statement of the store is short, and compiling
	// one costs tens of milliseconds. A generic plan made on statistics
	// that lag behind the tables (a node that starts with many bridges
	// and few leases) can cross jit_above_cost: the node's pass over its
	// due work, well under a millisecond to run, was compiled on every
	// pass, about 30 ms each.
	if _, ok := cfg.ConnConfig.RuntimeParams["jit"]; !ok {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	// The batch statements' array parameters (pgarrays.go).
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		registerArrayTypes(c.TypeMap())
		return nil
	}
	leaseCfg := cfg.Copy()
	leaseCfg.MaxConns, leaseCfg.MinConns = 1, 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	leasePool, err := pgxpool.NewWithConfig(ctx, leaseCfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{pool: pool, leasePool: leasePool, sealer: sealer}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Autovacuum reports whether the server runs autovacuum. Without it the
// delivery and outbox tables keep every dead row their updates leave and
// are never analysed; the node still works, more slowly as they grow.
func (s *Store) Autovacuum(ctx context.Context) (bool, error) {
	var on bool
	if err := s.pool.QueryRow(ctx, "SELECT current_setting('autovacuum')::bool").Scan(&on); err != nil {
		return false, fmt.Errorf("read autovacuum setting: %w", err)
	}
	return on, nil
}

// Close closes every connection of the store.
func (s *Store) Close() {
	s.pool.Close()
	s.leasePool.Close()
}

// Pool returns the connection pool, for packages that keep their own tables
// in this database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// mapError turns driver errors into the package's sentinel errors. Every
// other error is a failure of Postgres or of the way to it, and is counted
// in bridge_persistence_errors_total by kind.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
		case "23514", "23502", "22001":
			return fmt.Errorf("%w: %s", ErrInvalid, pgErr.ConstraintName)
		case "23503":
			return ErrNotFound
		}
	}
	return countError(err)
}

// newID returns a time-ordered UUID, so ids sort in creation order and can
// serve as pagination cursors.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// validID reports whether id is a UUID; ids that are not cannot name a row.
func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

// uuidCursor checks a cursor over UUID ids; the empty cursor starts at the
// beginning.
func uuidCursor(after string) (string, error) {
	if after == "" {
		return "00000000-0000-0000-0000-000000000000", nil
	}
	if !validID(after) {
		return "", ErrInvalidCursor
	}
	return after, nil
}

// int64Cursor checks a cursor over descending bigint ids; the empty cursor
// starts at the newest row.
func int64Cursor(after string) (int64, error) {
	if after == "" {
		return 1<<63 - 1, nil
	}
	n, err := strconv.ParseInt(after, 10, 64)
	if err != nil || n <= 0 {
		return 0, ErrInvalidCursor
	}
	return n, nil
}
