package keys

import (
	"errors"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/proto"
)

// ErrUnknownPreKey reports a pre-key that this bundle does not hold.
var ErrUnknownPreKey = errors.New("unknown pre-key")

// PeerBundle is a verified public key bundle: its identity key is signed by
// the wallet at Address and its pre-key is signed by the identity key.
type PeerBundle struct {
	Address  string
	Identity *secp256k1.PublicKey
	PreKey   *secp256k1.PublicKey
	// Signed is the bundle as received.
	Signed *mc.SignedPublicKeyBundle
}

// PreKeyBytes returns the uncompressed public bytes of the peer's pre-key.
func (p *PeerBundle) PreKeyBytes() []byte { return p.PreKey.SerializeUncompressed() }

// IdentityBytes returns the uncompressed public bytes of the peer's identity
// key.
func (p *PeerBundle) IdentityBytes() []byte { return p.Identity.SerializeUncompressed() }

// VerifyBundle checks a V2 public bundle: it recovers the wallet address from
// the identity key's wallet signature and checks the pre-key's signature
// against the identity key.
func VerifyBundle(b *mc.SignedPublicKeyBundle) (*PeerBundle, error) {
	if b == nil || b.IdentityKey == nil || b.PreKey == nil {
		return nil, fmt.Errorf("verify bundle: %w", ErrMalformedBundle)
	}
	addr, id, err := identityAddress(b.IdentityKey)
	if err != nil {
		return nil, fmt.Errorf("verify bundle: identity key: %w", err)
	}
	pre, err := verifyPreKey(id, b.PreKey)
	if err != nil {
		return nil, fmt.Errorf("verify bundle: pre-key: %w", err)
	}
	return &PeerBundle{Address: addr, Identity: id, PreKey: pre, Signed: b}, nil
}

// PublicKeyOf returns the public key inside a signed key's bytes without
// checking its signature.
func PublicKeyOf(k *mc.SignedPublicKey) (*secp256k1.PublicKey, error) {
	pub, _, err := parseKeyBytes(k.GetKeyBytes())
	return pub, err
}

// parseKeyBytes decodes an encoded UnsignedPublicKey.
func parseKeyBytes(keyBytes []byte) (*secp256k1.PublicKey, uint64, error) {
	var u mc.UnsignedPublicKey
	if err := proto.Unmarshal(keyBytes, &u); err != nil {
		return nil, 0, fmt.Errorf("decode key bytes: %w", ErrMalformedBundle)
	}
	raw := u.GetSecp256K1Uncompressed()
	if raw == nil {
		return nil, 0, fmt.Errorf("decode key bytes: %w", ErrInvalidKey)
	}
	pub, err := parsePublicKey(raw.Bytes)
	if err != nil {
		return nil, 0, err
	}
	return pub, u.CreatedNs, nil
}

// identityAddress recovers the wallet address that signed an identity key.
func identityAddress(k *mc.SignedPublicKey) (string, *secp256k1.PublicKey, error) {
	pub, _, err := parseKeyBytes(k.KeyBytes)
	if err != nil {
		return "", nil, err
	}
	ws := k.GetSignature().GetWalletEcdsaCompact()
	if ws == nil {
		return "", nil, fmt.Errorf("no wallet signature: %w", ErrInvalidSignature)
	}
	signer, err := recoverDigest(CompactSignature{Bytes: ws.Bytes, Recovery: ws.Recovery}, personalDigest(identityText(k.KeyBytes)))
	if err != nil {
		return "", nil, err
	}
	return PublicKeyAddress(signer), pub, nil
}

// verifyPreKey checks a pre-key's signature by the identity key.
func verifyPreKey(identity *secp256k1.PublicKey, k *mc.SignedPublicKey) (*secp256k1.PublicKey, error) {
	pub, _, err := parseKeyBytes(k.KeyBytes)
	if err != nil {
		return nil, err
	}
	sig := k.GetSignature().GetEcdsaCompact()
	if sig == nil || !verifyDigest(identity, CompactSignature{Bytes: sig.Bytes, Recovery: sig.Recovery}, Sha256(k.KeyBytes)) {
		return nil, ErrInvalidSignature
	}
	return pub, nil
}

// VerifyWithKey checks an ecdsaCompact signature over a 32-byte digest.
func VerifyWithKey(pub *secp256k1.PublicKey, sig *mc.Signature, digest []byte) error {
	c := sig.GetEcdsaCompact()
	if c == nil || !verifyDigest(pub, CompactSignature{Bytes: c.Bytes, Recovery: c.Recovery}, digest) {
		return ErrInvalidSignature
	}
	return nil
}

// legacyThreshold separates creation times in milliseconds (below) from
// times in nanoseconds (at or above) in UnsignedPublicKey.createdNs, as
// xmtp-js does.
const legacyThreshold = 1_000_000_000_000_000_000

// SignedToLegacy converts a V2 signed public key to the legacy V1 form: the
// timestamp in milliseconds and the signature as ecdsaCompact.
func SignedToLegacy(k *mc.SignedPublicKey) (*mc.PublicKey, error) {
	pub, createdNs, err := parseKeyBytes(k.GetKeyBytes())
	if err != nil {
		return nil, err
	}
	if createdNs >= legacyThreshold {
		return nil, fmt.Errorf("convert key to legacy: key is not in legacy form: %w", ErrMalformedBundle)
	}
	var sig *mc.Signature
	switch s := k.GetSignature().GetUnion().(type) {
	case *mc.Signature_WalletEcdsaCompact:
		sig = ecdsaSignature(CompactSignature{Bytes: s.WalletEcdsaCompact.GetBytes(), Recovery: s.WalletEcdsaCompact.GetRecovery()})
	case *mc.Signature_EcdsaCompact:
		sig = ecdsaSignature(CompactSignature{Bytes: s.EcdsaCompact.GetBytes(), Recovery: s.EcdsaCompact.GetRecovery()})
	default:
		return nil, fmt.Errorf("convert key to legacy: %w", ErrInvalidSignature)
	}
	return &mc.PublicKey{
		Timestamp: createdNs,
		Signature: sig,
		Union:     &mc.PublicKey_Secp256K1Uncompressed_{Secp256K1Uncompressed: &mc.PublicKey_Secp256K1Uncompressed{Bytes: pub.SerializeUncompressed()}},
	}, nil
}

// legacyToSigned converts a legacy V1 public key to the V2 form. byWallet
// moves the signature into walletEcdsaCompact, as for identity keys.
func legacyToSigned(k *mc.PublicKey, byWallet bool) (*mc.SignedPublicKey, error) {
	raw := k.GetSecp256K1Uncompressed()
	if raw == nil {
		return nil, fmt.Errorf("convert legacy key: %w", ErrInvalidKey)
	}
	pub, err := parsePublicKey(raw.Bytes)
	if err != nil {
		return nil, fmt.Errorf("convert legacy key: %w", err)
	}
	c := k.GetSignature().GetEcdsaCompact()
	if c == nil {
		return nil, fmt.Errorf("convert legacy key: %w", ErrInvalidSignature)
	}
	var sig *mc.Signature
	if byWallet {
		sig = &mc.Signature{Union: &mc.Signature_WalletEcdsaCompact{WalletEcdsaCompact: &mc.Signature_WalletECDSACompact{Bytes: c.Bytes, Recovery: c.Recovery}}}
	} else {
		sig = ecdsaSignature(CompactSignature{Bytes: c.Bytes, Recovery: c.Recovery})
	}
	return &mc.SignedPublicKey{KeyBytes: unsignedKeyBytes(pub, k.Timestamp), Signature: sig}, nil
}

// LegacyBundleToSigned converts a V1 public bundle to the V2 form.
func LegacyBundleToSigned(b *mc.PublicKeyBundle) (*mc.SignedPublicKeyBundle, error) {
	if b == nil || b.IdentityKey == nil || b.PreKey == nil {
		return nil, fmt.Errorf("convert legacy bundle: %w", ErrMalformedBundle)
	}
	id, err := legacyToSigned(b.IdentityKey, true)
	if err != nil {
		return nil, err
	}
	pre, err := legacyToSigned(b.PreKey, false)
	if err != nil {
		return nil, err
	}
	return &mc.SignedPublicKeyBundle{IdentityKey: id, PreKey: pre}, nil
}
