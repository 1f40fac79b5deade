package persistence

import (
	"context"
	"fmt"
	"strings"

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
	// Err is ErrFenced when the row's lease is no longer current.
	Err error
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
	// input is the batch; fresh the rows whose lease is current; the
	// INSERT returns the rows it created, and earlier shows the rows that
	// existed before the statement. An input in neither was fenced, or
	// recorded by a concurrent transaction: it is recorded again on its
	// own, which tells the two apart.
	//
	// earlier is MATERIALIZED: the planner, which estimates fresh at one
	// row, joins it with the union below in a nested loop, and an inlined
	// earlier would be run again for every row of the batch (a batch of n
	// made n² index scans: 65,536, half a second, for 256 rows), so that
	// a slow batch made the next one larger and slower still.
	rows, err := s.pool.Query(ctx, `
		WITH input AS (
			SELECT * FROM unnest($1::text[]::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bytea[], $7::text[],
				$8::bytea[], $9::text[], $10::text[], $11::bigint[]) WITH ORDINALITY
				AS i(bridge_id, message_id, topic, sender_address, sent_ns, payload, key_id, nonce, l_identity, l_owner, l_epoch, ord)),
		fresh AS (
			SELECT i.* FROM input i WHERE EXISTS (SELECT 1 FROM identity_leases l
				WHERE l.identity = i.l_identity AND l.owner = i.l_owner AND l.epoch = i.l_epoch AND `+leaseLive+`)),
		inserted AS (
			INSERT INTO deliveries AS d (bridge_id, message_id, topic, sender_address, sent_ns, payload, payload_key_id, payload_nonce)
			SELECT bridge_id, message_id, topic, sender_address, sent_ns, payload, key_id, nonce FROM fresh ORDER BY ord
			ON CONFLICT (bridge_id, message_id) DO NOTHING
			RETURNING `+deliveryColumns+`),
		earlier AS MATERIALIZED (
			SELECT `+deliveryColumns+` FROM deliveries d
			WHERE (d.bridge_id, d.message_id) IN (SELECT bridge_id, message_id FROM fresh))
		SELECT f.ord, r.created, `+strings.ReplaceAll(deliveryColumns, "d.", "r.")+`
		FROM fresh f JOIN (
			SELECT true AS created, * FROM inserted UNION ALL SELECT false, * FROM earlier
		) r ON r.bridge_id = f.bridge_id AND r.message_id = f.message_id
		ORDER BY f.ord, r.created DESC`,
		bridges, messages, topics, senders, sent, payloads, keyIDs, nonces, identities, owners, epochs)
	if err != nil {
		return s.recordOneByOne(ctx, nds, out, index)
	}
	type result struct {
		found, created bool
		d              Delivery
	}
	got := make([]result, len(index))
	for rows.Next() {
		var ord int64
		var created bool
		d, err := s.scanDelivery(prefixed{rows, []any{&ord, &created}})
		k := int(ord) - 1
		if err != nil || k < 0 || k >= len(index) {
			rows.Close()
			return s.recordOneByOne(ctx, nds, out, index)
		}
		if got[k].found {
			continue // the row it created comes first
		}
		got[k] = result{found: true, created: created, d: d}
	}
	rows.Close()
	if rows.Err() != nil {
		return s.recordOneByOne(ctx, nds, out, index)
	}
	createdIDs := map[int64]bool{}
	for k, i := range index {
		g := got[k]
		if !g.found {
			out[i].Delivery, out[i].Created, out[i].Err = s.RecordDelivery(ctx, nds[i])
			continue
		}
		// The same message twice in one batch is created once.
		created := g.created && !createdIDs[g.d.ID]
		if created {
			createdIDs[g.d.ID] = true
		}
		out[i] = Recorded{Delivery: g.d, Created: created}
	}
	return out
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
		if ctx.Err() != nil {
			out[i].Err = fmt.Errorf("record delivery: %w", ctx.Err())
			continue
		}
		out[i].Delivery, out[i].Created, out[i].Err = s.RecordDelivery(ctx, nds[i])
	}
	return out
}
