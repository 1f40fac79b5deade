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
	"slices"
	"strconv"
	"unicode/utf8"

	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/encoding/protowire"
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
	if t == TypeText {
		return typeTextString
	}
	b := make([]byte, 0, len(t.Authority)+len(t.Type)+24)
	b = append(b, t.Authority...)
	b = append(b, '/')
	b = append(b, t.Type...)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(t.Major), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(t.Minor), 10)
	return string(b)
}

// typeTextString is TypeText.String().
const typeTextString = "xmtp.org/text:1.0"

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

// The fields of EncodedContent and ContentTypeId. Encode and Decode read
// and write the wire format with protowire directly, as proto.Marshal and
// proto.Unmarshal of mc.EncodedContent do (content_wire_test.go holds them
// to that): every message is decoded three times and encoded twice on its
// way through a bridge, and reflection is most of their cost.
const (
	fieldType        protowire.Number = 1
	fieldParameters  protowire.Number = 2
	fieldFallback    protowire.Number = 3
	fieldContent     protowire.Number = 4
	fieldCompression protowire.Number = 5

	fieldAuthority protowire.Number = 1
	fieldTypeID    protowire.Number = 2
	fieldMajor     protowire.Number = 3
	fieldMinor     protowire.Number = 4

	fieldKey   protowire.Number = 1
	fieldValue protowire.Number = 2
)

// Encode writes the content as an uncompressed EncodedContent: the bytes
// proto.Marshal writes for it, with the parameters in key order (as its
// deterministic mode does).
func Encode(c *Content) ([]byte, error) {
	typeLen := typeIDSize(c.Type)
	n := protowire.SizeTag(fieldType) + protowire.SizeBytes(typeLen)
	for k, v := range c.Parameters {
		n += protowire.SizeTag(fieldParameters) + protowire.SizeBytes(mapEntrySize(k, v))
	}
	if c.Fallback != "" {
		n += protowire.SizeTag(fieldFallback) + protowire.SizeBytes(len(c.Fallback))
	}
	if len(c.Body) > 0 {
		n += protowire.SizeTag(fieldContent) + protowire.SizeBytes(len(c.Body))
	}
	b := make([]byte, 0, n)
	b = protowire.AppendTag(b, fieldType, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(typeLen))
	b = appendString(b, fieldAuthority, c.Type.Authority)
	b = appendString(b, fieldTypeID, c.Type.Type)
	b = appendUint(b, fieldMajor, c.Type.Major)
	b = appendUint(b, fieldMinor, c.Type.Minor)
	if len(c.Parameters) > 0 {
		var one [1]string
		keys := one[:0]
		for k := range c.Parameters {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := c.Parameters[k]
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("encode content: parameter %q: %w", k, ErrNotText)
			}
			b = protowire.AppendTag(b, fieldParameters, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(mapEntrySize(k, v)))
			b = protowire.AppendTag(b, fieldKey, protowire.BytesType)
			b = protowire.AppendString(b, k)
			b = protowire.AppendTag(b, fieldValue, protowire.BytesType)
			b = protowire.AppendString(b, v)
		}
	}
	if c.Fallback != "" {
		b = protowire.AppendTag(b, fieldFallback, protowire.BytesType)
		b = protowire.AppendString(b, c.Fallback)
	}
	if len(c.Body) > 0 {
		b = protowire.AppendTag(b, fieldContent, protowire.BytesType)
		b = protowire.AppendBytes(b, c.Body)
	}
	// proto.Marshal refuses text fields that are not UTF-8.
	if !utf8.ValidString(c.Type.Authority) || !utf8.ValidString(c.Type.Type) || !utf8.ValidString(c.Fallback) {
		return nil, fmt.Errorf("encode content: %w", ErrNotText)
	}
	return b, nil
}

func typeIDSize(t TypeID) int {
	n := 0
	if t.Authority != "" {
		n += protowire.SizeTag(fieldAuthority) + protowire.SizeBytes(len(t.Authority))
	}
	if t.Type != "" {
		n += protowire.SizeTag(fieldTypeID) + protowire.SizeBytes(len(t.Type))
	}
	if t.Major != 0 {
		n += protowire.SizeTag(fieldMajor) + protowire.SizeVarint(uint64(t.Major))
	}
	if t.Minor != 0 {
		n += protowire.SizeTag(fieldMinor) + protowire.SizeVarint(uint64(t.Minor))
	}
	return n
}

// mapEntrySize is the size of a map entry: proto.Marshal writes its key
// and value even when they are empty.
func mapEntrySize(k, v string) int {
	return protowire.SizeTag(fieldKey) + protowire.SizeBytes(len(k)) + protowire.SizeTag(fieldValue) + protowire.SizeBytes(len(v))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendUint(b []byte, num protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

// Decode reads an EncodedContent, decompressing its body if it says so.
// Unknown content types are returned as they are, never dropped. It
// accepts and refuses what proto.Unmarshal does: unknown fields and fields
// of an unexpected wire type are skipped, a repeated field keeps its last
// value, a repeated type is merged, and text must be UTF-8.
func Decode(data []byte) (*Content, error) {
	c := &Content{}
	var (
		hasType     bool
		compression *mc.Compression
	)
	for len(data) > 0 {
		num, typ, n := consumeTag(data)
		if n < 0 {
			return nil, fmt.Errorf("decode content: %w", ErrMalformed)
		}
		data = data[n:]
		switch {
		case num == fieldType && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(data)
			if n < 0 || !decodeTypeID(v, &c.Type) {
				return nil, fmt.Errorf("decode content: %w", ErrMalformed)
			}
			hasType, data = true, data[n:]
		case num == fieldParameters && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return nil, fmt.Errorf("decode content: %w", ErrMalformed)
			}
			k, val, ok := decodeMapEntry(v)
			if !ok {
				return nil, fmt.Errorf("decode content: %w", ErrMalformed)
			}
			if c.Parameters == nil {
				c.Parameters = make(map[string]string, 1)
			}
			c.Parameters[k] = val
			data = data[n:]
		case num == fieldFallback && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(data)
			if n < 0 || !utf8.Valid(v) {
				return nil, fmt.Errorf("decode content: %w", ErrMalformed)
			}
			c.Fallback, data = string(v), data[n:]
		case num == fieldContent && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return nil, fmt.Errorf("decode content: %w", ErrMalformed)
			}
			c.Body, data = append([]byte{}, v...), data[n:]
		case num == fieldCompression && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(data)
			if n < 0 {
				return nil, fmt.Errorf("decode content: %w", ErrMalformed)
			}
			k := mc.Compression(int32(v))
			compression, data = &k, data[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, data)
			if n < 0 {
				return nil, fmt.Errorf("decode content: %w", ErrMalformed)
			}
			data = data[n:]
		}
	}
	if !hasType {
		return nil, fmt.Errorf("decode content: no type: %w", ErrMalformed)
	}
	if compression != nil {
		body, err := decompress(*compression, c.Body)
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

// consumeTag is protowire.ConsumeTag that also refuses field numbers above
// the largest valid one, as proto.Unmarshal does.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, typ, n
}

// decodeTypeID merges a ContentTypeId into t.
func decodeTypeID(b []byte, t *TypeID) bool {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case (num == fieldAuthority || num == fieldTypeID) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return false
			}
			if num == fieldAuthority {
				t.Authority = knownString(v)
			} else {
				t.Type = knownString(v)
			}
			b = b[n:]
		case (num == fieldMajor || num == fieldMinor) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			if num == fieldMajor {
				t.Major = uint32(v)
			} else {
				t.Minor = uint32(v)
			}
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false
			}
			b = b[n:]
		}
	}
	return true
}

// decodeMapEntry reads one parameters entry; a missing key or value is "".
func decodeMapEntry(b []byte) (key, value string, ok bool) {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return "", "", false
		}
		b = b[n:]
		if (num == fieldKey || num == fieldValue) && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return "", "", false
			}
			if num == fieldKey {
				key = knownString(v)
			} else {
				value = knownString(v)
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", "", false
		}
		b = b[n:]
	}
	return key, value, true
}

// knownString returns b as a string, without a copy for the values almost
// every message carries.
func knownString(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case "xmtp.org":
		return "xmtp.org"
	case "text":
		return "text"
	case "encoding":
		return "encoding"
	case "UTF-8":
		return "UTF-8"
	case autoReplyKey:
		return autoReplyKey
	}
	return string(b)
}

// autoReplyKey is the parameter a bridge's replies carry (actors'
// loop guard); it is here only so that decoding it copies nothing.
const autoReplyKey = "xmtpbridge-auto-reply"

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
