package persistence

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Group commit of inbound messages.
//
// A busy node records many deliveries at once, for many identities. They
// go to Postgres as one statement per batch, each row fenced by its own
// lease, instead of one round trip per message.

// Recorded is the outcome of recording one NewDelivery of a batch.
type Recorded struct {
	Delivery Delivery
	// Created is false when the message had already been recorded.
	Created bool
	// Err is ErrFenced when the row's lease is no longer current and the
	// message has no row; a message already recorded (by this activation
	// or its successor) is returned as it is.
	Err error
	// Secrets are the bridge's webhook secrets, read in the round trip
	// that created the row, so that its first attempt can start at once
	// (StartAttempt's reads, for a row this statement has just created
	// under a live lease). Nil when not created, or when the bridge's
	// secrets could not be read.
	Secrets []WebhookSecret
}

// RecordDeliveries is RecordDelivery for many messages in one statement.
// Every NewDelivery must carry its Lease. It returns one Recorded per
// input, in order. A row refused by a constraint makes the statement
// fail; the batch is then recorded one message at a time, so one bad row
// fails alone.
func (s *Store) RecordDeliveries(ctx context.Context, nds []NewDelivery) []Recorded {
	out := make([]Recorded, len(nds))
	var (
		bridges, messages, topics, senders, keyIDs, owners, identities []string
		sent, epochs                                                   []int64
		payloads, nonces                                               [][]byte
		index                                                          []int
	)
	for i, nd := range nds {
		if nd.Lease == nil || !validID(nd.BridgeID) {
			out[i].Err = fmt.Errorf("record delivery: %w", ErrNotFound)
			continue
		}
		nd.BridgeID = canonicalID(nd.BridgeID)
		payload := nd.Payload
		if payload == nil {
			payload = []byte{}
		}
		sealed, err := s.sealContent(payload, deliveryPayloadAAD(nd.BridgeID, nd.MessageID))
		if err != nil {
			out[i].Err = fmt.Errorf("record delivery: %w", err)
			continue
		}
		bridges, messages, topics, senders = append(bridges, nd.BridgeID), append(messages, nd.MessageID), append(topics, nd.Topic), append(senders, nd.SenderAddress)
		sent, payloads, keyIDs, nonces = append(sent, nd.SentNs), append(payloads, sealed.data), append(keyIDs, *sealed.keyID), append(nonces, sealed.nonce)
		identities, owners, epochs = append(identities, nd.Lease.Identity), append(owners, nd.Lease.Owner), append(epochs, nd.Lease.Epoch)
		index = append(index, i)
	}
	if len(index) == 0 {
		return out
	}
	// input is the batch, alive its bridges that exist (checked once per
	// bridge, bridge_accepts_writes, where a foreign key locked the
	// bridge's row for each row: migration 0014) and fresh the rows whose
	// lease is current and whose bridge is alive; the statement returns
	// the rows it created. It reads no delivery: an
	// input it did not create was recorded before, or fenced, or recorded
	// by a concurrent transaction, and knownDeliveries and RecordDelivery
	// tell those apart afterwards, for those inputs only.
	//
	// The batch commits synchronously, though the cursor moves and
	// completions logged after it would make it durable first: a node
	// that outlives a crash of Postgres keeps what it was told, so a
	// record acknowledged and then lost would be a message lost (its
	// cursor moves on past it) and a delivery id handed out again to
	// another message.
	//
	// An earlier version looked the known rows up in the same statement.
	// The cached plan of a statement is made once, often while the table
	// is empty and has no statistics, and that plan read them through
	// deliveries_bridge_idx, every delivery of the bridge for each row of
	// the batch: the node slowed down with every message a bridge had
	// ever received.
	var batch pgx.Batch
	batch.Queue(`
		WITH input AS (
			SELECT * FROM unnest($1::text[]::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bytea[], $7::text[],
				$8::bytea[], $9::text[], $10::text[], $11::bigint[]) WITH ORDINALITY
				AS i(bridge_id, message_id, topic, sender_address, sent_ns, payload, key_id, nonce, l_identity, l_owner, l_epoch, ord)),
		alive AS (
			SELECT b.bridge_id FROM (SELECT DISTINCT bridge_id FROM input) b WHERE bridge_accepts_writes(b.bridge_id)),
		fresh AS (
			SELECT i.* FROM input i WHERE EXISTS (SELECT 1 FROM identity_leases l
				WHERE l.identity = i.l_identity AND l.owner = i.l_owner AND l.epoch = i.l_epoch AND `+leaseLive+`)
				AND i.bridge_id IN (SELECT bridge_id FROM alive))
		INSERT INTO deliveries AS d (bridge_id, message_id, topic, sender_address, sent_ns, payload, payload_key_id, payload_nonce)
		SELECT bridge_id, message_id, topic, sender_address, sent_ns, payload, key_id, nonce FROM fresh ORDER BY ord
		ON CONFLICT (bridge_id, message_id) DO NOTHING
		RETURNING `+createdColumns,
		pgArrays(bridges, messages, topics, senders, sent, payloads, keyIDs, nonces, identities, owners, epochs)...)
	batch.Queue(bridgesSecretsQuery, pgArrays(distinct(bridges))...)
	br := s.pool.SendBatch(ctx, &batch)
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return s.recordOneByOne(ctx, nds, out, index)
	}
	// byKey finds the inputs of a row; the same message twice in one
	// batch is created once, for its first input.
	byKey := make(map[deliveryKey][]int, len(index))
	for k, i := range index {
		key := deliveryKey{bridges[k], messages[k]}
		byKey[key] = append(byKey[key], i)
	}
	done := make([]bool, len(nds))
	for rows.Next() {
		d, err := scanCreated(rows)
		if err != nil {
			rows.Close()
			br.Close()
			// The batch is one transaction, which may not have
			// committed: every input is recorded again.
			return s.recordOneByOne(ctx, nds, out, index)
		}
		for j, i := range byKey[deliveryKey{d.BridgeID, d.MessageID}] {
			if j == 0 {
				d.fill(nds[i])
			}
			out[i], done[i] = Recorded{Delivery: d, Created: j == 0}, true
		}
	}
	rows.Close()
	if rows.Err() != nil {
		br.Close()
		return s.recordOneByOne(ctx, nds, out, index)
	}
	// The secrets go with the rows created; without them (an error) the
	// first attempt reads them itself.
	if secrets, err := s.scanBridgesSecrets(br); err == nil {
		for _, i := range index {
			if done[i] && out[i].Created {
				out[i].Secrets = secrets[out[i].Delivery.BridgeID]
			}
		}
	}
	if err := br.Close(); err != nil {
		// The batch is one transaction: nothing of it is stored.
		return s.recordOneByOne(ctx, nds, out, index)
	}
	rest := unrecorded(index, done)
	if len(rest) == 0 {
		return out
	}
	known, err := s.knownDeliveries(ctx, nds, rest)
	if err != nil {
		return s.recordOneByOne(ctx, nds, out, rest)
	}
	for _, i := range rest {
		if d, ok := known[deliveryKey{canonicalID(nds[i].BridgeID), nds[i].MessageID}]; ok {
			out[i] = Recorded{Delivery: d}
			continue
		}
		// Not created and not there before: fenced, or being recorded
		// by a concurrent transaction; recording it alone tells which.
		out[i].Delivery, out[i].Created, out[i].Err = s.RecordDelivery(ctx, nds[i])
	}
	return out
}

// createdColumns are the columns of a row RecordDeliveries has just
// created that its input does not give: the rest are the input's (fill).
// The payload does not come back, to be opened again, nor the reply
// columns, which a new row leaves empty.
const createdColumns = `d.id, d.bridge_id, d.message_id, d.status, d.attempts, d.next_attempt_at, d.last_error,
	d.created_at, d.updated_at, d.purged_at`

// scanCreated reads a row of createdColumns.
func scanCreated(r pgx.Row) (Delivery, error) {
	var d Delivery
	err := r.Scan(&d.ID, &d.BridgeID, &d.MessageID, &d.Status, &d.Attempts, &d.NextAttemptAt, &d.LastError,
		&d.CreatedAt, &d.UpdatedAt, &d.PurgedAt)
	return d, err
}

// fill sets the columns of a row just created from nd, its input: the
// values the statement inserted.
func (d *Delivery) fill(nd NewDelivery) {
	d.Topic, d.SenderAddress, d.SentNs, d.Payload = nd.Topic, nd.SenderAddress, nd.SentNs, nd.Payload
}

// deliveryKey names a delivery by its bridge and message.
type deliveryKey struct{ bridge, message string }

// unrecorded returns the inputs at index that are not done.
func unrecorded(index []int, done []bool) []int {
	var rest []int
	for _, i := range index {
		if !done[i] {
			rest = append(rest, i)
		}
	}
	return rest
}

// knownDeliveries reads the recorded deliveries of the inputs at index,
// by bridge and message. It runs only for inputs a batch did not create,
// and it is planned for its arguments each time
// (QueryExecModeCacheDescribe): a cached generic plan is made without
// knowing how large the table or the batch is.
func (s *Store) knownDeliveries(ctx context.Context, nds []NewDelivery, index []int) (map[deliveryKey]Delivery, error) {
	bridges, messages := make([]string, len(index)), make([]string, len(index))
	for k, i := range index {
		bridges[k], messages[k] = canonicalID(nds[i].BridgeID), nds[i].MessageID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries d
		JOIN unnest($1::text[]::uuid[], $2::text[]) AS i(bridge_id, message_id)
			ON d.bridge_id = i.bridge_id AND d.message_id = i.message_id`,
		pgx.QueryExecModeCacheDescribe, bridges, messages)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	known := map[deliveryKey]Delivery{}
	for rows.Next() {
		d, err := s.scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		known[deliveryKey{d.BridgeID, d.MessageID}] = d
	}
	return known, rows.Err()
}

// prefixed is a row whose first columns go to head, the rest to the
// destinations of Scan.
type prefixed struct {
	pgx.Rows
	head []any
}

func (p prefixed) Scan(dest ...any) error { return p.Rows.Scan(append(p.head, dest...)...) }

// recordOneByOne records the inputs at index one statement each, after
// the batch statement failed.
func (s *Store) recordOneByOne(ctx context.Context, nds []NewDelivery, out []Recorded, index []int) []Recorded {
	for _, i := range index {
		out[i] = Recorded{}
		if ctx.Err() != nil {
			out[i].Err = fmt.Errorf("record delivery: %w", ctx.Err())
			continue
		}
		out[i].Delivery, out[i].Created, out[i].Err = s.RecordDelivery(ctx, nds[i])
	}
	return out
}
