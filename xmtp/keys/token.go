package keys

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/protobuf/proto"
)

// TokenLifetime is how long an auth token is valid.
const TokenLifetime = time.Hour

// TokenFutureSkew is how far in the future a token's creation time may be.
const TokenFutureSkew = time.Minute

// AuthToken returns a base64 V2 auth token for "Authorization: Bearer". The
// identity key signs keccak256 of the encoded AuthData.
func (b *PrivateKeyBundle) AuthToken(now time.Time) (string, error) {
	data, err := proto.Marshal(&messagev1.AuthData{WalletAddr: b.address, CreatedNs: uint64(now.UnixNano())})
	if err != nil {
		return "", fmt.Errorf("encode auth data: %w", err)
	}
	id, err := SignedToLegacy(b.identity.public)
	if err != nil {
		return "", fmt.Errorf("build auth token: %w", err)
	}
	tok, err := proto.Marshal(&messagev1.Token{
		IdentityKey:       id,
		AuthDataBytes:     data,
		AuthDataSignature: ecdsaSignature(signDigest(b.identity.key, Keccak256(data))),
	})
	if err != nil {
		return "", fmt.Errorf("encode auth token: %w", err)
	}
	return base64.StdEncoding.EncodeToString(tok), nil
}

// VerifyAuthToken decodes a base64 token, recovers the wallet that signed
// its identity key, checks the identity key's signature over the auth data,
// that the auth data names that wallet, and that the token is at most an
// hour old (allowing a minute of future skew). It returns the wallet
// address.
func VerifyAuthToken(token string, now time.Time) (string, error) {
	addr, _, err := VerifyAuthTokenExpiry(token, now)
	return addr, err
}

// VerifyAuthTokenExpiry is VerifyAuthToken that also returns when the
// token stops being valid, so that a verifier may remember it until then.
func VerifyAuthTokenExpiry(token string, now time.Time) (string, time.Time, error) {
	addr, created, err := verifyAuthToken(token, now)
	if err != nil {
		return "", time.Time{}, err
	}
	return addr, created.Add(TokenLifetime), nil
}

func verifyAuthToken(token string, now time.Time) (string, time.Time, error) {
	var zero time.Time
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
	if err != nil {
		if raw, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(token), "=")); err != nil {
			return "", zero, fmt.Errorf("decode auth token: %w", ErrMalformedToken)
		}
	}
	var tok messagev1.Token
	if err := proto.Unmarshal(raw, &tok); err != nil {
		return "", zero, fmt.Errorf("decode auth token: %w", ErrMalformedToken)
	}
	if tok.IdentityKey == nil || tok.AuthDataSignature == nil {
		return "", zero, fmt.Errorf("decode auth token: %w", ErrMalformedToken)
	}
	id, err := legacyToSigned(tok.IdentityKey, true)
	if err != nil {
		return "", zero, fmt.Errorf("verify auth token: %w", err)
	}
	addr, pub, err := identityAddress(id)
	if err != nil {
		return "", zero, fmt.Errorf("verify auth token: identity key: %w", err)
	}
	if err := VerifyWithKey(pub, tok.AuthDataSignature, Keccak256(tok.AuthDataBytes)); err != nil {
		return "", zero, fmt.Errorf("verify auth token: auth data: %w", err)
	}
	var data messagev1.AuthData
	if err := proto.Unmarshal(tok.AuthDataBytes, &data); err != nil {
		return "", zero, fmt.Errorf("decode auth data: %w", ErrMalformedToken)
	}
	if ChecksumAddress(data.WalletAddr) != addr {
		return "", zero, fmt.Errorf("verify auth token: %w", ErrAddressMismatch)
	}
	created := time.Unix(0, int64(data.CreatedNs))
	if data.CreatedNs > 1<<63-1 || now.Sub(created) > TokenLifetime || created.Sub(now) > TokenFutureSkew {
		return "", zero, fmt.Errorf("verify auth token: %w", ErrTokenExpired)
	}
	return addr, created, nil
}

// Authorizer hands out an auth token for one bundle, reusing it until it is
// within a renewal margin of expiry. It is safe for concurrent use.
type Authorizer struct {
	bundle *PrivateKeyBundle
	now    func() time.Time
	margin time.Duration

	mu      sync.Mutex
	token   string
	expires time.Time
}

// NewAuthorizer returns an Authorizer for b that renews tokens ten minutes
// before they expire.
func NewAuthorizer(b *PrivateKeyBundle) *Authorizer {
	return &Authorizer{bundle: b, now: time.Now, margin: 10 * time.Minute}
}

// AuthToken returns a valid token, creating a new one when the cached token
// is missing or near expiry.
func (a *Authorizer) AuthToken(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.token != "" && now.Add(a.margin).Before(a.expires) {
		return a.token, nil
	}
	tok, err := a.bundle.AuthToken(now)
	if err != nil {
		return "", err
	}
	a.token, a.expires = tok, now.Add(TokenLifetime)
	return tok, nil
}
