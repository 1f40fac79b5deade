package webhook

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzDecodeRelayccReply(f *testing.F) {
	for _, s := range []string{`{"ok":true,"data":"echo: hello"}`, `{"ok":true,"data":{"a":[1,2]}}`, `{"ok":false}`,
		`{"ok":true}`, `null`, `[]`, `{"ok":true,"data":"\ud800"}`, "\x00", `{"ok":true,"data":1e999}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reply, has, err := DecodeRelayccReply(body)
		if err != nil && (has || reply != "") {
			t.Fatalf("error %v with reply %q", err, reply)
		}
		if has && !json.Valid(body) {
			t.Fatalf("reply %q from invalid JSON", reply)
		}
	})
}

func FuzzDecodeJSONReply(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{"application/json", `{"reply":"hi"}`}, {"", `{"reply":"x"}`}, {"text/plain", "hello"},
		{"application/json", `{"reply":5}`}, {"application/problem+json", `{}`}, {"text/plain", "\xff"},
		{"multipart/form-data; boundary=", "--"}, {"application/json; charset=\"", `{`},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		reply, has, err := DecodeJSONReply(ct, body)
		if err != nil && (has || reply != "") {
			t.Fatalf("error %v with reply %q", err, reply)
		}
		if has && !utf8.ValidString(reply) {
			t.Fatalf("reply %q is not UTF-8", reply)
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"0", "120", "Mon, 23 Nov 2026 12:01:00 GMT", "Monday, 23-Nov-26 12:01:00 GMT",
		"Mon Nov 23 12:01:00 2026", "99999999999999999999", "-1", "", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := ParseRetryAfter(v, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", v, d, ok)
		}
	})
}

func FuzzParseSignatureHeader(f *testing.F) {
	for _, s := range []string{specSignature, specSignature + " v1a,abc", "v1,", ",", "v1,YWJj v2,x", "  "} {
		f.Add(s, int64(specTimestamp), []byte(specBody))
	}
	f.Fuzz(func(t *testing.T, header string, ts int64, body []byte) {
		sigs, err := ParseSignatureHeader(header)
		if err == nil && len(sigs) > maxSignatures {
			t.Fatalf("%d signatures", len(sigs))
		}
		h := http.Header{}
		h.Set(HeaderID, specID)
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(HeaderSignature, header)
		// Verify never panics, and accepts only a real signature.
		if Verify(specSecret, h, body, time.Unix(ts, 0)) == nil {
			want := Sign(specID, ts, body, mustSecret(t, specSecret))
			found := false
			for _, s := range sigs {
				if "v1,"+b64(s) == want {
					found = true
				}
			}
			if !found {
				t.Fatalf("header %q verified without the right signature", header)
			}
		}
	})
}
