package content

import (
	"bytes"
	"errors"
	"maps"
	"testing"
	"unicode/utf8"
)

// FuzzTextRoundTrip encodes arbitrary text: it decodes to xmtp.org/text
// with the same string, and a body that is not UTF-8 is refused as text.
func FuzzTextRoundTrip(f *testing.F) {
	for _, s := range []string{"", "hello", "héllo ✓ 👋", "\x00nul", "\xff\xfe not utf-8", "line\nbreak"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		data, err := Encode(Text(s))
		if err != nil {
			t.Fatalf("encode %q: %v", s, err)
		}
		c, err := Decode(data)
		if err != nil {
			t.Fatalf("decode the encoding of %q: %v", s, err)
		}
		if !c.IsText() || c.Type != TypeText || c.Parameters["encoding"] != "UTF-8" {
			t.Fatalf("%q decoded as %s %v", s, c.Type, c.Parameters)
		}
		got, err := c.Text()
		if !utf8.ValidString(s) {
			if !errors.Is(err, ErrNotText) {
				t.Fatalf("invalid UTF-8 %q read as text %q (%v)", s, got, err)
			}
			return
		}
		if err != nil || got != s {
			t.Fatalf("text %q came back as %q (%v)", s, got, err)
		}
	})
}

// FuzzContentRoundTrip encodes arbitrary content of any type: whatever
// Encode accepts decodes to the same type, parameters, fallback and body.
// Encode refuses only strings protobuf cannot carry (invalid UTF-8).
func FuzzContentRoundTrip(f *testing.F) {
	f.Add("xmtp.org", "text", uint32(1), uint32(0), "encoding", "UTF-8", "", []byte("hi"))
	f.Add("example.com", "reaction", uint32(2), uint32(7), "", "", "a fallback", []byte{0, 1, 2, 0xff})
	f.Add("", "", uint32(0), uint32(0), "k", "", "", []byte{})
	f.Add("\xff", "t", uint32(1), uint32(0), "", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, authority, typ string, major, minor uint32, key, value, fallback string, body []byte) {
		in := &Content{Type: TypeID{Authority: authority, Type: typ, Major: major, Minor: minor}, Fallback: fallback, Body: body}
		if key != "" || value != "" {
			in.Parameters = map[string]string{key: value}
		}
		data, err := Encode(in)
		if err != nil {
			for _, s := range []string{authority, typ, key, value, fallback} {
				if !utf8.ValidString(s) {
					return
				}
			}
			t.Fatalf("encode %+v: %v", in, err)
		}
		out, err := Decode(data)
		if err != nil {
			t.Fatalf("decode the encoding of %+v: %v", in, err)
		}
		if out.Type != in.Type || out.Fallback != in.Fallback || !bytes.Equal(out.Body, in.Body) ||
			len(out.Parameters) != len(in.Parameters) || !maps.Equal(out.Parameters, in.Parameters) {
			t.Fatalf("round trip changed %+v into %+v", in, out)
		}
	})
}
