package conversation

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"

	mc "github.com/xmtp/proto/v3/go/message_contents"
	"golang.org/x/crypto/hkdf"
)

// hkdf32 derives 32 bytes with HKDF-SHA256.
func hkdf32(secret, salt, info []byte) []byte {
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, salt, info), out); err != nil {
		panic("hkdf: " + err.Error()) // cannot happen for 32 bytes
	}
	return out
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func newGCM(secret, salt []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(hkdf32(secret, salt, nil))
	if err != nil {
		return nil, fmt.Errorf("create cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// encrypt seals plain with a fresh salt and nonce under a key derived from
// secret, authenticating aad, as Ciphertext.aes256GcmHkdfSha256.
func encrypt(plain, secret, aad []byte) (*mc.Ciphertext, error) {
	salt := make([]byte, 32)
	nonce := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("read salt: %w", err)
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("read nonce: %w", err)
	}
	gcm, err := newGCM(secret, salt)
	if err != nil {
		return nil, err
	}
	return &mc.Ciphertext{Union: &mc.Ciphertext_Aes256GcmHkdfSha256{
		Aes256GcmHkdfSha256: &mc.Ciphertext_Aes256GcmHkdfsha256{
			HkdfSalt: salt, GcmNonce: nonce, Payload: gcm.Seal(nil, nonce, plain, aad),
		},
	}}, nil
}

// decrypt opens a Ciphertext sealed by encrypt.
func decrypt(ct *mc.Ciphertext, secret, aad []byte) ([]byte, error) {
	if ct == nil {
		return nil, fmt.Errorf("decrypt: no ciphertext: %w", ErrTruncated)
	}
	a := ct.GetAes256GcmHkdfSha256()
	if a == nil {
		return nil, fmt.Errorf("decrypt: %w", ErrUnknownVersion)
	}
	if len(a.HkdfSalt) != 32 || len(a.GcmNonce) != 12 || len(a.Payload) < 16 {
		return nil, fmt.Errorf("decrypt: %w", ErrTruncated)
	}
	gcm, err := newGCM(secret, a.HkdfSalt)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, a.GcmNonce, a.Payload, aad)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", ErrTampered)
	}
	return plain, nil
}
