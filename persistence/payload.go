package persistence

import (
	"context"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Message content at rest. A delivery's payload is the decrypted content
// of an end-to-end encrypted message, and an outbox reply is the envelope
// the bridge publishes; both are sealed under the master key like the
// other secrets, bound to their row: a delivery by its bridge and message
// id (its idempotency key), a reply by its bridge and outbox id. A row
// with no key id was written in clear before migration 0005, or its
// content was purged; the store reads it as it is, and SealClearContent
// seals the clear ones.

// contentBatch is how many rows one transaction seals or re-seals.
const contentBatch = 100

func deliveryPayloadAAD(bridgeID, messageID string) []byte {
	return []byte("delivery-payload\x00" + bridgeID + "\x00" + messageID)
}

func deliveryReplyAAD(bridgeID string, deliveryID int64) []byte {
	return []byte("delivery-reply\x00" + bridgeID + "\x00" + strconv.FormatInt(deliveryID, 10))
}

func replyEnvelopeAAD(bridgeID string, replyID int64) []byte {
	return []byte("reply-envelope\x00" + bridgeID + "\x00" + strconv.FormatInt(replyID, 10))
}

// canonicalID returns a UUID in the form Postgres prints it, so that the
// additional data built before an insert is the one built from the row.
func canonicalID(id string) string {
	u, err := uuid.Parse(id)
	if err != nil {
		return id
	}
	return u.String()
}

// storedContent is a content column as stored: ciphertext with its key id
// and nonce, or, with no key id, clear bytes of an earlier version or the
// empty content of a purged row.
type storedContent struct {
	keyID *string
	nonce []byte
	data  []byte
}

// sealContent seals plain for the row that aad names.
func (s *Store) sealContent(plain, aad []byte) (storedContent, error) {
	v, err := s.sealer.Seal(plain, aad)
	if err != nil {
		return storedContent{}, err
	}
	return storedContent{keyID: &v.KeyID, nonce: v.Nonce, data: v.Ciphertext}, nil
}

// openContent returns the content of a row: opened when sealed, as it is
// when not. A sealed value moved to another row fails with ErrDecrypt.
func (s *Store) openContent(c storedContent, aad []byte) ([]byte, error) {
	if c.keyID == nil {
		return c.data, nil
	}
	return s.sealer.Open(Sealed{KeyID: *c.keyID, Nonce: c.nonce, Ciphertext: c.data}, aad)
}

// contentColumn is a table whose content column is sealed per row.
type contentColumn struct {
	table string
	data  string
	keyID string
	nonce string
	// aadKeys is the SELECT list of the two strings that, with the id,
	// build the row's additional data.
	aadKeys string
	aad     func(id int64, a, b string) []byte
	// sealedOnly columns were never written in clear: SealClearContent
	// skips them, Reseal re-encrypts them.
	sealedOnly bool
}

var contentColumns = []contentColumn{
	{
		table: "deliveries", data: "payload", keyID: "payload_key_id", nonce: "payload_nonce",
		aadKeys: "bridge_id::text, message_id",
		aad:     func(_ int64, bridgeID, messageID string) []byte { return deliveryPayloadAAD(bridgeID, messageID) },
	},
	{
		table: "reply_outbox", data: "envelope", keyID: "envelope_key_id", nonce: "envelope_nonce",
		aadKeys: "bridge_id::text, ''",
		aad:     func(id int64, bridgeID, _ string) []byte { return replyEnvelopeAAD(bridgeID, id) },
	},
	{
		table: "deliveries", data: "reply", keyID: "reply_key_id", nonce: "reply_nonce",
		aadKeys: "bridge_id::text, ''", sealedOnly: true,
		aad: func(id int64, bridgeID, _ string) []byte { return deliveryReplyAAD(bridgeID, id) },
	},
	{
		table: "live_messages", data: "body", keyID: "body_key_id", nonce: "body_nonce",
		aadKeys: "bridge_id::text, message_id",
		aad:     func(_ int64, bridgeID, messageID string) []byte { return liveBodyAAD(bridgeID, messageID) },
	},
}

// SealClearContent seals, under the current master key, the delivery
// payloads and outbox replies an earlier version wrote in clear, at most
// maxRows of them (0: no limit), and returns how many it sealed. It works
// in small transactions and skips rows other transactions hold, so it runs
// while the system serves traffic; the retention sweep of every node calls
// it until nothing is left.
func (s *Store) SealClearContent(ctx context.Context, maxRows int) (int, error) {
	total := 0
	for _, col := range contentColumns {
		if col.sealedOnly {
			continue
		}
		for maxRows <= 0 || total < maxRows {
			n, err := s.sealClearBatch(ctx, col)
			total += n
			if err != nil {
				return total, fmt.Errorf("seal clear %s: %w", col.table, err)
			}
			if n < contentBatch {
				break
			}
		}
	}
	return total, nil
}

func (s *Store) sealClearBatch(ctx context.Context, col contentColumn) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT id, %s, %s FROM %s WHERE %s IS NULL AND purged_at IS NULL
			ORDER BY id LIMIT %d FOR UPDATE SKIP LOCKED`, col.aadKeys, col.data, col.table, col.keyID, contentBatch))
		if err != nil {
			return err
		}
		type row struct {
			id   int64
			a, b string
			data []byte
		}
		todo, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.id, &x.a, &x.b, &x.data)
			return x, err
		})
		if err != nil {
			return err
		}
		for _, r := range todo {
			sealed, err := s.sealContent(r.data, col.aad(r.id, r.a, r.b))
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s = $1, %s = $2, %s = $3 WHERE id = $4 AND %s IS NULL`,
				col.table, col.data, col.keyID, col.nonce, col.keyID), sealed.data, sealed.keyID, sealed.nonce, r.id); err != nil {
				return err
			}
		}
		n = len(todo)
		return nil
	})
	if err != nil {
		return 0, mapError(err)
	}
	return n, nil
}

// resealContent re-encrypts under the current key the content that an
// older key sealed, walking the table once in id order.
func (s *Store) resealContent(ctx context.Context, col contentColumn) (int, error) {
	total := 0
	var after int64
	for {
		n, last, err := s.resealContentBatch(ctx, col, after)
		total += n
		if err != nil {
			return total, err
		}
		if n < contentBatch {
			return total, nil
		}
		after = last
	}
}

func (s *Store) resealContentBatch(ctx context.Context, col contentColumn, after int64) (n int, last int64, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT id, %s, %s, %s, %s FROM %s
			WHERE id > $1 AND %s IS NOT NULL AND %s <> $2 ORDER BY id LIMIT %d FOR UPDATE SKIP LOCKED`,
			col.aadKeys, col.keyID, col.nonce, col.data, col.table, col.keyID, col.keyID, contentBatch), after, s.sealer.CurrentKeyID())
		if err != nil {
			return err
		}
		type row struct {
			id   int64
			a, b string
			c    storedContent
		}
		todo, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.id, &x.a, &x.b, &x.c.keyID, &x.c.nonce, &x.c.data)
			return x, err
		})
		if err != nil {
			return err
		}
		for _, r := range todo {
			aad := col.aad(r.id, r.a, r.b)
			plain, err := s.openContent(r.c, aad)
			if err != nil {
				return err
			}
			fresh, err := s.sealContent(plain, aad)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s = $1, %s = $2, %s = $3 WHERE id = $4`,
				col.table, col.data, col.keyID, col.nonce), fresh.data, fresh.keyID, fresh.nonce, r.id); err != nil {
				return err
			}
			last = r.id
		}
		n = len(todo)
		return nil
	})
	if err != nil {
		return 0, 0, mapError(err)
	}
	return n, last, nil
}
