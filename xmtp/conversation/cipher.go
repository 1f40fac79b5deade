package conversation

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"

	mc "github.com/xmtp/proto/v3/go/message_contents"
)

// macState is the scratch of one HMAC-SHA256 computation: a hash and its
// pads. States are pooled, so a derivation allocates only its result.
type macState struct {
	h       hash.Hash
	pad     [sha256.BlockSize]byte
	keyHash [sha256.Size]byte
	inner   [sha256.Size]byte
	prk     [sha256.Size]byte
}

var macStates = sync.Pool{New: func() any { return &macState{h: sha256.New()} }}

// zeroSalt is HKDF's salt when none is given: HashLen zero bytes.
var zeroSalt [sha256.Size]byte

// hkdfCounter is the single counter byte of a 32-byte HKDF-SHA256 output.
var hkdfCounter = []byte{1}

// mac appends HMAC-SHA256(key, a || b) to dst (RFC 2104).
func (s *macState) mac(dst, key, a, b []byte) []byte {
	if len(key) > sha256.BlockSize {
		s.h.Reset()
		s.h.Write(key)
		key = s.h.Sum(s.keyHash[:0])
	}
	for i := range s.pad {
		s.pad[i] = 0x36
	}
	for i, c := range key {
		s.pad[i] ^= c
	}
	s.h.Reset()
	s.h.Write(s.pad[:])
	s.h.Write(a)
	s.h.Write(b)
	inner := s.h.Sum(s.inner[:0])
	for i := range s.pad {
		s.pad[i] ^= 0x36 ^ 0x5c
	}
	s.h.Reset()
	s.h.Write(s.pad[:])
	s.h.Write(inner)
	return s.h.Sum(dst)
}

// hkdf32 derives 32 bytes with HKDF-SHA256 (RFC 5869): 32 bytes are one
// block of the expand step, T(1) = HMAC(PRK, info || 0x01).
func hkdf32(secret, salt, info []byte) []byte {
	if len(salt) == 0 {
		salt = zeroSalt[:]
	}
	s := macStates.Get().(*macState)
	prk := s.mac(s.prk[:0], salt, secret, nil)
	out := s.mac(make([]byte, 0, sha256.Size), prk, info, hkdfCounter)
	macStates.Put(s)
	return out
}

func hmacSHA256(key, msg []byte) []byte {
	s := macStates.Get().(*macState)
	out := s.mac(make([]byte, 0, sha256.Size), key, msg, nil)
	macStates.Put(s)
	return out
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
