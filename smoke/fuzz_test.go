package smoke

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// FuzzDecodeAnswers feeds arbitrary bodies to every decoder of the
// deployment's answers: none may panic, a success must carry values that
// are safe to put in a URL path or a header, and an error message must be
// printable.
func FuzzDecodeAnswers(f *testing.F) {
	f.Add([]byte(`{"ok":true,"node":"bridge-1"}`))
	f.Add([]byte(`{"ok":true,"account":{"id":"0b6f3f1e-4f1a-4a57-9a43-1f0c2f9d1a11","name":"smoke"},"apiKey":"xbk_abcdefgh12345678","apiKeyInfo":{"id":"5a0c6b1e-7f3a-4c2e-9d1b-2e4f6a8c0d13","prefix":"xbk_abcd"}}`))
	f.Add([]byte(`{"ok":true,"bridge":{"id":"0b6f3f1e-4f1a-4a57-9a43-1f0c2f9d1a11","address":"0x00112233445566778899aabbccddeeff00112233"},"webhookSecret":"whsec_x"}`))
	f.Add([]byte(`{"ok":false,"error":"invalid signup key","code":"unauthorized"}`))
	f.Add([]byte(`{"ok":true,"bridge":{"id":"../admin","address":"0x0"}}`))
	f.Add([]byte("<html>502 Bad Gateway\x00\x1b[31m</html>"))
	f.Add([]byte(`{"ok":true}{"ok":false}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var h healthAnswer
		if h.decode(body) == nil && (!h.OK || !utf8.ValidString(h.Node)) {
			t.Fatalf("health: %+v", h)
		}
		var a accountCreated
		if a.decode(body) == nil && (!isID(a.AccountID) || !isID(a.KeyID) || !isToken(a.APIKey)) {
			t.Fatalf("account: %+v", a)
		}
		var b bridgeCreated
		if b.decode(body) == nil && (!isID(b.ID) || !keys.IsAddress(b.Address)) {
			t.Fatalf("bridge: %+v", b)
		}
		msg := errorMessage(body)
		if msg == "" || !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("error message %q is not printable", msg)
		}
	})
}
