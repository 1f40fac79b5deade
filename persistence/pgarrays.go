package persistence

import "github.com/jackc/pgx/v5/pgtype"

// Array parameters of the batch statements, encoded without reflection.
//
// pgx encodes a slice of a type it does not list (a [][]byte, a []*string)
// through reflection, and boxes every element it encodes in an interface:
// an element that is not a pointer (a []byte, a string, an int64) is
// copied to the heap first. The forward path's batch statements send a
// dozen arrays per statement, several allocations per message. These
// types hand pgx each element as a pointer into the slice, which boxes
// without an allocation, and the element types answer pgx's valuer
// interfaces (TextValuer, Int64Valuer, Float64Valuer, BytesValuer), which
// its codecs encode directly, in the binary and the text format alike.
// A nil pointer of a nullable array, and a nil []byte, are NULL, as pgx
// encodes them from the plain slices.

// pgArrays returns args with each slice of a type below replaced by its
// array type; other arguments are kept as they are.
func pgArrays(args ...any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case []string:
			out[i] = textArray(v)
		case []*string:
			out[i] = nullTextArray(v)
		case []int64:
			out[i] = int8Array(v)
		case []*int64:
			out[i] = nullInt8Array(v)
		case []*int32:
			out[i] = nullInt4Array(v)
		case []float64:
			out[i] = float8Array(v)
		case [][]byte:
			out[i] = byteaArray(v)
		default:
			out[i] = a
		}
	}
	return out
}

// dims is the dimensions of a one-dimensional array of n elements; a nil
// slice is a NULL array, as pgx's FlatArray has it.
func dims(isNil bool, n int) []pgtype.ArrayDimension {
	if isNil {
		return nil
	}
	return []pgtype.ArrayDimension{{Length: int32(n), LowerBound: 1}}
}

type (
	textArray     []string
	nullTextArray []*string
	int8Array     []int64
	nullInt8Array []*int64
	nullInt4Array []*int32
	float8Array   []float64
	byteaArray    [][]byte

	textElem   string
	int8Elem   int64
	int4Elem   int32
	float8Elem float64
	byteaElem  []byte
)

// A nullable array's NULL element is a nil pointer of its element type,
// which pgx encodes as NULL without asking for its value.

func (a textArray) Dimensions() []pgtype.ArrayDimension { return dims(a == nil, len(a)) }
func (a textArray) Index(i int) any                     { return (*textElem)(&a[i]) }
func (a textArray) IndexType() any                      { return (*textElem)(nil) }

func (a nullTextArray) Dimensions() []pgtype.ArrayDimension { return dims(a == nil, len(a)) }
func (a nullTextArray) Index(i int) any                     { return (*textElem)(a[i]) }
func (a nullTextArray) IndexType() any                      { return (*textElem)(nil) }

func (a int8Array) Dimensions() []pgtype.ArrayDimension { return dims(a == nil, len(a)) }
func (a int8Array) Index(i int) any                     { return (*int8Elem)(&a[i]) }
func (a int8Array) IndexType() any                      { return (*int8Elem)(nil) }

func (a nullInt8Array) Dimensions() []pgtype.ArrayDimension { return dims(a == nil, len(a)) }
func (a nullInt8Array) Index(i int) any                     { return (*int8Elem)(a[i]) }
func (a nullInt8Array) IndexType() any                      { return (*int8Elem)(nil) }

func (a nullInt4Array) Dimensions() []pgtype.ArrayDimension { return dims(a == nil, len(a)) }
func (a nullInt4Array) Index(i int) any                     { return (*int4Elem)(a[i]) }
func (a nullInt4Array) IndexType() any                      { return (*int4Elem)(nil) }

func (a float8Array) Dimensions() []pgtype.ArrayDimension { return dims(a == nil, len(a)) }
func (a float8Array) Index(i int) any                     { return (*float8Elem)(&a[i]) }
func (a float8Array) IndexType() any                      { return (*float8Elem)(nil) }

func (a byteaArray) Dimensions() []pgtype.ArrayDimension { return dims(a == nil, len(a)) }
func (a byteaArray) Index(i int) any                     { return (*byteaElem)(&a[i]) }
func (a byteaArray) IndexType() any                      { return (*byteaElem)(nil) }

func (e *textElem) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(*e), Valid: true}, nil
}

func (e *int8Elem) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: int64(*e), Valid: true}, nil
}

func (e *int4Elem) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: int64(*e), Valid: true}, nil
}

func (e *float8Elem) Float64Value() (pgtype.Float8, error) {
	return pgtype.Float8{Float64: float64(*e), Valid: true}, nil
}

func (e *byteaElem) BytesValue() ([]byte, error) { return *e, nil }

// registerArrayTypes names the array types for a connection's type map,
// for a statement whose parameter types pgx does not learn from Postgres
// (the simple protocol, which an operator may choose in the database URL
// with default_query_exec_mode): it encodes them as the arrays of their
// slices then.
func registerArrayTypes(m *pgtype.Map) {
	m.RegisterDefaultPgType(textArray(nil), "_text")
	m.RegisterDefaultPgType(nullTextArray(nil), "_text")
	m.RegisterDefaultPgType(int8Array(nil), "_int8")
	m.RegisterDefaultPgType(nullInt8Array(nil), "_int8")
	m.RegisterDefaultPgType(nullInt4Array(nil), "_int4")
	m.RegisterDefaultPgType(float8Array(nil), "_float8")
	m.RegisterDefaultPgType(byteaArray(nil), "_bytea")
}
