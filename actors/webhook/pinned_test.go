package webhook

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// TestDeliveredRequestIsByteExact pins the request a receiver sees: its
// body and its signed headers are fixed by the message, the secrets and the
// clock. The values below were written by the encoding/json and hmac code
// the deliverer had before it built them itself; a receiver that verified
// those deliveries verifies these.
func TestDeliveredRequestIsByteExact(t *testing.T) {
	const second = "whsec_" + "c2Vjb25kLXNlY3JldC1rZXktMzItYnl0ZXMhIQ=="
	now := time.Unix(1764637200, 987654321)
	m := sampleMessage
	m.Content = "line one\nline \"two\" <b>&</b> \u2028 caf\u00e9 \x01"
	cases := []struct {
		format    Format
		body      string
		signature string
	}{
		{FormatJSON,
			"{\"id\":\"3f1c0d6e9a\",\"bridge\":\"0x1111111111111111111111111111111111111111\",\"sender\":\"0x2222222222222222222222222222222222222222\",\"conversation\":{\"topic\":\"/xmtp/0/m-abc/proto\",\"id\":\"support/42\"},\"contentType\":\"xmtp.org/text:1.0\",\"content\":\"line one\\nline \\\"two\\\" <b>&</b> \\u2028 caf\u00e9 \\u0001\",\"sentAt\":\"2026-11-23T16:08:13.123456789Z\"}",
			"v1,jcwNrhBDJj6P3RgcfB+XYfmDPziDNu8pIYQ76xxobkU= v1,LskGrJR3I+Xjl+/a63Mw/Qs4TMbyGsfKpa5FfD9Rd1s="},
		{FormatRelaycc,
			"{\"bridgePeerAddress\":\"0x1111111111111111111111111111111111111111\",\"message\":{\"conversation\":{\"peerAddress\":\"0x2222222222222222222222222222222222222222\",\"context\":{\"conversationId\":\"support/42\"}},\"content\":\"line one\\nline \\\"two\\\" <b>&</b> \\u2028 caf\u00e9 \\u0001\"}}",
			"v1,64mAJ0nrMHW3F9BpULa1MT2gDuoq9O+ZHRb++Cax0LU= v1,lCCzg0jSNcZTkvdnnB8JF3uynsxPvZZF1jlrOawJH2c="},
	}
	for _, c := range cases {
		t.Run(string(c.format), func(t *testing.T) {
			rec := &recordingServer{}
			srv := serveOn(t, "127.0.0.2", rec.handler(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ok")
			}))
			d := NewDeliverer(Config{
				Client: NewClient(ClientOptions{AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}),
				Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now },
			})
			ep := Endpoint{URL: srv.URL + "/hook?token=abc", Format: c.format,
				Headers: map[string]string{"X-Api-Key": "k1", "webhook-signature": "forged"},
				Secrets: []Secret{mustSecret(t, testSecret), mustSecret(t, second)}}
			res := d.Deliver(context.Background(), ep, m)
			if res.Outcome != OutcomeDelivered || res.Err != nil {
				t.Fatalf("result %+v", res)
			}
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("server got %d requests", len(reqs))
			}
			got := reqs[0]
			if string(got.body) != c.body {
				t.Errorf("body\n got %q\nwant %q", got.body, c.body)
			}
			want := map[string]string{
				"Webhook-Id": m.ID, "Webhook-Timestamp": "1764637200", "Webhook-Signature": c.signature,
				"Content-Type": "application/json", "User-Agent": DefaultUserAgent, "X-Api-Key": "k1",
			}
			for name, v := range want {
				if vs := got.header.Values(name); len(vs) != 1 || vs[0] != v {
					t.Errorf("header %s = %q, want %q", name, vs, v)
				}
			}
			for _, s := range []string{testSecret, second} {
				if err := Verify(s, got.header, got.body, now); err != nil {
					t.Errorf("verify under %s: %v", s[:9], err)
				}
			}
		})
	}
}
