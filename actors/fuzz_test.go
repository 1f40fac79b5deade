package actors

import (
	"testing"
	"unicode/utf8"

	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// FuzzParseReverseCommand feeds arbitrary message text to the reverse
// command decoder: it must never panic, and what it accepts names a valid
// address and a message.
func FuzzParseReverseCommand(f *testing.F) {
	f.Add(`{"targetAddress":"0x0000000000000000000000000000000000000001","message":"hi"}`)
	f.Add(`{"targetAddress":"nope","message":"hi"}`)
	f.Add(`{"targetAddress":"0x0000000000000000000000000000000000000001"}`)
	f.Add(`[]`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, text string) {
		c, err := parseReverseCommand(text)
		if err != nil {
			return
		}
		if !keys.IsAddress(c.TargetAddress) || c.Message == "" {
			t.Fatalf("accepted %+v", c)
		}
	})
}

// FuzzDecodeCanaryAnswer feeds arbitrary bodies to the canary answer
// decoder.
func FuzzDecodeCanaryAnswer(f *testing.F) {
	f.Add(200, []byte(`{"ok":true,"data":"pong"}`))
	f.Add(200, []byte(`{"ok":true,"data":{"a":1}}`))
	f.Add(200, []byte(`{"ok":false}`))
	f.Add(500, []byte(`{"ok":true,"data":"x"}`))
	f.Add(200, []byte(`not json`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		data, err := decodeCanaryAnswer(status, body)
		if err == nil && status/100 != 2 {
			t.Fatalf("accepted status %d with data %q", status, data)
		}
	})
}

// FuzzDecodePayload feeds arbitrary bytes to the delivery payload decoder
// twice: as a stored payload, and as the text of a message the bridge
// encodes. Encoded text decodes to itself (invalid UTF-8 is refused), and
// a payload that decodes as text encodes and decodes back to that text.
func FuzzDecodePayload(f *testing.F) {
	good, _ := content.Encode(content.Text("hello"))
	f.Add(good)
	auto, _ := content.Encode(autoReply("hello"))
	f.Add(auto)
	f.Add([]byte("héllo, ünïcode ✓"))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff})
	f.Add([]byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, data []byte) {
		encoded, err := content.Encode(content.Text(string(data)))
		if err != nil {
			t.Fatalf("encode text: %v", err)
		}
		ct, text, auto, err := decodePayload(encoded)
		if auto != isAutoReply(encoded) {
			t.Fatalf("text %q: auto-reply %v, isAutoReply %v", data, auto, isAutoReply(encoded))
		}
		switch {
		case !utf8.Valid(data):
			if err == nil {
				t.Fatalf("invalid UTF-8 %q decoded to %q", data, text)
			}
		case err != nil || ct != content.TypeText.String() || text != string(data):
			t.Fatalf("text %q decoded to %q %q %v", data, ct, text, err)
		}

		ct, text, auto, err = decodePayload(data)
		if auto != (err == nil && isAutoReply(data)) {
			t.Fatalf("payload %x: auto-reply %v, isAutoReply %v", data, auto, isAutoReply(data))
		}
		if err != nil || ct != content.TypeText.String() {
			return
		}
		again, err := content.Encode(content.Text(text))
		if err != nil {
			t.Fatalf("re-encode %q: %v", text, err)
		}
		if ct2, text2, _, err := decodePayload(again); err != nil || ct2 != ct || text2 != text {
			t.Fatalf("round trip of %q gave %q %q %v", text, ct2, text2, err)
		}
	})
}

// TestPayloadRoundTrip checks the payload encoding the forward pipeline
// stores.
func TestPayloadRoundTrip(t *testing.T) {
	raw, err := content.Encode(content.Text("héllo"))
	if err != nil {
		t.Fatal(err)
	}
	ct, text, _, err := decodePayload(raw)
	if err != nil || text != "héllo" || ct != content.TypeText.String() {
		t.Fatalf("decode = %q %q %v", ct, text, err)
	}
}

// TestRecent checks that the recent-id set forgets the oldest ids first.
func TestRecent(t *testing.T) {
	r := newRecent(2)
	if !r.add("a") || !r.add("b") || r.add("a") {
		t.Fatal("a and b must be new once")
	}
	if !r.add("c") || !r.add("a") {
		t.Fatal("a must be forgotten after c")
	}
	r.forget("a")
	if !r.add("a") {
		t.Fatal("a forgotten must be new")
	}
}
