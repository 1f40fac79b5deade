// Package content encodes and decodes XMTP EncodedContent: text
// (xmtp.org/text:1.0) and any other content type, kept as raw bytes with its
// type id, with the optional deflate or gzip compression xmtp-js applies.
package content

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/proto"
)

// MaxDecodedSize bounds the size of decompressed content.
const MaxDecodedSize = 16 << 20

// ErrMalformed reports bytes that are not an EncodedContent.
var ErrMalformed = errors.New("malformed encoded content")

// ErrUnsupportedCompression reports a compression value this package does
// not know.
var ErrUnsupportedCompression = errors.New("unsupported content compression")

// ErrTooLarge reports content that decompresses beyond MaxDecodedSize.
var ErrTooLarge = errors.New("content too large")

// ErrNotText reports a text read of content that is not valid UTF-8 text.
var ErrNotText = errors.New("content is not UTF-8 text")

// TypeID names a content type: authority/type:major.minor.
type TypeID struct {
	Authority string
	Type      string
	Major     uint32
	Minor     uint32
}

// String writes the type id as xmtp-js does, e.g. "xmtp.org/text:1.0".
func (t TypeID) String() string {
	return fmt.Sprintf("%s/%s:%d.%d", t.Authority, t.Type, t.Major, t.Minor)
}

// SameType reports whether t and o name the same type and major version.
func (t TypeID) SameType(o TypeID) bool {
	return t.Authority == o.Authority && t.Type == o.Type && t.Major == o.Major
}

// TypeText is the plain text content type.
var TypeText = TypeID{Authority: "xmtp.org", Type: "text", Major: 1, Minor: 0}

// Content is decoded message content. Body is already decompressed.
type Content struct {
	Type       TypeID
	Parameters map[string]string
	Fallback   string
	Body       []byte
}

// Text returns text content with the parameters xmtp-js sets.
func Text(s string) *Content {
	return &Content{Type: TypeText, Parameters: map[string]string{"encoding": "UTF-8"}, Body: []byte(s)}
}

// IsText reports whether the content is xmtp.org/text.
func (c *Content) IsText() bool { return c.Type.SameType(TypeText) }

// Text returns the content as a string if it is UTF-8 text.
func (c *Content) Text() (string, error) {
	if !c.IsText() {
		return "", fmt.Errorf("read text of %s: %w", c.Type, ErrNotText)
	}
	if enc, ok := c.Parameters["encoding"]; ok && enc != "UTF-8" {
		return "", fmt.Errorf("read text encoding %q: %w", enc, ErrNotText)
	}
	if !utf8.Valid(c.Body) {
		return "", fmt.Errorf("read text: %w", ErrNotText)
	}
	return string(c.Body), nil
}

// Encode writes the content as an uncompressed EncodedContent.
func Encode(c *Content) ([]byte, error) {
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
	out, err := proto.Marshal(ec)
	if err != nil {
		return nil, fmt.Errorf("encode content: %w", err)
	}
	return out, nil
}

// Decode reads an EncodedContent, decompressing its body if it says so.
// Unknown content types are returned as they are, never dropped.
func Decode(data []byte) (*Content, error) {
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

// decompress undoes the compression xmtp-js applies with the Compression
// Streams API: "deflate" is the zlib format and "gzip" is gzip.
func decompress(kind mc.Compression, body []byte) ([]byte, error) {
	var r io.ReadCloser
	var err error
	switch kind {
	case mc.Compression_COMPRESSION_DEFLATE:
		r, err = zlib.NewReader(bytes.NewReader(body))
	case mc.Compression_COMPRESSION_GZIP:
		r, err = gzip.NewReader(bytes.NewReader(body))
	default:
		return nil, fmt.Errorf("decompress %d: %w", int32(kind), ErrUnsupportedCompression)
	}
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", kind, ErrMalformed)
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, MaxDecodedSize+1))
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", kind, ErrMalformed)
	}
	if len(out) > MaxDecodedSize {
		return nil, fmt.Errorf("decompress %s: %w", kind, ErrTooLarge)
	}
	return out, nil
}
