package persistence

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// arrayCase is one array parameter: its slice, the cast the statements
// give it, and how Postgres prints it back as text.
type arrayCase struct {
	name string
	arg  any
	cast string
}

func arrayCases() []arrayCase {
	s := func(v string) *string { return &v }
	i8 := func(v int64) *int64 { return &v }
	i4 := func(v int32) *int32 { return &v }
	return []arrayCase{
		{"text", []string{"a", "", "é\"{},", "NULL"}, "text[]"},
		{"text nil", []string(nil), "text[]"},
		{"text empty", []string{}, "text[]"},
		{"nullable text", []*string{s("x"), nil, s(""), s("NULL")}, "text[]"},
		{"uuid as text", []string{"4b6e1f0e-3a5c-4d2e-9f10-1a2b3c4d5e6f"}, "text[]::uuid[]"},
		{"bigint", []int64{0, -1, 1 << 62, -(1 << 63)}, "bigint[]"},
		{"nullable bigint", []*int64{i8(7), nil, i8(-(1 << 63))}, "bigint[]"},
		{"nullable int", []*int32{nil, i4(200), i4(-(1 << 31))}, "int[]"},
		{"float8", []float64{0, 1.5, -2.25e300}, "float8[]"},
		{"bytea", [][]byte{{0, 1, 0xff}, nil, {}, []byte("x")}, "bytea[]"},
		{"bytea nil", [][]byte(nil), "bytea[]"},
	}
}

// TestArrayParametersEncodeAsTheirSlices holds the array types of the batch
// statements to what pgx sends for the plain slices: the same values, NULLs
// and NULL arrays, in the binary format of a cached statement and in the
// text format of the simple protocol.
func TestArrayParametersEncodeAsTheirSlices(t *testing.T) {
	url := pgtest.NewDatabase(t, testTemplate)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	registerArrayTypes(conn.TypeMap()) // as Open does for its pools
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		for _, c := range arrayCases() {
			t.Run(fmt.Sprintf("%s/%v", c.name, mode), func(t *testing.T) {
				q := `SELECT ($1::` + c.cast + `)::text, cardinality($1::` + c.cast + `), $1::` + c.cast + ` IS NULL`
				read := func(arg any) (string, int, bool) {
					var text pgtype.Text
					var n pgtype.Int8
					var null bool
					if err := conn.QueryRow(context.Background(), q, mode, arg).Scan(&text, &n, &null); err != nil {
						t.Fatalf("%T: %v", arg, err)
					}
					return text.String, int(n.Int64), null
				}
				wt, wn, wnull := read(c.arg)
				gt, gn, gnull := read(pgArrays(c.arg)[0])
				if gt != wt || gn != wn || gnull != wnull {
					t.Errorf("sent as %T: %q (%d, null %v); as the slice: %q (%d, null %v)", pgArrays(c.arg)[0], gt, gn, gnull, wt, wn, wnull)
				}
			})
		}
	}
}

// TestArrayParametersDoNotAllocatePerElement: encoding an array parameter
// of the batch statements allocates a few times per array, not once per
// element (pgx's reflection path for a [][]byte or a []*string, and its
// boxing of each string or int64 of a []string or []int64, allocate per
// element).
func TestArrayParametersDoNotAllocatePerElement(t *testing.T) {
	m := pgtype.NewMap()
	const n = 64
	s := func(v string) *string { return &v }
	i8 := func(v int64) *int64 { return &v }
	i4 := func(v int32) *int32 { return &v }
	texts, ntexts, ints, nints, n4s, floats, blobs := make([]string, n), make([]*string, n), make([]int64, n), make([]*int64, n), make([]*int32, n), make([]float64, n), make([][]byte, n)
	for i := range n {
		texts[i], ntexts[i], ints[i], nints[i], n4s[i], floats[i], blobs[i] = fmt.Sprint("topic-", i), s("x"), int64(i)<<40, i8(int64(i)<<40), i4(int32(i)<<20), float64(i)/3, bytes.Repeat([]byte{byte(i)}, 40)
	}
	ntexts[3], nints[5], n4s[7], blobs[9] = nil, nil, nil, nil
	for _, c := range []struct {
		name string
		oid  uint32
		arg  any
	}{
		{"text", pgtype.TextArrayOID, texts}, {"nullable text", pgtype.TextArrayOID, ntexts},
		{"bigint", pgtype.Int8ArrayOID, ints}, {"nullable bigint", pgtype.Int8ArrayOID, nints},
		{"nullable int", pgtype.Int4ArrayOID, n4s}, {"float8", pgtype.Float8ArrayOID, floats},
		{"bytea", pgtype.ByteaArrayOID, blobs},
	} {
		arg := pgArrays(c.arg)[0]
		buf := make([]byte, 0, 1<<14)
		want, err := m.Encode(c.oid, pgtype.BinaryFormatCode, c.arg, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Encode(c.oid, pgtype.BinaryFormatCode, arg, buf[:0])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: encodes to other bytes than the slice", c.name)
		}
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := m.Encode(c.oid, pgtype.BinaryFormatCode, arg, buf[:0]); err != nil {
				t.Fatal(err)
			}
		})
		if allocs >= n/4 {
			t.Errorf("%s: encoding %d elements allocates %.0f times", c.name, n, allocs)
		}
	}
}
