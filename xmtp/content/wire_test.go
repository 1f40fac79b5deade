package content

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"testing"

	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The reference codec: proto.Marshal and proto.Unmarshal of
// mc.EncodedContent, as Encode and Decode were written before they read
// and wrote the wire format themselves. Encode and Decode must agree with
// it on every input.

func referenceEncode(c *Content, deterministic bool) ([]byte, error) {
	ec := &mc.EncodedContent{
		Type: &mc.ContentTypeId{
			AuthorityId: c.Type.Authority, TypeId: c.Type.Type,
			VersionMajor: c.Type.Major, VersionMinor: c.Type.Minor,
		},
		Parameters: c.Parameters,
		Content:    c.Body,
	}
	if c.Fallback != "" {
		ec.Fallback = proto.String(c.Fallback)
	}
	return proto.MarshalOptions{Deterministic: deterministic}.Marshal(ec)
}

func referenceDecode(data []byte) (*Content, error) {
	var ec mc.EncodedContent
	if err := proto.Unmarshal(data, &ec); err != nil {
		return nil, fmt.Errorf("decode content: %w", ErrMalformed)
	}
	if ec.Type == nil {
		return nil, fmt.Errorf("decode content: no type: %w", ErrMalformed)
	}
	c := &Content{
		Type: TypeID{
			Authority: ec.Type.AuthorityId, Type: ec.Type.TypeId,
			Major: ec.Type.VersionMajor, Minor: ec.Type.VersionMinor,
		},
		Parameters: ec.Parameters,
		Fallback:   ec.GetFallback(),
		Body:       ec.Content,
	}
	if ec.Compression != nil {
		body, err := decompress(*ec.Compression, ec.Content)
		if err != nil {
			return nil, fmt.Errorf("decode content: %w", err)
		}
		c.Body = body
	}
	if c.Body == nil {
		c.Body = []byte{}
	}
	return c, nil
}

func checkDecodeMatchesReference(t *testing.T, data []byte) {
	t.Helper()
	got, gotErr := Decode(data)
	want, wantErr := referenceDecode(data)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("Decode(%x): error %v, reference error %v", data, gotErr, wantErr)
	}
	if wantErr != nil {
		for _, e := range []error{ErrMalformed, ErrUnsupportedCompression, ErrTooLarge} {
			if errors.Is(gotErr, e) != errors.Is(wantErr, e) {
				t.Fatalf("Decode(%x): error %v, reference error %v", data, gotErr, wantErr)
			}
		}
		return
	}
	if got.Type != want.Type || got.Fallback != want.Fallback || !bytes.Equal(got.Body, want.Body) ||
		(got.Body == nil) != (want.Body == nil) || !maps.Equal(got.Parameters, want.Parameters) {
		// A nil and an empty map of parameters read the same: the
		// reference makes an empty one for a parameters field of the
		// wrong wire type.
		t.Fatalf("Decode(%x) = %#v, reference %#v", data, got, want)
	}
}

func checkEncodeMatchesReference(t *testing.T, c *Content) {
	t.Helper()
	got, gotErr := Encode(c)
	want, wantErr := referenceEncode(c, true)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("Encode(%+v): error %v, reference error %v", c, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode(%+v)\n got %x\nwant %x", c, got, want)
	}
	if len(c.Parameters) <= 1 {
		// With one parameter or none the default marshal writes the same.
		if plain, _ := referenceEncode(c, false); !bytes.Equal(got, plain) {
			t.Fatalf("Encode(%+v)\n got %x\nwant %x (non-deterministic marshal)", c, got, plain)
		}
	}
}

func TestEncodeMatchesProtoMarshal(t *testing.T) {
	for _, c := range []*Content{
		Text(""), Text("hello"), Text("héllo ✓ 👋"),
		{Type: TypeID{}},
		{Type: TypeID{Authority: "example.com", Type: "thing", Major: 1 << 31, Minor: 300}, Fallback: "a thing", Body: []byte{0, 1, 2}},
		{Type: TypeText, Parameters: map[string]string{"": "", "b": "2", "a": "1", "encoding": "UTF-8", "xmtpbridge-auto-reply": "1"}, Body: []byte("x")},
		{Type: TypeText, Parameters: map[string]string{}, Body: []byte{}},
		{Type: TypeID{Authority: "bad\xff"}},
		{Type: TypeText, Parameters: map[string]string{"k": "\xfe"}},
		{Type: TypeText, Fallback: "\xc0"},
	} {
		checkEncodeMatchesReference(t, c)
	}
}

func TestDecodeMatchesProtoUnmarshal(t *testing.T) {
	text, _ := Encode(Text("hello"))
	var cases [][]byte
	cases = append(cases, nil, []byte{}, text, append(bytes.Clone(text), text...))
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	// A type of the wrong wire type is skipped, so there is no type.
	cases = append(cases, protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 5))
	// Two types merge; a later fallback and body win.
	b := tag(nil, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, protowire.AppendString(tag(nil, 1, protowire.BytesType), "a.org"))
	b = tag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, protowire.AppendVarint(tag(nil, 3, protowire.VarintType), 7))
	b = protowire.AppendString(tag(b, 3, protowire.BytesType), "one")
	b = protowire.AppendString(tag(b, 3, protowire.BytesType), "two")
	b = protowire.AppendBytes(tag(b, 4, protowire.BytesType), []byte("x"))
	b = protowire.AppendBytes(tag(b, 4, protowire.BytesType), nil)
	cases = append(cases, b)
	// Map entries: missing key or value, repeated keys, unknown fields.
	entry := func(parts ...[]byte) []byte {
		return protowire.AppendBytes(tag(nil, 2, protowire.BytesType), bytes.Join(parts, nil))
	}
	key := func(s string) []byte { return protowire.AppendString(tag(nil, 1, protowire.BytesType), s) }
	val := func(s string) []byte { return protowire.AppendString(tag(nil, 2, protowire.BytesType), s) }
	unknown := protowire.AppendVarint(tag(nil, 9, protowire.VarintType), 1)
	cases = append(cases,
		append(bytes.Clone(text), entry(key("k"))...),
		append(bytes.Clone(text), entry(val("v"))...),
		append(bytes.Clone(text), append(entry(key("k"), val("1")), entry(key("k"), val("2"), unknown)...)...),
		append(bytes.Clone(text), entry(protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 1))...),
		append(bytes.Clone(text), entry(key("\xff"))...),
		append(bytes.Clone(text), unknown...),
		append(bytes.Clone(text), protowire.AppendVarint(tag(nil, 5, protowire.VarintType), 1<<40)...),
		append(bytes.Clone(text), protowire.AppendVarint(tag(nil, 5, protowire.VarintType), 1)...),
		append(bytes.Clone(text), protowire.AppendVarint(tag(nil, 5, protowire.VarintType), 99)...),
		append(bytes.Clone(text), tag(nil, 7, protowire.StartGroupType)...),
		append(bytes.Clone(text), tag(tag(nil, 7, protowire.StartGroupType), 7, protowire.EndGroupType)...),
		append(bytes.Clone(text), tag(nil, 7, protowire.EndGroupType)...),
		append(bytes.Clone(text), 0x00),
		append(bytes.Clone(text), 0x80),
		append(bytes.Clone(text), protowire.AppendVarint(nil, uint64(1)<<35|2)...),
		// Field numbers above the largest valid one, at the top and inside the type.
		append(bytes.Clone(text), protowire.AppendVarint(tag(nil, protowire.MaxValidNumber+1, protowire.VarintType), 1)...),
		append(tag(nil, 1, protowire.BytesType), protowire.AppendBytes(nil, protowire.AppendVarint(tag(nil, protowire.MaxValidNumber+1, protowire.VarintType), 1))...),
		append(bytes.Clone(text), protowire.AppendString(tag(nil, 3, protowire.BytesType), "\xff")...),
		text[:len(text)-1],
	)
	for _, c := range cases {
		checkDecodeMatchesReference(t, c)
	}
}

// FuzzDecodeMatchesProtoUnmarshal holds Decode to the reference decoder.
func FuzzDecodeMatchesProtoUnmarshal(f *testing.F) {
	text, _ := Encode(Text("hello"))
	f.Add(text)
	f.Add([]byte{0x0a, 0x00, 0x12, 0x03, 0x0a, 0x01, 0x6b, 0x28, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeMatchesReference(t, data)
	})
}

// FuzzEncodeMatchesProtoMarshal holds Encode to the reference encoder.
func FuzzEncodeMatchesProtoMarshal(f *testing.F) {
	f.Add("xmtp.org", "text", uint32(1), uint32(0), "encoding", "UTF-8", "", "fallback", []byte("hello"))
	f.Fuzz(func(t *testing.T, authority, typ string, major, minor uint32, k1, v1, k2, fallback string, body []byte) {
		params := map[string]string{}
		if k1 != "" || v1 != "" {
			params[k1] = v1
		}
		if k2 != "" {
			params[k2] = v1 + "2"
		}
		checkEncodeMatchesReference(t, &Content{Type: TypeID{authority, typ, major, minor}, Parameters: params, Fallback: fallback, Body: body})
	})
}

// BenchmarkDecodeText decodes a short text message, as each forwarded
// message is decoded three times.
func BenchmarkDecodeText(b *testing.B) {
	data, _ := Encode(Text("hello, this is a short message to a bridge"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeTextProto is the reference decoder on the same bytes.
func BenchmarkDecodeTextProto(b *testing.B) {
	data, _ := Encode(Text("hello, this is a short message to a bridge"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := referenceDecode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeText encodes a short text reply.
func BenchmarkEncodeText(b *testing.B) {
	c := Text("hello, this is a short reply from an endpoint")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeTextProto is the reference encoder on the same content.
func BenchmarkEncodeTextProto(b *testing.B) {
	c := Text("hello, this is a short reply from an endpoint")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := referenceEncode(c, false); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTypeIDString(t *testing.T) {
	for _, c := range []struct {
		id   TypeID
		want string
	}{
		{TypeText, "xmtp.org/text:1.0"},
		{TypeID{Authority: "xmtp.org", Type: "text", Major: 1, Minor: 1}, "xmtp.org/text:1.1"},
		{TypeID{Authority: "example.com", Type: "reaction", Major: 4294967295, Minor: 12}, "example.com/reaction:4294967295.12"},
		{TypeID{}, "/:0.0"},
	} {
		if got := c.id.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.id, got, c.want)
		}
	}
}
