package persistence

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// Prefixes of the secrets the store issues. They make a leaked secret easy
// to recognise and to scan for.
const (
	APIKeyPrefix        = "xbk_"
	HookTokenPrefix     = "xbh_"
	WebhookSecretPrefix = "whsec_"
)

// HashToken returns the SHA-256 of a secret token. Tokens are stored and
// looked up by this hash only, so comparing them never depends on the
// secret's bytes in a way a timing attack could measure.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// newToken returns prefix followed by 32 random bytes in URL-safe base64.
func newToken(prefix string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("read random bytes: " + err.Error())
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// tokenDisplayPrefix returns the short, non-secret start of a token shown to
// its owner: the type prefix and six characters.
func tokenDisplayPrefix(token string) string {
	n := len(APIKeyPrefix) + 6
	if len(token) < n {
		return token
	}
	return token[:n]
}

// newWebhookSecret returns a Standard Webhooks secret: "whsec_" and the
// standard base64 of 32 random bytes.
func newWebhookSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("read random bytes: " + err.Error())
	}
	return WebhookSecretPrefix + base64.StdEncoding.EncodeToString(b)
}
