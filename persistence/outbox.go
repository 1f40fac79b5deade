package persistence

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReplyStatus is the state of a reply in the outbox.
type ReplyStatus string

// The states of a reply.
const (
	// ReplyPending replies wait for their first publish.
	ReplyPending ReplyStatus = "pending"
	// ReplySent replies were published.
	ReplySent ReplyStatus = "sent"
	// ReplyFailed replies failed to publish and wait for a retry.
	ReplyFailed ReplyStatus = "failed"
	// ReplyDead replies ran out of attempts.
	ReplyDead ReplyStatus = "dead"
)

// Reply is an XMTP envelope waiting in the outbox. The envelope bytes carry
// their fixed timestamp, so every retry publishes the same message. They
// are sealed at rest, bound to the reply's row.
type Reply struct {
	ID          int64
	BridgeID    string
	DeliveryID  *int64
	Topic       string
	TimestampNs int64
	Envelope    []byte
	// Text is the reply in clear, for CompleteDelivery to keep sealed in
	// the delivery's record; it is not part of the outbox row.
	Text          string
	Status        ReplyStatus
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	// PurgedAt is when the retention sweep erased the envelope of this
	// sent reply (Envelope is then empty); nil while it is kept.
	PurgedAt *time.Time
}

const replyColumns = `id, bridge_id, delivery_id, topic, timestamp_ns, envelope, envelope_key_id, envelope_nonce, status,
	attempts, next_attempt_at, last_error, created_at, purged_at`

// scanReply reads a row of replyColumns and opens its envelope.
func (s *Store) scanReply(r pgx.Row) (Reply, error) {
	var x Reply
	var c storedContent
	if err := r.Scan(&x.ID, &x.BridgeID, &x.DeliveryID, &x.Topic, &x.TimestampNs, &c.data, &c.keyID, &c.nonce, &x.Status,
		&x.Attempts, &x.NextAttemptAt, &x.LastError, &x.CreatedAt, &x.PurgedAt); err != nil {
		return Reply{}, err
	}
	env, err := s.openContent(c, replyEnvelopeAAD(x.BridgeID, x.ID))
	if err != nil {
		return Reply{}, fmt.Errorf("open envelope of reply %d: %w", x.ID, err)
	}
	x.Envelope = env
	return x, nil
}

// insertReply puts r in the outbox within tx, its envelope sealed to the
// row: the id is drawn first, so the additional data can name it.
func (s *Store) insertReply(ctx context.Context, tx pgx.Tx, r Reply) (int64, error) {
	var id int64
	if err := tx.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('reply_outbox', 'id'))`).Scan(&id); err != nil {
		return 0, err
	}
	env := r.Envelope
	if env == nil {
		env = []byte{}
	}
	sealed, err := s.sealContent(env, replyEnvelopeAAD(canonicalID(r.BridgeID), id))
	if err != nil {
		return 0, err
	}
	// The bridge must exist, and the delivery when the reply names one
	// (migration 0014 checks these here instead of with foreign keys):
	// their rows are locked as the foreign keys did, which a delete of the
	// bridge waits for. This is off the forward path, and its transaction
	// may go on to write rows whose foreign keys lock the bridge's row
	// anyway: bridge_accepts_writes's advisory lock, held before that row
	// lock, could deadlock with a delete holding them the other way round.
	tag, err := tx.Exec(ctx, `INSERT INTO reply_outbox (id, bridge_id, delivery_id, topic, timestamp_ns, envelope, envelope_key_id, envelope_nonce)
		OVERRIDING SYSTEM VALUE SELECT $1, $2::uuid, $3::bigint, $4, $5, $6, $7, $8
		WHERE EXISTS (SELECT 1 FROM bridges WHERE id = $2::uuid FOR KEY SHARE)
			AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM deliveries WHERE id = $3::bigint AND bridge_id = $2::uuid FOR KEY SHARE))`,
		id, r.BridgeID, r.DeliveryID, r.Topic, r.TimestampNs, sealed.data, sealed.keyID, sealed.nonce)
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	return id, err
}

// EnqueueReply stores an envelope to publish, under the caller's lease, and
// returns its outbox id. A lost lease is ErrFenced.
func (s *Store) EnqueueReply(ctx context.Context, l Lease, r Reply) (int64, error) {
	if !validID(r.BridgeID) {
		return 0, fmt.Errorf("enqueue reply: %w", ErrNotFound)
	}
	var id int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		var err error
		id, err = s.insertReply(ctx, tx, r)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue reply: %w", mapError(err))
	}
	return id, nil
}

// DueReplies returns up to limit replies of a bridge that are due for a
// publish attempt. The replies of one conversation to the messages it
// forwarded (those with a delivery) come in the order of their messages,
// by delivery id, and only up to the first of them that is not due yet (a
// reply waiting for its retry): the ones behind it wait for it, so that
// the conversation gets its replies in order, after a restart too. Other
// replies (sends, live replies, broadcast copies) come by id. The page
// takes the first due reply of every conversation (and of the other
// replies of each) before the second of any (dueRepliesQuery).
func (s *Store) DueReplies(ctx context.Context, bridgeID string, limit int) ([]Reply, error) {
	if !validID(bridgeID) {
		return nil, fmt.Errorf("load due replies: %w", ErrNotFound)
	}
	limit = Page{Limit: limit}.limit()
	rows, err := s.pool.Query(ctx, dueRepliesQuery, bridgeID, limit)
	if err != nil {
		return nil, fmt.Errorf("load due replies: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Reply, error) { return s.scanReply(r) })
	if err != nil {
		return nil, fmt.Errorf("load due replies: %w", mapError(err))
	}
	return out, nil
}

// dueRepliesQuery is DueReplies' read ($1 the bridge, $2 the limit).
//
// The page is taken in rounds: round n takes the n-th due reply of every
// conversation that has one, in delivery id order (then by id), and the
// n-th of its other replies (sends, live replies, broadcast copies: no
// delivery) after them, by id; the page is the first $2 in round order.
// So the page takes the first of every conversation before the second of
// any, and a conversation with many replies held behind a failing one
// does not fill it, while a conversation's replies still come in order.
// A conversation's replies to messages stop at the first that is not due
// (it waits for its retry), and with it every other reply to the same
// message: the replies behind it wait. Its other replies that are not due
// are skipped.
//
// It costs one page, not the backlog. topics finds the conversations with
// unsent replies, one probe of reply_outbox_order_idx each; each round
// steps every conversation still going one row along that index from
// where its last round stopped, and the rounds stop once they hold $2
// replies: the rows read are the page, one per conversation for the round
// that fills it, and the not-due replies skipped. Ranking every due reply
// of the bridge for each page made draining a backlog of N replies cost
// N per page (TestDueRepliesReadAPageNotTheBacklog). The page's rows are
// then read whole by primary key, one look-up each.
//
// A round is one row of arrays, the conversations still going and where
// each stopped (ts, ks: other replies, ds, ids), so that the recursion
// can count what it holds.
var dueRepliesQuery = `WITH RECURSIVE topics AS (
			SELECT (SELECT min(topic) FROM reply_outbox WHERE bridge_id = $1 AND status IN ('pending', 'failed')) AS t
			UNION ALL
			SELECT (SELECT min(topic) FROM reply_outbox WHERE bridge_id = $1 AND status IN ('pending', 'failed') AND topic > p.t)
			FROM topics p WHERE p.t IS NOT NULL),
		rounds AS (
			SELECT 1 AS n, 0::bigint AS before, array_agg(g.t) AS ts, array_agg(k.other) AS ks, array_agg(x.d) AS ds, array_agg(x.id) AS ids
			FROM topics g CROSS JOIN (VALUES (false), (true)) AS k(other)
			CROSS JOIN LATERAL (` + dueReplyStep("g.t", "k.other", "") + `) x
			WHERE g.t IS NOT NULL
			UNION ALL
			SELECT r.n + 1, r.before + cardinality(r.ids), nx.ts, nx.ks, nx.ds, nx.ids
			FROM rounds r CROSS JOIN LATERAL (
				SELECT array_agg(c.t) AS ts, array_agg(c.other) AS ks, array_agg(x.d) AS ds, array_agg(x.id) AS ids
				FROM unnest(r.ts, r.ks, r.ds, r.ids) AS c(t, other, d, i)
				CROSS JOIN LATERAL (` + dueReplyStep("c.t", "c.other", "c") + `) x) nx
			WHERE r.before + cardinality(r.ids) < $2 AND nx.ids IS NOT NULL),
		page AS (
			SELECT u.id, u.d, r.n FROM rounds r CROSS JOIN LATERAL unnest(r.ds, r.ids) AS u(d, id)
			ORDER BY r.n, u.d NULLS LAST, u.id LIMIT $2)
		SELECT ` + qualified("o.", replyColumns) + ` FROM page p
		CROSS JOIN LATERAL (SELECT * FROM reply_outbox o WHERE o.id = p.id LIMIT 1) o
		ORDER BY p.n, p.d NULLS LAST, p.id`

// dueReplyStep is one round's step of one conversation in dueRepliesQuery:
// the next due reply (id, d its delivery id) of the conversation topic, of
// its replies to messages or, when other, of its other replies, after
// where cursor (a row of d and i) stopped, or its first when cursor is "".
// A reply to a message is taken when every reply to that message is due
// (one probe of the index for that message's replies), and ends
// the conversation's rounds otherwise. Each look-up is a sub-select of
// the row before, so that it is planned as a probe of the index for that
// row whatever the table's statistics say.
func dueReplyStep(topic, other, cursor string) string {
	afterReply, afterOther := "", ""
	if cursor != "" {
		afterReply = " AND (delivery_id, id) > (" + cursor + ".d, " + cursor + ".i)"
		afterOther = " AND id > " + cursor + ".i"
	}
	return `SELECT o.id, o.delivery_id AS d FROM (
				SELECT id, delivery_id, next_attempt_at FROM reply_outbox
				WHERE NOT ` + other + ` AND bridge_id = $1 AND topic = ` + topic + ` AND status IN ('pending', 'failed')
					AND delivery_id IS NOT NULL` + afterReply + `
				ORDER BY delivery_id, id LIMIT 1) o
			WHERE NOT (SELECT bool_or(h.next_attempt_at > now()) FROM reply_outbox h
				WHERE h.bridge_id = $1 AND h.topic = ` + topic + ` AND h.status IN ('pending', 'failed')
					AND h.delivery_id = o.delivery_id)
			UNION ALL
			(SELECT id, NULL::bigint FROM reply_outbox
				WHERE ` + other + ` AND bridge_id = $1 AND topic = ` + topic + ` AND status IN ('pending', 'failed')
					AND delivery_id IS NULL` + afterOther + ` AND next_attempt_at <= now()
				ORDER BY id LIMIT 1)`
}

// qualified qualifies each of a comma-separated list of columns.
func qualified(p, columns string) string {
	parts := strings.Split(columns, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// UnsentReplyTopics returns those of topics (every topic when topics is
// nil) in which the bridge has a reply to a forwarded message that is not
// out yet: pending or failed, due or not. The forward child holds the
// replies of such a conversation back until the older ones are out.
func (s *Store) UnsentReplyTopics(ctx context.Context, bridgeID string, topics []string) ([]string, error) {
	if !validID(bridgeID) {
		return nil, fmt.Errorf("load unsent reply topics: %w", ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT topic FROM reply_outbox
		WHERE bridge_id = $1 AND status IN ('pending', 'failed') AND delivery_id IS NOT NULL
			AND ($2::text[] IS NULL OR topic = ANY ($2::text[]))`, bridgeID, topics)
	if err != nil {
		return nil, fmt.Errorf("load unsent reply topics: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("load unsent reply topics: %w", mapError(err))
	}
	return out, nil
}

// RecordReplyAttempt stores the outcome of one publish attempt under the
// caller's lease: status ReplySent, ReplyFailed (retry at nextAttemptAt)
// or ReplyDead. A lost lease is ErrFenced.
func (s *Store) RecordReplyAttempt(ctx context.Context, l Lease, replyID int64, status ReplyStatus, lastError string, nextAttemptAt time.Time) error {
	return s.RecordReplyAttempts(ctx, l, []int64{replyID}, status, lastError, nextAttemptAt)
}

// RecordReplyAttempts is RecordReplyAttempt for replies published together
// in one statement. A reply id that is not in the outbox is ErrNotFound;
// the others are still recorded. A reply recorded as sent stays sent
// whatever is recorded after it: the XMTP node has it, and a later publish
// of the same envelope that failed (a sweep that read the reply as due
// just before its batch recorded it) must not make it due again.
func (s *Store) RecordReplyAttempts(ctx context.Context, l Lease, replyIDs []int64, status ReplyStatus, lastError string, nextAttemptAt time.Time) error {
	// One statement, fenced by l (fenced.go), that commits without
	// waiting for the disk (asyncCommit). One reply is matched by
	// "id = $4", whose cached plan reads the primary key whatever the
	// table's size; several are matched by "id = ANY", planned for the
	// ids given (QueryExecModeCacheDescribe), because the cached plan of
	// "id = ANY" made on a small table reads the whole table, however
	// large it has grown since.
	match, args := `id = $4::bigint`, leaseArgs(l, int64(0), string(status), lastError, nextAttemptAt)
	if len(replyIDs) == 1 {
		args[3] = replyIDs[0]
	} else {
		match, args = `id = ANY ($4::bigint[])`, append([]any{pgx.QueryExecModeCacheDescribe}, leaseArgs(l, int8Array(replyIDs), string(status), lastError, nextAttemptAt)...)
	}
	var leased bool
	var found int
	err := s.pool.QueryRow(ctx, `WITH `+leaseCTE+`,
		done AS (
			UPDATE reply_outbox SET attempts = attempts + 1, updated_at = now(),
				status = CASE WHEN status = 'sent' THEN status ELSE $5 END,
				last_error = CASE WHEN status = 'sent' THEN last_error ELSE $6 END,
				next_attempt_at = CASE WHEN status = 'sent' THEN next_attempt_at ELSE $7 END
			WHERE `+match+` AND EXISTS (SELECT 1 FROM lease) RETURNING id)
		SELECT EXISTS (SELECT 1 FROM lease), (SELECT count(*) FROM done) FROM `+asyncCommit, args...).Scan(&leased, &found)
	switch {
	case err != nil:
		return fmt.Errorf("record reply attempt: %w", mapError(err))
	case !leased:
		return fmt.Errorf("record reply attempt: %w", fencedError(l))
	case found < len(replyIDs):
		return fmt.Errorf("record reply attempt: %d of %d replies: %w", len(replyIDs)-found, len(replyIDs), ErrNotFound)
	}
	return nil
}
