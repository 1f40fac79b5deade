package content

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"testing"

	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/proto"
)

func TestTextRoundTrip(t *testing.T) {
	data, err := Encode(Text("héllo ✓"))
	if err != nil {
		t.Fatal(err)
	}
	var ec mc.EncodedContent
	if err := proto.Unmarshal(data, &ec); err != nil {
		t.Fatal(err)
	}
	if ec.Type.AuthorityId != "xmtp.org" || ec.Type.TypeId != "text" || ec.Type.VersionMajor != 1 || ec.Parameters["encoding"] != "UTF-8" {
		t.Fatalf("wire form: %v", &ec)
	}
	c, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.Text(); err != nil || s != "héllo ✓" || c.Type.String() != "xmtp.org/text:1.0" {
		t.Fatalf("text = %q, %v", s, err)
	}
}

func TestUnknownTypeKept(t *testing.T) {
	in := &Content{Type: TypeID{"example.com", "blob", 2, 3}, Parameters: map[string]string{"k": "v"}, Fallback: "a blob", Body: []byte{0, 1, 2}}
	data, _ := Encode(in)
	c, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != in.Type || !bytes.Equal(c.Body, in.Body) || c.Fallback != "a blob" || c.Parameters["k"] != "v" {
		t.Fatalf("decoded %+v", c)
	}
	if _, err := c.Text(); !errors.Is(err, ErrNotText) {
		t.Fatalf("text of blob: %v", err)
	}
}

func compressed(t *testing.T, kind mc.Compression, body []byte) []byte {
	var buf bytes.Buffer
	switch kind {
	case mc.Compression_COMPRESSION_DEFLATE:
		w := zlib.NewWriter(&buf)
		w.Write(body)
		w.Close()
	case mc.Compression_COMPRESSION_GZIP:
		w := gzip.NewWriter(&buf)
		w.Write(body)
		w.Close()
	}
	data, err := proto.Marshal(&mc.EncodedContent{
		Type:        &mc.ContentTypeId{AuthorityId: "xmtp.org", TypeId: "text", VersionMajor: 1},
		Parameters:  map[string]string{"encoding": "UTF-8"},
		Compression: kind.Enum(),
		Content:     buf.Bytes(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestCompression(t *testing.T) {
	for _, kind := range []mc.Compression{mc.Compression_COMPRESSION_DEFLATE, mc.Compression_COMPRESSION_GZIP} {
		c, err := Decode(compressed(t, kind, []byte("squeezed text")))
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if s, _ := c.Text(); s != "squeezed text" {
			t.Fatalf("%s: %q", kind, s)
		}
	}
	bad, _ := proto.Marshal(&mc.EncodedContent{Type: &mc.ContentTypeId{TypeId: "x"}, Compression: mc.Compression(7).Enum(), Content: []byte("x")})
	if _, err := Decode(bad); !errors.Is(err, ErrUnsupportedCompression) {
		t.Fatalf("unknown compression: %v", err)
	}
	broken, _ := proto.Marshal(&mc.EncodedContent{Type: &mc.ContentTypeId{TypeId: "x"}, Compression: mc.Compression_COMPRESSION_GZIP.Enum(), Content: []byte("not gzip")})
	if _, err := Decode(broken); !errors.Is(err, ErrMalformed) {
		t.Fatalf("broken gzip: %v", err)
	}
	bomb := compressed(t, mc.Compression_COMPRESSION_DEFLATE, make([]byte, MaxDecodedSize+10))
	if _, err := Decode(bomb); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bomb: %v", err)
	}
}

func TestDecodeGarbage(t *testing.T) {
	if _, err := Decode([]byte{0xff, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := Decode(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"", "hi", "a longer text message"} {
		data, _ := Encode(Text(s))
		f.Add(data)
	}
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00, 0x28, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err == nil && len(c.Body) > MaxDecodedSize {
			t.Fatal("oversized body accepted")
		}
	})
}
