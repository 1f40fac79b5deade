package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix starts every Standard Webhooks secret.
const secretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may be from the
// receiver's clock before Verify refuses the request (replay protection).
const DefaultTolerance = 5 * time.Minute

// maxSignatures bounds the signatures Verify reads from one header.
const maxSignatures = 16

var (
	// ErrInvalidSecret means a signing secret is not "whsec_" followed by
	// standard base64 of at least 16 bytes.
	ErrInvalidSecret = errors.New("invalid webhook secret")
	// ErrMissingHeader means a request lacks one of the webhook-id,
	// webhook-timestamp and webhook-signature headers.
	ErrMissingHeader = errors.New("missing webhook header")
	// ErrInvalidTimestamp means webhook-timestamp is not unix seconds.
	ErrInvalidTimestamp = errors.New("invalid webhook timestamp")
	// ErrTimestampOutOfRange means webhook-timestamp is too far from now.
	ErrTimestampOutOfRange = errors.New("webhook timestamp out of tolerance")
	// ErrInvalidSignatureHeader means webhook-signature is not a list of
	// space-separated "version,base64" signatures.
	ErrInvalidSignatureHeader = errors.New("invalid webhook signature header")
	// ErrSignatureMismatch means no v1 signature in the header matches the
	// body under the secret.
	ErrSignatureMismatch = errors.New("webhook signature does not match")
)

// Secret is a decoded signing secret. Its text forms never show the key,
// so it is safe to pass to a logger by mistake.
type Secret struct {
	key []byte
}

// ParseSecret decodes a "whsec_<base64>" secret.
func ParseSecret(s string) (Secret, error) {
	raw, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return Secret{}, fmt.Errorf("parse secret: %w: no %s prefix", ErrInvalidSecret, secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return Secret{}, fmt.Errorf("parse secret: %w: not base64", ErrInvalidSecret)
	}
	if len(key) < 16 || len(key) > 128 {
		return Secret{}, fmt.Errorf("parse secret: %w: key of %d bytes, want 16 to 128", ErrInvalidSecret, len(key))
	}
	return Secret{key: key}, nil
}

// ParseSecrets decodes a bridge's secrets in order (the current one
// first, as persistence.Store.WebhookSecrets returns them).
func ParseSecrets(secrets ...string) ([]Secret, error) {
	out := make([]Secret, 0, len(secrets))
	for i, s := range secrets {
		sec, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("parse secret %d: %w", i, err)
		}
		out = append(out, sec)
	}
	return out, nil
}

// String hides the key.
func (s Secret) String() string { return secretPrefix + "[redacted]" }

// GoString hides the key.
func (s Secret) GoString() string { return s.String() }

// Valid reports whether s holds a key.
func (s Secret) Valid() bool { return len(s.key) > 0 }

// mac returns the HMAC-SHA256 of "id.timestamp.body" under the secret.
func (s Secret) mac(id string, ts int64, body []byte) []byte {
	var sum [sha256.Size]byte
	return s.appendMAC(sum[:0], id, ts, body)
}

// appendMAC appends the HMAC-SHA256 of "id.timestamp.body" to dst.
func (s Secret) appendMAC(dst []byte, id string, ts int64, body []byte) []byte {
	mac := hmac.New(sha256.New, s.key)
	var pre [96]byte
	p := append(pre[:0], id...)
	p = append(p, '.')
	p = strconv.AppendInt(p, ts, 10)
	p = append(p, '.')
	mac.Write(p)
	mac.Write(body)
	return mac.Sum(dst)
}

// Sign returns the webhook-signature header value for a message id, unix
// timestamp and body: one "v1,<base64 HMAC-SHA256>" per secret, space
// separated. Sign with the current secret first and then with rotated-out
// secrets still in their grace period.
func Sign(id string, ts int64, body []byte, secrets ...Secret) string {
	const entry = len("v1,") + (sha256.Size+2)/3*4 // one signature, base64 with padding
	var small [2 * (entry + 1)]byte
	b := small[:0]
	if n := len(secrets) * (entry + 1); n > len(small) {
		b = make([]byte, 0, n)
	}
	for _, s := range secrets {
		if !s.Valid() {
			continue
		}
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, "v1,"...)
		var sum [sha256.Size]byte
		b = base64.StdEncoding.AppendEncode(b, s.appendMAC(sum[:0], id, ts, body))
	}
	return string(b)
}

// ParseSignatureHeader returns the v1 signatures of a webhook-signature
// header value. Signatures of other versions are skipped; a malformed
// entry is an error.
func ParseSignatureHeader(v string) ([][]byte, error) {
	var out [][]byte
	n := 0
	for _, part := range strings.Fields(v) {
		n++
		if n > maxSignatures {
			return nil, fmt.Errorf("parse signature header: %w: more than %d signatures", ErrInvalidSignatureHeader, maxSignatures)
		}
		version, sig, ok := strings.Cut(part, ",")
		if !ok || version == "" || sig == "" {
			return nil, fmt.Errorf("parse signature header: %w: entry without version", ErrInvalidSignatureHeader)
		}
		if version != "v1" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("parse signature header: %w: v1 signature is not base64 of 32 bytes", ErrInvalidSignatureHeader)
		}
		out = append(out, raw)
	}
	if n == 0 {
		return nil, fmt.Errorf("parse signature header: %w: empty", ErrInvalidSignatureHeader)
	}
	return out, nil
}

// Verify checks a webhook request as a receiver does: the three webhook
// headers are present, the timestamp is within DefaultTolerance of now,
// and one of the v1 signatures is the HMAC of "id.timestamp.body" under
// secret ("whsec_…").
func Verify(secret string, h http.Header, body []byte, now time.Time) error {
	s, err := ParseSecret(secret)
	if err != nil {
		return fmt.Errorf("verify webhook: %w", err)
	}
	id, tsText, sigText := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigText == "" {
		return fmt.Errorf("verify webhook: %w", ErrMissingHeader)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("verify webhook: %w", ErrInvalidTimestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > DefaultTolerance || d < -DefaultTolerance {
		return fmt.Errorf("verify webhook: %w", ErrTimestampOutOfRange)
	}
	sigs, err := ParseSignatureHeader(sigText)
	if err != nil {
		return fmt.Errorf("verify webhook: %w", err)
	}
	want := s.mac(id, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return fmt.Errorf("verify webhook: %w", ErrSignatureMismatch)
}
