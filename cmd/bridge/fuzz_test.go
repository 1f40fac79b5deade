package main

import (
	"encoding/base64"
	"testing"

	"github.com/xmtpbridge/bridge/internal/apiclient"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// FuzzParseLogin feeds any config file to parseLogin: it never panics, and
// what it refuses it refuses with an error that does not quote the file,
// which may hold an API key.
func FuzzParseLogin(f *testing.F) {
	for _, s := range []string{
		`{"api":"http://127.0.0.1:8080","apiKey":"xbk_abc"}`, `{}`, `null`, `[]`, ``, `{"api":1}`,
		`{"api":"x","apiKey":"xbk_secret_in_a_broken_file"`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseLogin(data, "/config.json")
		if err != nil && len(data) > 8 && containsBytes(err.Error(), data) {
			t.Fatalf("the error quotes the file: %v", err)
		}
	})
}

func containsBytes(s string, b []byte) bool {
	for i := 0; i+len(b) <= len(s); i++ {
		if s[i:i+len(b)] == string(b) {
			return true
		}
	}
	return false
}

// FuzzDecodeDelivery feeds any payload, as the API would send it, to
// decodeDelivery: it never panics and always says what the text is.
func FuzzDecodeDelivery(f *testing.F) {
	text, err := content.Encode(content.Text("hello"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range []string{base64.StdEncoding.EncodeToString(text), "", "!!!", base64.StdEncoding.EncodeToString([]byte{0x0a, 0xff})} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		v := decodeDelivery(apiclient.Delivery{ID: "1", Payload: payload})
		if v.ID != "1" {
			t.Fatalf("decodeDelivery lost the delivery: %+v", v)
		}
	})
}
