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

type relayccBody struct {
	BridgePeerAddress string         `json:"bridgePeerAddress"`
	Message           relayccMessage `json:"message"`
}

type relayccMessage struct {
	Conversation relayccConversation `json:"conversation"`
	Content      string              `json:"content"`
}

type relayccConversation struct {
	PeerAddress string         `json:"peerAddress"`
	Context     relayccContext `json:"context"`
}

type relayccContext struct {
	ConversationID string `json:"conversationId,omitempty"`
}

type jsonBody struct {
	ID           string           `json:"id"`
	Bridge       string           `json:"bridge"`
	Sender       string           `json:"sender"`
	Conversation jsonConversation `json:"conversation"`
	ContentType  string           `json:"contentType"`
	Content      string           `json:"content"`
	SentAt       string           `json:"sentAt"`
}

type jsonConversation struct {
	Topic string `json:"topic"`
	ID    string `json:"id,omitempty"`
}

// EncodeBody writes m in format f.
func EncodeBody(f Format, m Message) ([]byte, error) {
	var v any
	switch f {
	case FormatRelaycc:
		v = relayccBody{
			BridgePeerAddress: m.Bridge,
			Message: relayccMessage{
				Conversation: relayccConversation{PeerAddress: m.Sender, Context: relayccContext{ConversationID: m.ConversationID}},
				Content:      m.Content,
			},
		}
	case FormatJSON:
		v = jsonBody{
			ID: m.ID, Bridge: m.Bridge, Sender: m.Sender,
			Conversation: jsonConversation{Topic: m.Topic, ID: m.ConversationID},
			ContentType:  m.ContentType, Content: m.Content,
			SentAt: m.SentAt.UTC().Format(time.RFC3339Nano),
		}
	default:
		return nil, fmt.Errorf("encode body: %w %q", ErrUnknownFormat, string(f))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
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
	media, _, _ := mime.ParseMediaType(contentType)
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
