// Package keys holds XMTP V2 identities: the wallet key, the identity key it
// signs and the pre-keys the identity key signs, with their public bundles,
// contact publication and auth tokens.
package keys

import "errors"

// ErrInvalidKey reports key bytes that are not a valid secp256k1 key.
var ErrInvalidKey = errors.New("invalid secp256k1 key")

// ErrInvalidSignature reports a signature that is malformed or does not
// verify under the key it claims.
var ErrInvalidSignature = errors.New("invalid signature")

// ErrMalformedBundle reports a key bundle that is missing parts or cannot be
// decoded.
var ErrMalformedBundle = errors.New("malformed key bundle")

// ErrAddressMismatch reports a bundle or token whose recovered wallet address
// is not the address it was expected to belong to.
var ErrAddressMismatch = errors.New("wallet address mismatch")

// ErrNoContact reports that no valid contact bundle was found on a contact
// topic.
var ErrNoContact = errors.New("no valid contact bundle")

// ErrTokenExpired reports an auth token older than its lifetime or too far in
// the future.
var ErrTokenExpired = errors.New("auth token expired or not yet valid")

// ErrMalformedToken reports an auth token that cannot be decoded.
var ErrMalformedToken = errors.New("malformed auth token")
