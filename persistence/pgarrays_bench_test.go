package persistence

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// BenchmarkEncodeCompletionArgs encodes the array parameters of a completion
// batch of 16 messages (CompleteDeliveries), as the plain slices and as
// the types of pgArrays.
func BenchmarkEncodeCompletionArgs(b *testing.B) {
	const n = 16
	s := func(v string) *string { return &v }
	i8 := func(v int64) *int64 { return &v }
	i4 := func(v int32) *int32 { return &v }
	var ids, owners, errs []string
	var bridges, topics, keyIDs, textKeyIDs []*string
	var epochs, deliveries []int64
	var replyIDs, stamps []*int64
	var codes []*int32
	var lat []float64
	var envs, nonces, texts, tnonces [][]byte
	for i := range n {
		ids, owners, errs = append(ids, fmt.Sprint("bridge-identity-", i)), append(owners, "node-1/abc"), append(errs, "")
		bridges, topics, keyIDs, textKeyIDs = append(bridges, s("4b6e1f0e-3a5c-4d2e-9f10-1a2b3c4d5e6f")), append(topics, s(fmt.Sprintf("/xmtp/0/m-%040d/proto", i))), append(keyIDs, s("k1")), append(textKeyIDs, s("k1"))
		epochs, deliveries = append(epochs, 3), append(deliveries, int64(1000+i))
		replyIDs, stamps, codes, lat = append(replyIDs, i8(int64(i))), append(stamps, i8(1<<60)), append(codes, i4(200)), append(lat, 1.5)
		envs, nonces, texts, tnonces = append(envs, bytes.Repeat([]byte{1}, 600)), append(nonces, make([]byte, 12)), append(texts, bytes.Repeat([]byte{2}, 40)), append(tnonces, make([]byte, 12))
	}
	args := []any{ids, owners, epochs, deliveries, codes, lat, errs, replyIDs, bridges, topics, stamps, envs, keyIDs, nonces, texts, textKeyIDs, tnonces}
	oids := []uint32{pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.Int8ArrayOID, pgtype.Int8ArrayOID, pgtype.Int4ArrayOID, pgtype.Float8ArrayOID, pgtype.TextArrayOID,
		pgtype.Int8ArrayOID, pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.Int8ArrayOID, pgtype.ByteaArrayOID, pgtype.TextArrayOID, pgtype.ByteaArrayOID, pgtype.ByteaArrayOID, pgtype.TextArrayOID, pgtype.ByteaArrayOID}
	for _, mode := range []string{"slices", "pgArrays"} {
		b.Run(mode, func(b *testing.B) {
			m := pgtype.NewMap()
			buf := make([]byte, 0, 1<<16)
			b.ReportAllocs()
			for range b.N {
				a := args
				if mode == "pgArrays" {
					a = pgArrays(args...)
				}
				buf = buf[:0]
				for i, v := range a {
					var err error
					if buf, err = m.Encode(oids[i], pgtype.BinaryFormatCode, v, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
