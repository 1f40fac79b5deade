package keys

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// WalletKey is an Ethereum-style secp256k1 account key.
type WalletKey struct {
	key     *secp256k1.PrivateKey
	address string
}

// GenerateWallet creates a new random wallet key.
func GenerateWallet() (*WalletKey, error) {
	k, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return nil, fmt.Errorf("generate wallet key: %w", err)
	}
	return newWallet(k), nil
}

// LoadWallet builds a wallet key from its 32-byte secret.
func LoadWallet(secret []byte) (*WalletKey, error) {
	k, err := parsePrivateKey(secret)
	if err != nil {
		return nil, fmt.Errorf("load wallet key: %w", err)
	}
	return newWallet(k), nil
}

func newWallet(k *secp256k1.PrivateKey) *WalletKey {
	return &WalletKey{key: k, address: PublicKeyAddress(k.PubKey())}
}

// Address returns the wallet's EIP-55 checksummed address.
func (w *WalletKey) Address() string { return w.address }

// Bytes returns the wallet's 32-byte secret. Callers must keep it out of
// logs and errors.
func (w *WalletKey) Bytes() []byte { return w.key.Serialize() }

// String hides the secret so a wallet key never prints by accident.
func (w *WalletKey) String() string { return "WalletKey(" + w.address + ")" }

// PersonalSign signs text with EIP-191 personal_sign and returns the 65-byte
// r || s || v signature with v = 27 or 28.
func (w *WalletKey) PersonalSign(text string) []byte {
	sig := signDigest(w.key, personalDigest(text))
	out := make([]byte, 65)
	copy(out, sig.Bytes)
	out[64] = byte(27 + sig.Recovery)
	return out
}

// RecoverPersonalSign returns the EIP-55 address that produced the 65-byte
// personal_sign signature over text. v may be 0, 1, 27 or 28.
func RecoverPersonalSign(text string, sig []byte) (string, error) {
	if len(sig) != 65 {
		return "", fmt.Errorf("recover personal signature: %w", ErrInvalidSignature)
	}
	v := uint32(sig[64])
	if v >= 27 {
		v -= 27
	}
	pub, err := recoverDigest(CompactSignature{Bytes: sig[:64], Recovery: v}, personalDigest(text))
	if err != nil {
		return "", fmt.Errorf("recover personal signature: %w", err)
	}
	return PublicKeyAddress(pub), nil
}

func personalDigest(text string) []byte {
	prefix := "\x19Ethereum Signed Message:\n" + strconv.Itoa(len(text))
	return Keccak256([]byte(prefix), []byte(text))
}

// PublicKeyAddress returns the EIP-55 Ethereum address of a public key.
func PublicKeyAddress(pub *secp256k1.PublicKey) string {
	raw := pub.SerializeUncompressed()
	return ChecksumAddress(hex.EncodeToString(Keccak256(raw[1:])[12:]))
}

// ChecksumAddress writes a 20-byte hex address (with or without 0x, any
// case) in EIP-55 mixed-case form. Input that is not 40 hex digits is
// returned unchanged.
func ChecksumAddress(addr string) string {
	lower := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(addr, "0x"), "0X"))
	if len(lower) != 40 {
		return addr
	}
	if _, err := hex.DecodeString(lower); err != nil {
		return addr
	}
	hash := Keccak256([]byte(lower))
	out := []byte("0x" + lower)
	for i := 0; i < 40; i++ {
		c := lower[i]
		if c < 'a' {
			continue
		}
		nibble := hash[i/2]
		if i%2 == 0 {
			nibble >>= 4
		}
		if nibble&0x0f >= 8 {
			out[2+i] = c - 32
		}
	}
	return string(out)
}

// IsAddress reports whether s is a 0x-prefixed 40-digit hex address.
func IsAddress(s string) bool {
	if len(s) != 42 || (s[:2] != "0x" && s[:2] != "0X") {
		return false
	}
	_, err := hex.DecodeString(s[2:])
	return err == nil
}
