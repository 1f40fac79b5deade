package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// CompleteDelivery records the successful attempt of a delivery and, when
// reply is not nil, puts the reply in the outbox, in one transaction under
// the caller's lease. A delivery that already succeeded is left as it is
// and gets no second reply: completed is false and replyID is 0. This is
// what makes every message get at most one reply even when its webhook was
// called more than once. A lost lease is ErrFenced.
func (s *Store) CompleteDelivery(ctx context.Context, l Lease, deliveryID int64, a DeliveryAttempt, reply *Reply) (replyID int64, completed bool, err error) {
	// One statement, fenced by l (fenced.go). The update's own condition,
	// status <> 'succeeded', is what gives one reply only: a concurrent
	// completion of the same delivery waits for this one's row lock, then
	// finds the delivery succeeded and inserts nothing. The update is what
	// locks the row: the attempt and the reply are written only for the
	// delivery it updated, so they never outlive a delivery deleted with
	// its bridge (migration 0014, where foreign keys checked that).
	//
	// A delivery the update did not complete (already succeeded, or
	// missing) goes to completeSettled, a second statement that locks the
	// row first, to record the attempt of a delivery that succeeded before
	// and to tell a missing one. That is rare (a webhook called twice); the
	// common completion takes no separate row lock before its update, which
	// wrote a lock record and dirtied the row's page once more.
	args, err := s.sealCompletion(ctx, deliveryID, reply)
	if err != nil {
		return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, err)
	}
	code := a.statusCode()
	params := leaseArgs(l, deliveryID, code, float64(a.Latency)/float64(time.Millisecond), a.Error,
		args.id, args.bridgeID, args.topic, args.timestampNs, args.envelope, args.keyID, args.nonce,
		args.text, args.textKeyID, args.textNonce)
	var leased, inserted bool
	err = s.pool.QueryRow(ctx, `WITH `+leaseCTE+`,
		done AS (
			UPDATE deliveries SET status = 'succeeded', attempts = attempts + 1, last_error = '', updated_at = now(),
				reply = COALESCE($15, reply), reply_key_id = COALESCE($16, reply_key_id), reply_nonce = COALESCE($17, reply_nonce)
			WHERE id = $4 AND status <> 'succeeded' AND EXISTS (SELECT 1 FROM lease) RETURNING id),
		attempt AS (
			INSERT INTO delivery_attempts (delivery_id, status_code, latency_ms, error)
			SELECT id, $5, $6, $7 FROM done),
		outbox AS (
			INSERT INTO reply_outbox (id, bridge_id, delivery_id, topic, timestamp_ns, envelope, envelope_key_id, envelope_nonce)
			OVERRIDING SYSTEM VALUE
			SELECT $8, $9, done.id, $10, $11, $12, $13, $14 FROM done WHERE $8::bigint IS NOT NULL
			RETURNING id)
		SELECT EXISTS (SELECT 1 FROM lease), EXISTS (SELECT 1 FROM done), EXISTS (SELECT 1 FROM outbox)`,
		params...).Scan(&leased, &completed, &inserted)
	switch {
	case err != nil:
		return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, mapError(err))
	case !leased:
		return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, fencedError(l))
	case !completed:
		return s.completeSettled(ctx, l, deliveryID, args, params)
	}
	if inserted {
		replyID = *args.id
	}
	return replyID, true, nil
}

// completeSettled is CompleteDelivery for a delivery its update did not
// complete: one that had already succeeded, or that is missing. It locks
// the delivery's row before anything else, and records the attempt of a
// delivery it finds, whatever its status; the update, with the same
// condition, then completes it only if it has not succeeded (a delivery
// that succeeded stays so: this adds no reply to it). params are
// CompleteDelivery's.
func (s *Store) completeSettled(ctx context.Context, l Lease, deliveryID int64, args completionArgs, params []any) (replyID int64, completed bool, err error) {
	var leased, found, inserted bool
	err = s.pool.QueryRow(ctx, `WITH `+leaseCTE+`,
		target AS (SELECT id FROM deliveries WHERE id = $4 AND EXISTS (SELECT 1 FROM lease) FOR NO KEY UPDATE),
		attempt AS (
			INSERT INTO delivery_attempts (delivery_id, status_code, latency_ms, error)
			SELECT id, $5, $6, $7 FROM target),
		done AS (
			UPDATE deliveries SET status = 'succeeded', attempts = attempts + 1, last_error = '', updated_at = now(),
				reply = COALESCE($15, reply), reply_key_id = COALESCE($16, reply_key_id), reply_nonce = COALESCE($17, reply_nonce)
			WHERE id = $4 AND status <> 'succeeded' AND EXISTS (SELECT 1 FROM lease) RETURNING id),
		outbox AS (
			INSERT INTO reply_outbox (id, bridge_id, delivery_id, topic, timestamp_ns, envelope, envelope_key_id, envelope_nonce)
			OVERRIDING SYSTEM VALUE
			SELECT $8, $9, done.id, $10, $11, $12, $13, $14 FROM done WHERE $8::bigint IS NOT NULL
			RETURNING id)
		SELECT EXISTS (SELECT 1 FROM lease), EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM done),
			EXISTS (SELECT 1 FROM outbox)`,
		params...).Scan(&leased, &found, &completed, &inserted)
	switch {
	case err != nil:
		return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, mapError(err))
	case !leased:
		return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, fencedError(l))
	case !found:
		return 0, false, fmt.Errorf("complete delivery %d: %w", deliveryID, ErrNotFound)
	}
	if inserted {
		replyID = *args.id
	}
	return replyID, completed, nil
}

// RepliesOf returns the outbox rows of a delivery, oldest first. The
// runtime's tests and the owner's delivery view use it to show the reply a
// message got.
func (s *Store) RepliesOf(ctx context.Context, deliveryID int64) ([]Reply, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+replyColumns+` FROM reply_outbox WHERE delivery_id = $1 ORDER BY id`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("load replies of delivery %d: %w", deliveryID, mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Reply, error) { return s.scanReply(r) })
	if err != nil {
		return nil, fmt.Errorf("load replies of delivery %d: %w", deliveryID, mapError(err))
	}
	return out, nil
}

// DeliveryByID returns a delivery whatever its bridge, for the runtime,
// which reloads a delivery before each attempt so that an attempt never
// works from a stale copy.
func (s *Store) DeliveryByID(ctx context.Context, deliveryID int64) (Delivery, error) {
	d, err := s.scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries d WHERE d.id = $1`, deliveryID))
	if err != nil {
		return Delivery{}, fmt.Errorf("get delivery %d: %w", deliveryID, mapError(err))
	}
	return d, nil
}

// Completion is one successful attempt for CompleteDeliveries: its
// delivery, the lease it was made under, and the reply, if any.
type Completion struct {
	Lease      Lease
	DeliveryID int64
	Attempt    DeliveryAttempt
	Reply      *Reply
}

// Completed is the outcome of one Completion: what CompleteDelivery
// returns for it.
type Completed struct {
	ReplyID   int64
	Completed bool
	Err       error
}

// completionArgs is a Completion's reply drawn an id and sealed.
type completionArgs struct {
	id                     *int64
	bridgeID, topic, keyID *string
	timestampNs            *int64
	envelope, nonce        []byte
	text, textNonce        []byte
	textKeyID              *string
}

// sealCompletion draws the reply's outbox id and seals its envelope and
// text to their rows (the reply's text is kept, sealed, in the delivery's
// record). A nil reply gives no arguments.
func (s *Store) sealCompletion(ctx context.Context, deliveryID int64, reply *Reply) (completionArgs, error) {
	var c completionArgs
	if reply == nil {
		return c, nil
	}
	rid, err := s.nextReplyID(ctx)
	if err != nil {
		return c, err
	}
	env := reply.Envelope
	if env == nil {
		env = []byte{}
	}
	canon := canonicalID(reply.BridgeID)
	sealed, err := s.sealContent(env, replyEnvelopeAAD(canon, rid))
	if err != nil {
		return c, err
	}
	c.id, c.bridgeID, c.topic, c.timestampNs = &rid, &canon, &reply.Topic, &reply.TimestampNs
	c.envelope, c.keyID, c.nonce = sealed.data, sealed.keyID, sealed.nonce
	if reply.Text != "" {
		t, err := s.sealContent([]byte(reply.Text), deliveryReplyAAD(canon, deliveryID))
		if err != nil {
			return c, err
		}
		c.text, c.textKeyID, c.textNonce = t.data, t.keyID, t.nonce
	}
	return c, nil
}

// CompleteDeliveries is CompleteDelivery for many deliveries, of any
// identities, in one statement. It returns one Completed per input, in
// order. A delivery named twice is completed the second time on its own,
// after the batch; a failed statement (a deadlock Postgres broke, a
// constraint), or one whose rows could not be read, completes the batch
// one delivery at a time (completeAgain), which still hands back the
// replies the statement put in the outbox if it ran.
//
// Locks. Each row is fenced by its own lease (leaseLive), read without
// locking the lease rows: a statement that locked several identities'
// lease rows could deadlock against RenewLeases, which updates many of
// them in no set order. What a lock on the lease would add is that a
// take-over waits for a completion already under way; without it, such a
// completion can commit just after the take-over, which is the same as
// committing just before it: its reply is in the outbox for the new
// activation to publish, and a completion by the new activation of the
// same delivery waits for the row lock taken here, finds it succeeded and
// adds no reply. The deliveries' rows are locked in id order (target), so
// two batches that share deliveries wait for each other instead of
// deadlocking.
func (s *Store) CompleteDeliveries(ctx context.Context, cs []Completion) []Completed {
	out := make([]Completed, len(cs))
	if len(cs) == 1 {
		s.completeOneByOne(ctx, cs, out, []int{0})
		return out
	}
	var (
		identities, owners, errs             []string
		bridges, topics, keyIDs, textKeyIDs  []*string
		epochs, deliveries                   []int64
		replyIDs, stamps                     []*int64
		codes                                []*int32
		latencies                            []float64
		envelopes, nonces, texts, textNonces [][]byte
		index, again                         []int
		seen                                 = map[int64]bool{}
	)
	for i, c := range cs {
		if seen[c.DeliveryID] {
			again = append(again, i)
			continue
		}
		seen[c.DeliveryID] = true
		args, err := s.sealCompletion(ctx, c.DeliveryID, c.Reply)
		if err != nil {
			out[i].Err = fmt.Errorf("complete delivery %d: %w", c.DeliveryID, err)
			continue
		}
		var code *int32
		if c.Attempt.statusCode() != nil {
			v := int32(c.Attempt.StatusCode)
			code = &v
		}
		// The columns that are never NULL go as values.
		identities, owners = append(identities, c.Lease.Identity), append(owners, c.Lease.Owner)
		epochs, deliveries = append(epochs, c.Lease.Epoch), append(deliveries, c.DeliveryID)
		codes, latencies, errs = append(codes, code), append(latencies, float64(c.Attempt.Latency)/float64(time.Millisecond)), append(errs, c.Attempt.Error)
		replyIDs, bridges, topics, stamps = append(replyIDs, args.id), append(bridges, args.bridgeID), append(topics, args.topic), append(stamps, args.timestampNs)
		envelopes, keyIDs, nonces = append(envelopes, args.envelope), append(keyIDs, args.keyID), append(nonces, args.nonce)
		texts, textKeyIDs, textNonces = append(texts, args.text), append(textKeyIDs, args.textKeyID), append(textNonces, args.textNonce)
		index = append(index, i)
	}
	if len(index) > 0 {
		s.completeBatch(ctx, cs, out, index, []any{identities, owners, epochs, deliveries, codes, latencies, errs,
			replyIDs, bridges, topics, stamps, envelopes, keyIDs, nonces, texts, textKeyIDs, textNonces})
	}
	s.completeOneByOne(ctx, cs, out, again)
	return out
}

// completeBatch runs the statement of CompleteDeliveries for the inputs at
// index, whose parameters are args.
func (s *Store) completeBatch(ctx context.Context, cs []Completion, out []Completed, index []int, args []any) {
	rows, err := s.pool.Query(ctx, `
		WITH input AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::int[], $6::float8[], $7::text[],
				$8::bigint[], $9::text[]::uuid[], $10::text[], $11::bigint[], $12::bytea[], $13::text[], $14::bytea[],
				$15::bytea[], $16::text[], $17::bytea[]) WITH ORDINALITY
				AS i(l_identity, l_owner, l_epoch, delivery_id, status_code, latency_ms, error,
					reply_id, bridge_id, topic, timestamp_ns, envelope, envelope_key_id, envelope_nonce,
					text, text_key_id, text_nonce, ord)),
		fresh AS (
			SELECT i.* FROM input i WHERE EXISTS (SELECT 1 FROM identity_leases l
				WHERE l.identity = i.l_identity AND l.owner = i.l_owner AND l.epoch = i.l_epoch AND `+leaseLive+`)),
		target AS (
			SELECT d.id FROM deliveries d WHERE d.id IN (SELECT delivery_id FROM fresh) ORDER BY d.id FOR NO KEY UPDATE),
		attempt AS (
			INSERT INTO delivery_attempts (delivery_id, status_code, latency_ms, error)
			SELECT f.delivery_id, f.status_code, f.latency_ms, f.error FROM fresh f JOIN target t ON t.id = f.delivery_id
			ORDER BY f.ord),
		done AS (
			UPDATE deliveries d SET status = 'succeeded', attempts = d.attempts + 1, last_error = '', updated_at = now(),
				reply = COALESCE(f.text, d.reply), reply_key_id = COALESCE(f.text_key_id, d.reply_key_id),
				reply_nonce = COALESCE(f.text_nonce, d.reply_nonce)
			FROM fresh f
			WHERE d.id = f.delivery_id AND d.status <> 'succeeded' AND d.id IN (SELECT id FROM target) RETURNING d.id),
		outbox AS (
			INSERT INTO reply_outbox (id, bridge_id, delivery_id, topic, timestamp_ns, envelope, envelope_key_id, envelope_nonce)
			OVERRIDING SYSTEM VALUE
			SELECT f.reply_id, f.bridge_id, f.delivery_id, f.topic, f.timestamp_ns, f.envelope, f.envelope_key_id, f.envelope_nonce
			FROM fresh f JOIN done ON done.id = f.delivery_id WHERE f.reply_id IS NOT NULL ORDER BY f.ord
			RETURNING delivery_id)
		SELECT i.ord, f.ord IS NOT NULL, t.id IS NOT NULL, dn.id IS NOT NULL, o.delivery_id IS NOT NULL
		FROM input i LEFT JOIN fresh f ON f.ord = i.ord LEFT JOIN target t ON t.id = i.delivery_id
			LEFT JOIN done dn ON dn.id = i.delivery_id LEFT JOIN outbox o ON o.delivery_id = i.delivery_id`, pgArrays(args...)...)
	replyIDs := args[7].([]*int64)
	if err != nil {
		s.completeAgain(ctx, cs, out, index, replyIDs)
		return
	}
	seen := 0
	for rows.Next() {
		var (
			ord                                int64
			leased, found, completed, inserted bool
		)
		if err := rows.Scan(&ord, &leased, &found, &completed, &inserted); err != nil || ord < 1 || int(ord) > len(index) {
			rows.Close()
			s.completeAgain(ctx, cs, out, index, replyIDs)
			return
		}
		i := index[ord-1]
		c := cs[i]
		switch {
		case !leased:
			out[i].Err = fmt.Errorf("complete delivery %d: %w", c.DeliveryID, fencedError(c.Lease))
		case !found:
			out[i].Err = fmt.Errorf("complete delivery %d: %w", c.DeliveryID, ErrNotFound)
		default:
			out[i].Completed = completed
			if inserted {
				out[i].ReplyID = *replyIDs[ord-1]
			}
		}
		seen++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		// The statement failed as a whole (a deadlock Postgres broke, a
		// constraint), and nothing of it was written, or its rows could
		// not be read after it ran (the connection broke).
		s.completeAgain(ctx, cs, out, index, replyIDs)
	} else if seen != len(index) {
		for _, i := range index {
			if out[i].Err == nil && !out[i].Completed && out[i].ReplyID == 0 {
				out[i].Err = fmt.Errorf("complete delivery %d: the batch returned %d rows for %d", cs[i].DeliveryID, seen, len(index))
			}
		}
	}
}

// completeAgain completes the inputs at index one statement each, after
// the batch statement failed or its rows could not be read. The statement
// may have run all the same: a delivery it completed is then found
// succeeded by the second try, which adds no reply. The reply the
// statement put in the outbox for it, found by the outbox id drawn for it
// (replyIDs, by position in index), is handed back instead, so that the
// caller publishes it at once rather than leaving it to the sweep.
func (s *Store) completeAgain(ctx context.Context, cs []Completion, out []Completed, index []int, replyIDs []*int64) {
	s.completeOneByOne(ctx, cs, out, index)
	var drawn []int64
	at := map[int64]int{}
	for k, i := range index {
		if out[i].Err == nil && out[i].ReplyID == 0 && replyIDs[k] != nil {
			drawn = append(drawn, *replyIDs[k])
			at[*replyIDs[k]] = i
		}
	}
	if len(drawn) == 0 {
		return
	}
	rows, err := s.pool.Query(ctx, `SELECT o.id FROM unnest($1::bigint[]) AS r(id) JOIN reply_outbox o ON o.id = r.id`, drawn)
	var ids []int64
	if err == nil {
		ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		// The replies, if the first statement stored them, stay in the
		// outbox for the sweep to publish; the error says that the
		// outcome is not known, so that the caller holds their
		// conversations back until the sweep has looked.
		for id, i := range at {
			out[i].Err = fmt.Errorf("complete delivery %d: look up the reply %d its first statement may have stored: %w", cs[i].DeliveryID, id, mapError(err))
		}
		return
	}
	for _, id := range ids {
		i := at[id]
		out[i].ReplyID, out[i].Completed = id, true
	}
}

// completeOneByOne completes the inputs at index one statement each: a
// batch of one, a delivery named twice, or a batch whose statement failed.
func (s *Store) completeOneByOne(ctx context.Context, cs []Completion, out []Completed, index []int) {
	for _, i := range index {
		c := cs[i]
		out[i].ReplyID, out[i].Completed, out[i].Err = s.CompleteDelivery(ctx, c.Lease, c.DeliveryID, c.Attempt, c.Reply)
	}
}
