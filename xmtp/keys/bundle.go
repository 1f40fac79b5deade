package keys

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/proto"
)

// signedKey is one private key of a bundle with its signed public half.
type signedKey struct {
	key       *secp256k1.PrivateKey
	createdNs uint64
	public    *mc.SignedPublicKey
}

// PrivateKeyBundle is an XMTP identity the system holds: wallet key,
// identity key and pre-keys.
//
// The wallet key is only needed to create the identity; a bundle decoded
// with UnmarshalPrivateKeyBundle has no wallet key and works the same,
// because the wallet address is recovered from the identity key's wallet
// signature.
type PrivateKeyBundle struct {
	wallet   *WalletKey
	identity signedKey
	preKeys  []signedKey // preKeys[0] is the current one, as in xmtp-js
	address  string
	// sealing is the public bundle SenderBundle shares, for the pre-key it
	// was made for.
	sealing atomic.Pointer[sealingBundle]
}

type sealingBundle struct {
	preKey  *mc.SignedPublicKey
	bundle  *mc.SignedPublicKeyBundle
	encoded []byte // proto.Marshal(bundle)
}

// identityText is the text the wallet signs to create an identity key.
func identityText(keyBytes []byte) string {
	return "XMTP : Create Identity\n" + hex.EncodeToString(keyBytes) + "\n\nFor more info: https://xmtp.org/signatures/"
}

// Generate creates a new wallet, an identity key signed by it and one
// pre-key signed by the identity key.
func Generate() (*PrivateKeyBundle, error) {
	w, err := GenerateWallet()
	if err != nil {
		return nil, err
	}
	return NewBundle(w, time.Now())
}

// NewBundle creates an identity key and one pre-key for an existing wallet,
// stamped with now (millisecond precision, as xmtp-js).
//
// Like xmtp-js, the keys are made in the legacy form: the signed key bytes
// carry the creation time in milliseconds in the createdNs field (values
// below 10^18 mean milliseconds), so the V1 and V2 bundles share one
// signature.
func NewBundle(w *WalletKey, now time.Time) (*PrivateKeyBundle, error) {
	ms := uint64(now.UnixMilli())
	createdNs := ms * 1_000_000
	idKey, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return nil, fmt.Errorf("generate identity key: %w", err)
	}
	idBytes := unsignedKeyBytes(idKey.PubKey(), ms)
	walletSig := w.PersonalSign(identityText(idBytes))
	identity := signedKey{key: idKey, createdNs: createdNs, public: &mc.SignedPublicKey{
		KeyBytes: idBytes,
		Signature: &mc.Signature{Union: &mc.Signature_WalletEcdsaCompact{
			WalletEcdsaCompact: &mc.Signature_WalletECDSACompact{Bytes: walletSig[:64], Recovery: uint32(walletSig[64] - 27)},
		}},
	}}
	b := &PrivateKeyBundle{wallet: w, identity: identity, address: w.Address()}
	if _, err := b.AddPreKey(now); err != nil {
		return nil, err
	}
	return b, nil
}

// AddPreKey creates a new pre-key signed by the identity key and makes it the
// current one. Older pre-keys are kept so old invitations still open. It
// must not run concurrently with other uses of the bundle; every other
// method only reads and is safe for concurrent use.
func (b *PrivateKeyBundle) AddPreKey(now time.Time) (*mc.SignedPublicKey, error) {
	ms := uint64(now.UnixMilli())
	createdNs := ms * 1_000_000
	k, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return nil, fmt.Errorf("generate pre-key: %w", err)
	}
	kb := unsignedKeyBytes(k.PubKey(), ms)
	sig := signDigest(b.identity.key, Sha256(kb))
	pub := &mc.SignedPublicKey{KeyBytes: kb, Signature: ecdsaSignature(sig)}
	b.preKeys = append([]signedKey{{key: k, createdNs: createdNs, public: pub}}, b.preKeys...)
	return pub, nil
}

func ecdsaSignature(sig CompactSignature) *mc.Signature {
	return &mc.Signature{Union: &mc.Signature_EcdsaCompact{
		EcdsaCompact: &mc.Signature_ECDSACompact{Bytes: sig.Bytes, Recovery: sig.Recovery},
	}}
}

// unsignedKeyBytes encodes an UnsignedPublicKey. For legacy keys created is
// the creation time in milliseconds, which makes the bytes identical to the
// legacy PublicKey{timestamp, secp256k1Uncompressed} that V1 signs.
func unsignedKeyBytes(pub *secp256k1.PublicKey, created uint64) []byte {
	b, err := proto.Marshal(&mc.UnsignedPublicKey{
		CreatedNs: created,
		Union: &mc.UnsignedPublicKey_Secp256K1Uncompressed_{
			Secp256K1Uncompressed: &mc.UnsignedPublicKey_Secp256K1Uncompressed{Bytes: pub.SerializeUncompressed()},
		},
	})
	if err != nil {
		panic("encode unsigned public key: " + err.Error()) // cannot happen for this message
	}
	return b
}

// Address returns the EIP-55 wallet address of the identity.
func (b *PrivateKeyBundle) Address() string { return b.address }

// Wallet returns the wallet key, or nil if the bundle was decoded without
// one.
func (b *PrivateKeyBundle) Wallet() *WalletKey { return b.wallet }

// String hides the secrets so a bundle never prints by accident.
func (b *PrivateKeyBundle) String() string { return "PrivateKeyBundle(" + b.address + ")" }

// PublicBundle returns the V2 public bundle with the current pre-key.
func (b *PrivateKeyBundle) PublicBundle() *mc.SignedPublicKeyBundle {
	return &mc.SignedPublicKeyBundle{
		IdentityKey: proto.Clone(b.identity.public).(*mc.SignedPublicKey),
		PreKey:      proto.Clone(b.preKeys[0].public).(*mc.SignedPublicKey),
	}
}

// SenderBundle is PublicBundle shared rather than copied, for a sealed
// message to name its sender: the caller must only read it (marshalling
// it is reading).
func (b *PrivateKeyBundle) SenderBundle() *mc.SignedPublicKeyBundle { return b.sealingBundle().bundle }

// SenderBundleBytes is the encoding of SenderBundle, for a sealed message
// to carry without encoding it again; the caller must only read it.
func (b *PrivateKeyBundle) SenderBundleBytes() []byte { return b.sealingBundle().encoded }

func (b *PrivateKeyBundle) sealingBundle() *sealingBundle {
	if c := b.sealing.Load(); c != nil && c.preKey == b.preKeys[0].public {
		return c
	}
	c := &sealingBundle{preKey: b.preKeys[0].public, bundle: b.PublicBundle()}
	// A bundle of two keys always encodes.
	c.encoded, _ = proto.Marshal(c.bundle)
	b.sealing.Store(c)
	return c
}

// LegacyPublicBundle returns the V1 public bundle xmtp-js also publishes.
func (b *PrivateKeyBundle) LegacyPublicBundle() *mc.PublicKeyBundle {
	id, _ := SignedToLegacy(b.identity.public)
	pre, _ := SignedToLegacy(b.preKeys[0].public)
	return &mc.PublicKeyBundle{IdentityKey: id, PreKey: pre}
}

// CurrentPreKeyPublic returns the uncompressed public bytes of the current
// pre-key.
func (b *PrivateKeyBundle) CurrentPreKeyPublic() []byte {
	return b.preKeys[0].key.PubKey().SerializeUncompressed()
}

// IdentityPublic returns the uncompressed public bytes of the identity key.
func (b *PrivateKeyBundle) IdentityPublic() []byte {
	return b.identity.key.PubKey().SerializeUncompressed()
}

// findPreKey returns my pre-key whose public bytes are pub.
func (b *PrivateKeyBundle) findPreKey(pub []byte) *secp256k1.PrivateKey {
	for _, k := range b.preKeys {
		if bytes.Equal(k.key.PubKey().SerializeUncompressed(), pub) {
			return k.key
		}
	}
	return nil
}

// SignWithPreKey signs a 32-byte digest with the current pre-key, as
// MessageV2 senders do.
func (b *PrivateKeyBundle) SignWithPreKey(digest []byte) *mc.Signature {
	return ecdsaSignature(signDigest(b.preKeys[0].key, digest))
}

// SharedSecret computes the 195-byte 3DH secret with a verified peer bundle,
// using my pre-key whose public bytes are myPreKey. isRecipient swaps the
// order of the first two terms, as the XMTP V2 protocol defines.
func (b *PrivateKeyBundle) SharedSecret(peer *PeerBundle, myPreKey []byte, isRecipient bool) ([]byte, error) {
	sender, recipient, err := b.SharedSecrets(peer, myPreKey)
	if isRecipient {
		return recipient, err
	}
	return sender, err
}

// SharedSecrets computes the 3DH secret in both orders at the cost of one:
// as the sender (isRecipient false) and as the recipient.
func (b *PrivateKeyBundle) SharedSecrets(peer *PeerBundle, myPreKey []byte) (sender, recipient []byte, err error) {
	pre := b.findPreKey(myPreKey)
	if pre == nil {
		return nil, nil, ErrUnknownPreKey
	}
	idPre := ECDH(b.identity.key, peer.PreKey) // dh1 as sender, dh2 as recipient
	preID := ECDH(pre, peer.Identity)          // dh2 as sender, dh1 as recipient
	prePre := ECDH(pre, peer.PreKey)
	sender = make([]byte, 0, 195)
	sender = append(append(append(sender, idPre...), preID...), prePre...)
	recipient = make([]byte, 0, 195)
	recipient = append(append(append(recipient, preID...), idPre...), prePre...)
	return sender, recipient, nil
}

// Marshal encodes the bundle as a message_contents.PrivateKeyBundle (v2).
// The wallet key is not part of that format.
func (b *PrivateKeyBundle) Marshal() ([]byte, error) {
	v2 := &mc.PrivateKeyBundleV2{IdentityKey: b.identity.encode()}
	for _, k := range b.preKeys {
		v2.PreKeys = append(v2.PreKeys, k.encode())
	}
	out, err := proto.Marshal(&mc.PrivateKeyBundle{Version: &mc.PrivateKeyBundle_V2{V2: v2}})
	if err != nil {
		return nil, fmt.Errorf("encode private key bundle: %w", err)
	}
	return out, nil
}

func (k signedKey) encode() *mc.SignedPrivateKey {
	return &mc.SignedPrivateKey{
		CreatedNs: k.createdNs,
		Union:     &mc.SignedPrivateKey_Secp256K1_{Secp256K1: &mc.SignedPrivateKey_Secp256K1{Bytes: k.key.Serialize()}},
		PublicKey: k.public,
	}
}

// UnmarshalPrivateKeyBundle decodes a message_contents.PrivateKeyBundle (v2,
// or v1 as older xmtp-js stores it) and checks that every public key matches
// its secret and carries a valid signature.
func UnmarshalPrivateKeyBundle(data []byte) (*PrivateKeyBundle, error) {
	return unmarshalBundle(data, "")
}

// UnmarshalSealedPrivateKeyBundle decodes a bundle this system made and
// kept sealed, under authenticated encryption bound to address, the
// bundle's own: a bundle that opened was checked when it was made. It
// takes address (checksummed) for the one the wallet signature of the
// identity key names, and does not check that signature, the pre-keys'
// signatures, nor that each public key matches its secret: the checks
// cost four scalar multiplications per bundle, for every activation of
// an identity.
func UnmarshalSealedPrivateKeyBundle(data []byte, address string) (*PrivateKeyBundle, error) {
	if address == "" {
		return nil, fmt.Errorf("decode private key bundle: no address: %w", ErrMalformedBundle)
	}
	return unmarshalBundle(data, ChecksumAddress(address))
}

// unmarshalBundle decodes a bundle; with a trusted address (non-empty) it
// does not check signatures, nor the public keys against their secrets.
func unmarshalBundle(data []byte, trusted string) (*PrivateKeyBundle, error) {
	var pb mc.PrivateKeyBundle
	if err := proto.Unmarshal(data, &pb); err != nil {
		return nil, fmt.Errorf("decode private key bundle: %w", ErrMalformedBundle)
	}
	var idKey *mc.SignedPrivateKey
	var preKeys []*mc.SignedPrivateKey
	switch v := pb.Version.(type) {
	case *mc.PrivateKeyBundle_V2:
		if v.V2 == nil {
			return nil, fmt.Errorf("decode private key bundle: %w", ErrMalformedBundle)
		}
		idKey, preKeys = v.V2.IdentityKey, v.V2.PreKeys
	case *mc.PrivateKeyBundle_V1:
		if v.V1 == nil {
			return nil, fmt.Errorf("decode private key bundle: %w", ErrMalformedBundle)
		}
		var err error
		if idKey, err = legacyPrivateToSigned(v.V1.IdentityKey, true); err != nil {
			return nil, err
		}
		for _, k := range v.V1.PreKeys {
			sk, err := legacyPrivateToSigned(k, false)
			if err != nil {
				return nil, err
			}
			preKeys = append(preKeys, sk)
		}
	default:
		return nil, fmt.Errorf("decode private key bundle: unknown version: %w", ErrMalformedBundle)
	}
	check := trusted == ""
	identity, err := decodeSignedPrivate(idKey, check)
	if err != nil {
		return nil, fmt.Errorf("decode identity key: %w", err)
	}
	addr := trusted
	if check {
		if addr, _, err = identityAddress(identity.public); err != nil {
			return nil, fmt.Errorf("decode identity key: %w", err)
		}
	}
	b := &PrivateKeyBundle{identity: identity, address: addr}
	if len(preKeys) == 0 {
		return nil, fmt.Errorf("decode private key bundle: no pre-keys: %w", ErrMalformedBundle)
	}
	for _, pk := range preKeys {
		k, err := decodeSignedPrivate(pk, check)
		if err != nil {
			return nil, fmt.Errorf("decode pre-key: %w", err)
		}
		if check {
			if _, err := verifyPreKey(identity.key.PubKey(), k.public); err != nil {
				return nil, fmt.Errorf("decode pre-key: %w", err)
			}
		}
		b.preKeys = append(b.preKeys, k)
	}
	return b, nil
}

// decodeSignedPrivate decodes a signed private key; with check, it checks
// that the public key is the secret's.
func decodeSignedPrivate(k *mc.SignedPrivateKey, check bool) (signedKey, error) {
	if k == nil || k.PublicKey == nil || k.GetSecp256K1() == nil {
		return signedKey{}, ErrMalformedBundle
	}
	priv, err := parsePrivateKey(k.GetSecp256K1().Bytes)
	if err != nil {
		return signedKey{}, err
	}
	if !check {
		return signedKey{key: priv, createdNs: k.CreatedNs, public: k.PublicKey}, nil
	}
	pub, _, err := parseKeyBytes(k.PublicKey.KeyBytes)
	if err != nil {
		return signedKey{}, err
	}
	if !pub.IsEqual(priv.PubKey()) {
		return signedKey{}, fmt.Errorf("public key does not match secret: %w", ErrInvalidKey)
	}
	return signedKey{key: priv, createdNs: k.CreatedNs, public: k.PublicKey}, nil
}

func legacyPrivateToSigned(k *mc.PrivateKey, byWallet bool) (*mc.SignedPrivateKey, error) {
	if k == nil || k.GetSecp256K1() == nil || k.PublicKey == nil {
		return nil, fmt.Errorf("decode legacy private key: %w", ErrMalformedBundle)
	}
	pub, err := legacyToSigned(k.PublicKey, byWallet)
	if err != nil {
		return nil, err
	}
	return &mc.SignedPrivateKey{
		CreatedNs: k.Timestamp * 1_000_000,
		Union:     &mc.SignedPrivateKey_Secp256K1_{Secp256K1: &mc.SignedPrivateKey_Secp256K1{Bytes: k.GetSecp256K1().Bytes}},
		PublicKey: pub,
	}, nil
}
