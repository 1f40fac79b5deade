package persistence

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// resealBatch is how many rows one transaction of Reseal re-encrypts.
const resealBatch = 100

// sealedColumn describes one table column set that holds sealed values.
type sealedColumn struct {
	table      string
	key        string // SELECT list that identifies the row and builds its AAD
	keyID      string
	nonce      string
	ciphertext string
	where      string // WHERE clause naming the row by the key columns, as $4 and $5
	aad        func(keys []string) []byte
}

var sealedColumns = []sealedColumn{
	{
		table: "bridges", key: "id::text, address", keyID: "key_id", nonce: "key_nonce", ciphertext: "key_ciphertext",
		where: "id = $4::uuid AND address = $5",
		aad:   func(k []string) []byte { return bridgeKeyAAD(k[0], k[1]) },
	},
	{
		table: "webhook_secrets", key: "id::text, bridge_id::text", keyID: "key_id", nonce: "nonce", ciphertext: "ciphertext",
		where: "id = $4::uuid AND bridge_id = $5::uuid",
		aad:   func(k []string) []byte { return webhookSecretAAD(k[1], k[0]) },
	},
	{
		table: "conversations", key: "bridge_id::text, topic", keyID: "key_id", nonce: "key_nonce", ciphertext: "key_ciphertext",
		where: "bridge_id = $4::uuid AND topic = $5",
		aad:   func(k []string) []byte { return conversationKeyAAD(k[0], k[1]) },
	},
	{
		table: "forward_configs", key: "bridge_id::text, bridge_id::text", keyID: "headers_key_id", nonce: "headers_nonce",
		ciphertext: "headers_ciphertext", where: "bridge_id = $4::uuid AND bridge_id = $5::uuid",
		aad: func(k []string) []byte { return forwardHeadersAAD(k[0]) },
	},
}

// Reseal re-encrypts, under the current master key, every sealed value that
// an older key sealed (keys, secrets, delivery payloads and outbox
// replies), and returns how many it re-encrypted. It works in
// small transactions and skips rows other transactions hold, so it can run
// while the system serves traffic; run it again until it returns 0.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	total := 0
	for _, col := range sealedColumns {
		for {
			n, err := s.resealBatch(ctx, col)
			total += n
			if err != nil {
				return total, fmt.Errorf("reseal %s: %w", col.table, err)
			}
			if n < resealBatch {
				break
			}
		}
	}
	for _, col := range contentColumns {
		n, err := s.resealContent(ctx, col)
		total += n
		if err != nil {
			return total, fmt.Errorf("reseal %s: %w", col.table, err)
		}
	}
	return total, nil
}

func (s *Store) resealBatch(ctx context.Context, col sealedColumn) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT %s, %s, %s, %s FROM %s WHERE %s <> $1 LIMIT %d FOR UPDATE SKIP LOCKED`,
			col.key, col.keyID, col.nonce, col.ciphertext, col.table, col.keyID, resealBatch), s.sealer.CurrentKeyID())
		if err != nil {
			return err
		}
		type row struct {
			keys   []string
			sealed Sealed
		}
		var todo []row
		for rows.Next() {
			var r row
			r.keys = make([]string, 2)
			if err := rows.Scan(&r.keys[0], &r.keys[1], &r.sealed.KeyID, &r.sealed.Nonce, &r.sealed.Ciphertext); err != nil {
				rows.Close()
				return err
			}
			todo = append(todo, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range todo {
			aad := col.aad(r.keys)
			plain, err := s.sealer.Open(r.sealed, aad)
			if err != nil {
				return err
			}
			fresh, err := s.sealer.Seal(plain, aad)
			if err != nil {
				return err
			}
			args := []any{fresh.KeyID, fresh.Nonce, fresh.Ciphertext, r.keys[0], r.keys[1]}
			if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s = $1, %s = $2, %s = $3 WHERE %s`,
				col.table, col.keyID, col.nonce, col.ciphertext, col.where), args...); err != nil {
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
