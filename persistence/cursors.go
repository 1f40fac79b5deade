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

// CursorMove is a cursor to move, under the lease of the activation that
// read up to it.
type CursorMove struct {
	Lease       Lease
	BridgeID    string
	Topic       string
	TimestampNs int64
	Digest      []byte
}

// SaveCursors is SaveCursor for many cursors, of any identities, in one
// statement. It returns one error per move, in order: nil, ErrFenced when
// the move's lease is not current, or the statement's error for every
// move. Two moves of one topic keep the newer.
//
// Each move is fenced by its own lease (leaseLive) without locking the
// lease rows, as CompleteDeliveries is: a move that commits just after a
// take-over only moves the cursor past deliveries the old activation had
// already recorded, which the new one finds in the store. Cursor rows are
// written in (bridge, topic) order, so two batches wait for each other
// instead of deadlocking. The statement commits without waiting for the
// disk (asyncCommit): a move lost in a crash of Postgres only replays
// messages whose deliveries were recorded before it.
func (s *Store) SaveCursors(ctx context.Context, moves []CursorMove) []error {
	out := make([]error, len(moves))
	var (
		identities, owners, bridges, topics []string
		epochs, stamps                      []int64
		digests                             [][]byte
		index                               []int
	)
	for i, m := range moves {
		if !validID(m.BridgeID) {
			out[i] = fmt.Errorf("save cursor: %w", ErrNotFound)
			continue
		}
		identities, owners, epochs = append(identities, m.Lease.Identity), append(owners, m.Lease.Owner), append(epochs, m.Lease.Epoch)
		bridges, topics = append(bridges, canonicalID(m.BridgeID)), append(topics, m.Topic)
		stamps, digests = append(stamps, m.TimestampNs), append(digests, m.Digest)
		index = append(index, i)
	}
	if len(index) == 0 {
		return out
	}
	rows, err := s.pool.Query(ctx, `
		WITH input AS (
			SELECT * FROM unnest((SELECT $1::text[]), (SELECT $2::text[]), (SELECT $3::bigint[]), (SELECT $4::text[]::uuid[]), (SELECT $5::text[]), (SELECT $6::bigint[]), (SELECT $7::bytea[]))
				WITH ORDINALITY AS i(l_identity, l_owner, l_epoch, bridge_id, topic, ts, digest, ord)),
		live AS (
			SELECT i.* FROM input i WHERE EXISTS (SELECT 1 FROM identity_leases l
				WHERE l.identity = i.l_identity AND l.owner = i.l_owner AND l.epoch = i.l_epoch AND `+leaseLive+`)),
		moved AS (
			INSERT INTO cursors AS c (bridge_id, topic, last_timestamp_ns, last_digest)
			SELECT bridge_id, topic, ts, digest FROM (
				SELECT DISTINCT ON (bridge_id, topic) bridge_id, topic, ts, digest FROM live
				ORDER BY bridge_id, topic, ts DESC) newest
			ORDER BY bridge_id, topic
			ON CONFLICT (bridge_id, topic) DO UPDATE SET last_timestamp_ns = EXCLUDED.last_timestamp_ns,
				last_digest = EXCLUDED.last_digest, updated_at = now()
			WHERE c.last_timestamp_ns <= EXCLUDED.last_timestamp_ns)
		SELECT ord FROM live, `+asyncCommit+``, pgArrays(identities, owners, epochs, bridges, topics, stamps, digests)...)
	fail := func(err error) []error {
		for _, i := range index {
			out[i] = fmt.Errorf("save cursors: %w", mapError(err))
		}
		return out
	}
	if err != nil {
		return fail(err)
	}
	live := make([]bool, len(index))
	for rows.Next() {
		var ord int64
		if err := rows.Scan(&ord); err != nil || ord < 1 || int(ord) > len(index) {
			rows.Close()
			if err == nil {
				err = fmt.Errorf("row %d of %d", ord, len(index))
			}
			return fail(err)
		}
		live[ord-1] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	for k, i := range index {
		if !live[k] {
			out[i] = fmt.Errorf("save cursor of %s: %w", moves[i].Topic, fencedError(moves[i].Lease))
		}
	}
	return out
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
