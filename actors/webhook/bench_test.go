package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

var benchBody = func() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}()

// BenchmarkSign1KiB signs a 1 KiB body as a delivery does.
func BenchmarkSign1KiB(b *testing.B) {
	s := mustSecret(b, specSecret)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		_ = Sign(specID, specTimestamp, benchBody, s)
	}
}

// BenchmarkHMACSHA256_1KiB is the raw HMAC-SHA256 of the same body, the
// floor Sign is measured against.
func BenchmarkHMACSHA256_1KiB(b *testing.B) {
	s := mustSecret(b, specSecret)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		mac := hmac.New(sha256.New, s.key)
		mac.Write(benchBody)
		_ = mac.Sum(nil)
	}
}

// BenchmarkNewRequest builds the signed request of a short text message,
// as every delivery attempt does.
func BenchmarkNewRequest(b *testing.B) {
	d := NewDeliverer(Config{})
	ep := Endpoint{URL: "https://hooks.example.com/xmtp?token=abc", Format: FormatJSON, Reply: true,
		Headers: map[string]string{"X-Api-Key": "k1"}, Secrets: []Secret{mustSecret(b, specSecret)}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.NewRequest(ctx, ep, sampleMessage); err != nil {
			b.Fatal(err)
		}
	}
}
