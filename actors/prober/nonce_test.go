package prober

import (
	"strings"
	"testing"
)

func TestQuotedNonce(t *testing.T) {
	nonce, err := newNonce()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text string
		want bool
	}{
		{NoncePrefix + nonce, true},
		{"Hello from the proxied server! Your message was: " + NoncePrefix + nonce, true},
		{NoncePrefix + strings.ToUpper(nonce), false},
		{NoncePrefix + nonce[:10], false},
		{"hello", false},
	} {
		got, ok := quotedNonce(tc.text)
		if ok != tc.want || (ok && got != nonce) {
			t.Errorf("quotedNonce(%q) = %q, %v; want %v", tc.text, got, ok, tc.want)
		}
	}
}

// FuzzQuotedNonce checks that any reply text either yields a well-formed
// nonce that it contains, or nothing, and never panics.
func FuzzQuotedNonce(f *testing.F) {
	f.Add("Hello from the proxied server! Your message was: canary 00112233445566778899aabbccddeeff")
	f.Add("canary ")
	f.Add("canary canary zz")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		nonce, ok := quotedNonce(text)
		if !ok {
			return
		}
		if len(nonce) != nonceLen || !strings.Contains(text, NoncePrefix+nonce) {
			t.Fatalf("quotedNonce(%q) = %q", text, nonce)
		}
	})
}
