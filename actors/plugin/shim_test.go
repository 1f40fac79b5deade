package plugin

import (
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/plugin/plugintest"
	"github.com/xmtpbridge/bridge/actors/webhook"
)

// TestShimCarriesEveryLength sends the bot messages whose input and
// output lengths take every value modulo 8, with the shim of the fewest
// host calls (whose last word overlaps) and with the PDK-style one, and
// checks each reply carries the content byte for byte.
func TestShimCarriesEveryLength(t *testing.T) {
	for _, style := range []struct{ name, ldflags string }{{"fewest", ""}, {"pdk", pdkStyle}} {
		t.Run(style.name, func(t *testing.T) {
			h := newHarness(t, Config{Timeout: 5 * time.Second})
			id, addr := h.bridge()
			p := h.upload("bot", plugintest.Build(t, plugintest.Bot, style.ldflags))
			h.bind(id, OnMessage, p.ID, map[string]string{"mode": "version"}, ErrorForward)
			bd := h.host.lookup(addr, OnMessage)
			if bd == nil {
				t.Fatal("no binding")
			}
			for n := 0; n <= 17; n++ {
				text := strings.Repeat("é", n/2) + strings.Repeat("x", n%2) + "~"
				in, err := webhook.EncodeBody(webhook.FormatJSON, webhook.Message{ID: "m", Bridge: addr, Sender: "0x1",
					Topic: "/t", ContentType: "xmtp.org/text:1.0", Content: text, SentAt: time.Unix(1700000000, 0)})
				if err != nil {
					t.Fatal(err)
				}
				out, cerr := h.host.call(h.ctx, bd, in)
				if cerr != nil {
					t.Fatalf("content %q: %v", text, cerr)
				}
				res, err := DecodeMessageResult(out)
				if err != nil || res.Action != "reply" || res.Content == nil || *res.Content != "dev: "+text {
					t.Fatalf("content %q (input %d bytes): got %s, %v", text, len(in), out, err)
				}
			}
		})
	}
}
