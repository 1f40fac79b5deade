package node

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
)

const (
	// defaultPageSize is the page size of a query that names none, and the
	// largest one allowed, as in xmtp-node-go.
	defaultPageSize = 100
)

const insertEnvelope = `INSERT INTO xmtp_envelopes (topic, timestamp_ns, digest, message)
	VALUES ($1, $2, $3, $4) ON CONFLICT (topic, timestamp_ns, digest) DO NOTHING`

// store keeps envelopes in Postgres.
type store struct {
	pool *pgxpool.Pool
}

// Digest returns the digest that identifies an envelope in paging cursors:
// sha256 of the content topic followed by the message bytes, as
// xmtp-node-go computes it.
func Digest(env *messagev1.Envelope) []byte {
	h := sha256.New()
	h.Write([]byte(env.ContentTopic))
	h.Write(env.Message)
	return h.Sum(nil)
}

// insert stores envs in one transaction and returns those that were new.
// An envelope whose topic, timestamp and digest are already stored is
// skipped, so publishing the same envelope twice stores it once.
func (s *store) insert(ctx context.Context, envs []*messagev1.Envelope) ([]*messagev1.Envelope, error) {
	switch len(envs) {
	case 0:
		return nil, nil
	case 1:
		// One statement commits on its own: no transaction round trips.
		env := envs[0]
		tag, err := s.pool.Exec(ctx, insertEnvelope, env.ContentTopic, int64(env.TimestampNs), Digest(env), env.Message)
		if err != nil {
			return nil, fmt.Errorf("insert envelope: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil, nil
		}
		return envs, nil
	}
	// One batch is one round trip and one transaction: its statements
	// run before a single Sync, which Postgres commits as a whole or not
	// at all.
	batch := &pgx.Batch{}
	for _, env := range envs {
		batch.Queue(insertEnvelope, env.ContentTopic, int64(env.TimestampNs), Digest(env), env.Message)
	}
	results := s.pool.SendBatch(ctx, batch)
	fresh := make([]*messagev1.Envelope, 0, len(envs))
	for _, env := range envs {
		tag, err := results.Exec()
		if err != nil {
			results.Close()
			return nil, fmt.Errorf("insert envelope: %w", err)
		}
		if tag.RowsAffected() == 1 {
			fresh = append(fresh, env)
		}
	}
	// The commit's error shows at Close.
	if err := results.Close(); err != nil {
		return nil, fmt.Errorf("commit publish: %w", err)
	}
	return fresh, nil
}

// query answers one validated query. The order is (timestamp, digest),
// ascending or descending, and the cursor names the last envelope of the
// previous page: the next page starts strictly after it.
//
// A page also ends once its messages reach budget bytes (after at least
// one envelope), with a cursor to the rest, so that a topic of large
// envelopes costs the node at most about budget bytes per answer instead
// of a full page of the largest envelopes. Clients page on while a cursor
// comes back, as they do after a full page.
func (s *store) query(ctx context.Context, q validQuery, budget int) (*messagev1.QueryResponse, error) {
	sql, args := querySQL(q)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query envelopes: %w", err)
	}
	defer rows.Close()
	return scanPage(rows, q, budget)
}

// queryBatch answers qs in order in one round trip, the queries sharing
// budget as store.query's budget, each still getting at least one
// envelope. observe is given each query's share of the time.
func (s *store) queryBatch(ctx context.Context, qs []validQuery, budget int, observe func(time.Duration)) ([]*messagev1.QueryResponse, error) {
	batch := &pgx.Batch{}
	for _, q := range qs {
		sql, args := querySQL(q)
		batch.Queue(sql, args...)
	}
	start := time.Now()
	results := s.pool.SendBatch(ctx, batch)
	defer results.Close()
	out := make([]*messagev1.QueryResponse, 0, len(qs))
	for _, q := range qs {
		rows, err := results.Query()
		if err != nil {
			return nil, fmt.Errorf("query envelopes: %w", err)
		}
		resp, err := scanPage(rows, q, max(budget, 1))
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return nil, err
		}
		for _, env := range resp.Envelopes {
			budget -= len(env.Message) + len(env.ContentTopic)
		}
		now := time.Now()
		observe(now.Sub(start))
		start = now
		out = append(out, resp)
	}
	if err := results.Close(); err != nil {
		return nil, fmt.Errorf("query envelopes: %w", err)
	}
	return out, nil
}

// querySQL is the statement of q and its arguments.
func querySQL(q validQuery) (string, []any) {
	sql := `SELECT topic, timestamp_ns, message, digest FROM xmtp_envelopes
		WHERE topic = ANY($1) AND timestamp_ns >= $2 AND timestamp_ns <= $3`
	args := []any{q.topics, q.start, q.end}
	order := " ORDER BY timestamp_ns ASC, digest ASC"
	cmp := ">"
	if q.descending {
		order = " ORDER BY timestamp_ns DESC, digest DESC"
		cmp = "<"
	}
	if q.cursor != nil {
		sql += " AND (timestamp_ns, digest) " + cmp + " ($4, $5)"
		args = append(args, q.cursor.timestamp, q.cursor.digest)
	}
	return sql + order + fmt.Sprintf(" LIMIT %d", q.limit), args
}

// scanPage reads one page of q from rows, ending it once its messages
// reach budget bytes (after at least one envelope).
func scanPage(rows pgx.Rows, q validQuery, budget int) (*messagev1.QueryResponse, error) {
	var envs []*messagev1.Envelope
	var lastDigest []byte
	size, cut := 0, false
	for rows.Next() {
		if size >= budget && len(envs) > 0 {
			cut = true
			break
		}
		var env messagev1.Envelope
		var ts int64
		if err := rows.Scan(&env.ContentTopic, &ts, &env.Message, &lastDigest); err != nil {
			return nil, fmt.Errorf("read envelope: %w", err)
		}
		env.TimestampNs = uint64(ts)
		envs = append(envs, &env)
		size += len(env.Message) + len(env.ContentTopic)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query envelopes: %w", err)
	}
	dir := messagev1.SortDirection_SORT_DIRECTION_ASCENDING
	if q.descending {
		dir = messagev1.SortDirection_SORT_DIRECTION_DESCENDING
	}
	info := &messagev1.PagingInfo{Direction: dir}
	if (cut || len(envs) == q.limit) && len(envs) > 0 {
		last := envs[len(envs)-1]
		info.Limit = uint32(q.limit)
		info.Cursor = &messagev1.Cursor{Cursor: &messagev1.Cursor_Index{Index: &messagev1.IndexCursor{
			Digest:       lastDigest,
			SenderTimeNs: last.TimestampNs,
		}}}
	}
	return &messagev1.QueryResponse{Envelopes: envs, PagingInfo: info}, nil
}

// ping checks that Postgres answers.
func (s *store) ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// clampTime turns a request's uint64 nanosecond time into the signed range
// the table stores.
func clampTime(ns uint64) int64 {
	if ns > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(ns)
}
