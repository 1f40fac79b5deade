package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"
)

// Format is the shape of a delivery's HTTP body.
type Format string

// The body formats. Their values match persistence.BodyFormat.
const (
	// FormatRelaycc is the body the relaycc bridge sends; the target
	// answers {"ok": true, "data": …}.
	FormatRelaycc Format = "relaycc"
	// FormatJSON is this system's own body; the reply is the response
	// body, as text or as {"reply": "…"}.
	FormatJSON Format = "json"
)

var (
	// ErrUnknownFormat means a body format is neither relaycc nor json.
	ErrUnknownFormat = errors.New("unknown body format")
	// ErrBadReply means a successful response's body could not be read as
	// a reply in the endpoint's format.
	ErrBadReply = errors.New("bad reply")
	// ErrNotOK means a relaycc target answered with "ok" not true.
	ErrNotOK = errors.New("relaycc target answered ok=false")
)

// Message is one inbound XMTP message to deliver.
type Message struct {
	// ID is the message's stable id (the envelope hash); it is the
	// webhook-id, so receivers can use it as an idempotency key.
	ID string
	// Bridge is the bridge identity's XMTP address.
	Bridge string
	// Sender is the sender's XMTP address.
	Sender string
	// Topic is the conversation topic the message came on.
	Topic string
	// ConversationID is the conversation's id, or "" when it has none.
	ConversationID string
	// ContentType is the content type id, such as "xmtp.org/text:1.0".
	ContentType string
	// Content is the decoded content.
	Content string
	// SentAt is the message's sent time.
	SentAt time.Time
}

// EncodeBody writes m in format f. The bytes are those encoding/json
// writes for the body with HTML escaping off (body_test.go holds that
// encoding as the reference), built without reflection: a delivery encodes
// one body per attempt.
func EncodeBody(f Format, m Message) ([]byte, error) {
	switch f {
	case FormatRelaycc:
		b := make([]byte, 0, 96+len(m.Bridge)+len(m.Sender)+len(m.ConversationID)+len(m.Content)+len(m.Content)/8)
		b = append(b, `{"bridgePeerAddress":`...)
		b = appendJSONString(b, m.Bridge)
		b = append(b, `,"message":{"conversation":{"peerAddress":`...)
		b = appendJSONString(b, m.Sender)
		b = append(b, `,"context":{`...)
		if m.ConversationID != "" {
			b = append(b, `"conversationId":`...)
			b = appendJSONString(b, m.ConversationID)
		}
		b = append(b, `}},"content":`...)
		b = appendJSONString(b, m.Content)
		return append(b, `}}`...), nil
	case FormatJSON:
		b := make([]byte, 0, 160+len(m.ID)+len(m.Bridge)+len(m.Sender)+len(m.Topic)+len(m.ConversationID)+
			len(m.ContentType)+len(m.Content)+len(m.Content)/8)
		b = append(b, `{"id":`...)
		b = appendJSONString(b, m.ID)
		b = append(b, `,"bridge":`...)
		b = appendJSONString(b, m.Bridge)
		b = append(b, `,"sender":`...)
		b = appendJSONString(b, m.Sender)
		b = append(b, `,"conversation":{"topic":`...)
		b = appendJSONString(b, m.Topic)
		if m.ConversationID != "" {
			b = append(b, `,"id":`...)
			b = appendJSONString(b, m.ConversationID)
		}
		b = append(b, `},"contentType":`...)
		b = appendJSONString(b, m.ContentType)
		b = append(b, `,"content":`...)
		b = appendJSONString(b, m.Content)
		b = append(b, `,"sentAt":"`...)
		// RFC 3339 text is digits, letters and "-:.+", none of which JSON
		// escapes.
		b = m.SentAt.UTC().AppendFormat(b, time.RFC3339Nano)
		return append(b, `"}`...), nil
	default:
		return nil, fmt.Errorf("encode body: %w %q", ErrUnknownFormat, string(f))
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string exactly as encoding/json
// does with HTML escaping off: quote and backslash escaped, control
// characters as \b, \f, \n, \r, \t or \u00XX, invalid UTF-8 as \ufffd
// and U+2028 and U+2029 as \u2028 and \u2029.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// DecodeRelayccReply reads a relaycc target's answer {"ok": true, "data":
// …}. It returns the reply and whether there is one: a string data is the
// reply as is, other JSON data is the reply as compact JSON, and absent or
// null data is no reply.
func DecodeRelayccReply(body []byte) (string, bool, error) {
	var r struct {
		OK   *bool           `json:"ok"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", false, fmt.Errorf("decode relaycc reply: %w: not a JSON object", ErrBadReply)
	}
	if r.OK == nil {
		return "", false, fmt.Errorf("decode relaycc reply: %w: no ok field", ErrBadReply)
	}
	if !*r.OK {
		return "", false, fmt.Errorf("decode relaycc reply: %w", ErrNotOK)
	}
	data := bytes.TrimSpace(r.Data)
	if len(data) == 0 || string(data) == "null" {
		return "", false, nil
	}
	if data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return "", false, fmt.Errorf("decode relaycc reply: %w: data is not a string", ErrBadReply)
		}
		return s, true, nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return "", false, fmt.Errorf("decode relaycc reply: %w: data is not JSON", ErrBadReply)
	}
	return compact.String(), true, nil
}

// DecodeJSONReply reads the answer of a json-format target: a JSON body
// (by content type, or an untyped body that is a JSON object) is
// {"reply": "…"}, anything else is the reply as UTF-8 text. An empty body,
// or JSON without a reply, is no reply.
func DecodeJSONReply(contentType string, body []byte) (string, bool, error) {
	media := jsonMediaType(contentType)
	isJSON := media == "application/json" || strings.HasSuffix(media, "+json")
	trimmed := bytes.TrimSpace(body)
	if !isJSON && media == "" && len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) {
		isJSON = true
	}
	if !isJSON {
		if len(body) == 0 {
			return "", false, nil
		}
		if !utf8.Valid(body) {
			return "", false, fmt.Errorf("decode reply: %w: text is not UTF-8", ErrBadReply)
		}
		return string(body), true, nil
	}
	if len(trimmed) == 0 {
		return "", false, nil
	}
	if reply, ok := plainJSONReply(trimmed); ok {
		return reply, true, nil
	}
	var r struct {
		Reply *json.RawMessage `json:"reply"`
	}
	if err := json.Unmarshal(trimmed, &r); err != nil {
		return "", false, fmt.Errorf("decode reply: %w: not a JSON object", ErrBadReply)
	}
	if r.Reply == nil || string(bytes.TrimSpace(*r.Reply)) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(*r.Reply, &s); err != nil {
		return "", false, fmt.Errorf("decode reply: %w: reply is not a string", ErrBadReply)
	}
	return s, true, nil
}

// jsonMediaType is the media type of contentType as mime.ParseMediaType
// has it, without parsing (and a map of parameters) for the two usual
// forms of a JSON answer.
func jsonMediaType(contentType string) string {
	switch contentType {
	case "application/json", "application/json; charset=utf-8":
		return "application/json"
	}
	media, _, _ := mime.ParseMediaType(contentType)
	return media
}

// plainJSONReply reads the usual answer, {"reply":"…"} with nothing else
// and a string that needs no decoding (no escape, quote or control
// character, valid UTF-8), as json.Unmarshal would, without its
// allocations. It reports false for every other body, which the caller
// decodes with encoding/json.
func plainJSONReply(body []byte) (string, bool) {
	const prefix, suffix = `{"reply":"`, `"}`
	if len(body) < len(prefix)+len(suffix) || string(body[:len(prefix)]) != prefix || string(body[len(body)-len(suffix):]) != suffix {
		return "", false
	}
	text := body[len(prefix) : len(body)-len(suffix)]
	for _, c := range text {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(text) {
		return "", false
	}
	return string(text), true
}
