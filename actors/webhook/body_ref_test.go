package webhook

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// The reference encoding of the delivery bodies: the structs and the
// encoding/json call EncodeBody used before it wrote the bytes itself.
// EncodeBody must write exactly what this writes.

type refRelayccBody struct {
	BridgePeerAddress string            `json:"bridgePeerAddress"`
	Message           refRelayccMessage `json:"message"`
}

type refRelayccMessage struct {
	Conversation refRelayccConversation `json:"conversation"`
	Content      string                 `json:"content"`
}

type refRelayccConversation struct {
	PeerAddress string            `json:"peerAddress"`
	Context     refRelayccContext `json:"context"`
}

type refRelayccContext struct {
	ConversationID string `json:"conversationId,omitempty"`
}

type refJSONBody struct {
	ID           string              `json:"id"`
	Bridge       string              `json:"bridge"`
	Sender       string              `json:"sender"`
	Conversation refJSONConversation `json:"conversation"`
	ContentType  string              `json:"contentType"`
	Content      string              `json:"content"`
	SentAt       string              `json:"sentAt"`
}

type refJSONConversation struct {
	Topic string `json:"topic"`
	ID    string `json:"id,omitempty"`
}

func referenceBody(t testing.TB, f Format, m Message) []byte {
	t.Helper()
	var v any
	switch f {
	case FormatRelaycc:
		v = refRelayccBody{
			BridgePeerAddress: m.Bridge,
			Message: refRelayccMessage{
				Conversation: refRelayccConversation{PeerAddress: m.Sender, Context: refRelayccContext{ConversationID: m.ConversationID}},
				Content:      m.Content,
			},
		}
	case FormatJSON:
		v = refJSONBody{
			ID: m.ID, Bridge: m.Bridge, Sender: m.Sender,
			Conversation: refJSONConversation{Topic: m.Topic, ID: m.ConversationID},
			ContentType:  m.ContentType, Content: m.Content,
			SentAt: m.SentAt.UTC().Format(time.RFC3339Nano),
		}
	default:
		t.Fatalf("no reference for format %q", f)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("reference encode: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

func checkBodyMatchesReference(t *testing.T, m Message) {
	t.Helper()
	for _, f := range []Format{FormatRelaycc, FormatJSON} {
		got, err := EncodeBody(f, m)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if want := referenceBody(t, f, m); !bytes.Equal(got, want) {
			t.Fatalf("%s body of %#v\n got %q\nwant %q", f, m, got, want)
		}
	}
}

// TestEncodeBodyMatchesEncodingJSON checks the strings JSON escapes one
// way or another: quotes, backslashes, every control character, HTML
// characters (not escaped), DEL, invalid UTF-8, U+2028 and U+2029, and
// multi-byte text, in every field.
func TestEncodeBodyMatchesEncodingJSON(t *testing.T) {
	var ctl []byte
	for c := 0; c < 0x20; c++ {
		ctl = append(ctl, byte(c), 'x')
	}
	texts := []string{
		"", "plain", `"quoted" \back\slash\`, string(ctl), "<a href='x'>&amp;</a>", "\x7f",
		"bad \xff\xfe utf-8 \xe2\x80", "line\u2028sep\u2029para", "héllo wörld 你好 🎉", "\u00a0\ufeff\ufffd",
		"trailing\\", "\"", "\xed\xa0\x80", // a UTF-16 surrogate encoded as UTF-8 is invalid
	}
	for _, s := range texts {
		m := sampleMessage
		m.ID, m.Bridge, m.Sender, m.Topic, m.ConversationID, m.ContentType, m.Content = s, s, s, s, s, s, s
		checkBodyMatchesReference(t, m)
		m = sampleMessage
		m.Content = s
		checkBodyMatchesReference(t, m)
	}
	for _, at := range []time.Time{{}, time.Unix(0, 0), time.Unix(1, 1), time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.FixedZone("y", -7200)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)} {
		m := sampleMessage
		m.SentAt = at
		checkBodyMatchesReference(t, m)
	}
}

// FuzzEncodeBody checks EncodeBody against the reference encoding.
func FuzzEncodeBody(f *testing.F) {
	f.Add("id", "0xbridge", "0xsender", "/xmtp/0/m-x/proto", "conv/1", "xmtp.org/text:1.0", "hello <world> & \"you\"", int64(1700000000123456789))
	f.Add("", "", "", "", "", "", "\x00\u2028\xff", int64(0))
	f.Fuzz(func(t *testing.T, id, bridge, sender, topic, conv, ct, content string, sent int64) {
		checkBodyMatchesReference(t, Message{ID: id, Bridge: bridge, Sender: sender, Topic: topic, ConversationID: conv,
			ContentType: ct, Content: content, SentAt: time.Unix(0, sent)})
	})
}

// BenchmarkEncodeBody encodes the json body of a short text message.
func BenchmarkEncodeBody(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeBody(FormatJSON, sampleMessage); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeBodyEncodingJSON is the reference encoding of the same
// body, which EncodeBody replaced.
func BenchmarkEncodeBodyEncodingJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = referenceBody(b, FormatJSON, sampleMessage)
	}
}
