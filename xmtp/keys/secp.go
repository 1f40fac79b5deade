package keys

import (
	"crypto/sha256"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"golang.org/x/crypto/sha3"
)

// Keccak256 returns the legacy Keccak-256 digest of the concatenated parts,
// the hash Ethereum and XMTP use for addresses and personal signatures.
func Keccak256(parts ...[]byte) []byte {
	h := sha3.NewLegacyKeccak256()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// Sha256 returns the SHA-256 digest of the concatenated parts.
func Sha256(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// CompactSignature is an ECDSA signature as XMTP stores it: R || S (64
// bytes) and a recovery id of 0 or 1.
type CompactSignature struct {
	Bytes    []byte
	Recovery uint32
}

// signDigest signs a 32-byte digest and returns the compact form.
func signDigest(key *secp256k1.PrivateKey, digest []byte) CompactSignature {
	sig := ecdsa.SignCompact(key, digest, false) // [27+recid] || R || S
	return CompactSignature{Bytes: sig[1:65], Recovery: uint32(sig[0] - 27)}
}

// recoverDigest returns the public key that produced sig over digest.
func recoverDigest(sig CompactSignature, digest []byte) (*secp256k1.PublicKey, error) {
	if len(sig.Bytes) != 64 || sig.Recovery > 3 {
		return nil, ErrInvalidSignature
	}
	buf := make([]byte, 65)
	buf[0] = byte(27 + sig.Recovery)
	copy(buf[1:], sig.Bytes)
	pub, _, err := ecdsa.RecoverCompact(buf, digest)
	if err != nil {
		return nil, fmt.Errorf("recover key: %w", ErrInvalidSignature)
	}
	return pub, nil
}

// verifyDigest checks sig over digest under pub, ignoring the recovery id.
func verifyDigest(pub *secp256k1.PublicKey, sig CompactSignature, digest []byte) bool {
	if len(sig.Bytes) != 64 {
		return false
	}
	var r, s secp256k1.ModNScalar
	if overflow := r.SetByteSlice(sig.Bytes[:32]); overflow || r.IsZero() {
		return false
	}
	if overflow := s.SetByteSlice(sig.Bytes[32:]); overflow || s.IsZero() {
		return false
	}
	if t := tables.lookup(pub); t != nil {
		return verifyWithTable(t, &r, &s, digest) // verifytable.go
	}
	return ecdsa.NewSignature(&r, &s).Verify(digest, pub)
}

// parsePublicKey parses a 65-byte uncompressed secp256k1 point.
func parsePublicKey(b []byte) (*secp256k1.PublicKey, error) {
	if len(b) != 65 || b[0] != 0x04 {
		return nil, ErrInvalidKey
	}
	pub, err := secp256k1.ParsePubKey(b)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return pub, nil
}

// parsePrivateKey parses a 32-byte secp256k1 scalar, rejecting zero and
// values not below the group order.
func parsePrivateKey(b []byte) (*secp256k1.PrivateKey, error) {
	if len(b) != 32 {
		return nil, ErrInvalidKey
	}
	var k secp256k1.ModNScalar
	if overflow := k.SetByteSlice(b); overflow || k.IsZero() {
		return nil, ErrInvalidKey
	}
	return secp256k1.NewPrivateKey(&k), nil
}

// ECDH returns the shared point priv·pub in uncompressed form (65 bytes), the
// unhashed secret XMTP feeds into its 3DH.
func ECDH(priv *secp256k1.PrivateKey, pub *secp256k1.PublicKey) []byte {
	var point, result secp256k1.JacobianPoint
	pub.AsJacobian(&point)
	secp256k1.ScalarMultNonConst(&priv.Key, &point, &result)
	result.ToAffine()
	return secp256k1.NewPublicKey(&result.X, &result.Y).SerializeUncompressed()
}
