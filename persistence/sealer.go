package persistence

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// ErrUnknownKey means a sealed value names a master key the sealer does not
// hold.
var ErrUnknownKey = errors.New("unknown master key")

// ErrDecrypt means a sealed value failed authentication: it was tampered
// with, moved to another row, or sealed under a different key.
var ErrDecrypt = errors.New("decrypt sealed value")

// MasterKey is one AES-256 key used to seal secrets at rest. ID names the key
// in every row it seals, so keys can rotate.
type MasterKey struct {
	ID  string
	Key []byte // 32 bytes
}

// Sealed is a secret encrypted with AES-256-GCM under the master key KeyID.
type Sealed struct {
	KeyID      string
	Nonce      []byte
	Ciphertext []byte
}

// Sealer encrypts secrets with the current master key and decrypts them with
// whichever known key sealed them.
type Sealer struct {
	current      string
	aeads        map[string]cipher.AEAD
	fingerprints map[string][]byte
}

// NewSealer returns a sealer that seals with current and opens values
// sealed with current or any of previous.
func NewSealer(current MasterKey, previous ...MasterKey) (*Sealer, error) {
	s := &Sealer{current: current.ID, aeads: map[string]cipher.AEAD{}, fingerprints: map[string][]byte{}}
	for _, k := range append([]MasterKey{current}, previous...) {
		if k.ID == "" || len(k.ID) > 64 {
			return nil, fmt.Errorf("add master key: id must be 1 to 64 characters")
		}
		if len(k.Key) != 32 {
			return nil, fmt.Errorf("add master key %s: key must be 32 bytes, got %d", k.ID, len(k.Key))
		}
		if _, dup := s.aeads[k.ID]; dup {
			return nil, fmt.Errorf("add master key %s: id used twice", k.ID)
		}
		block, err := aes.NewCipher(k.Key)
		if err != nil {
			return nil, fmt.Errorf("add master key %s: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("add master key %s: %w", k.ID, err)
		}
		s.aeads[k.ID] = aead
		s.fingerprints[k.ID] = keyFingerprint(k.Key)
	}
	return s, nil
}

// keyFingerprint names a master key without revealing it: HMAC-SHA256 of
// a fixed label under the key.
func keyFingerprint(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("xmtpbridge master key fingerprint v1"))
	return m.Sum(nil)
}

// CurrentKeyID returns the id of the key new values are sealed with.
func (s *Sealer) CurrentKeyID() string { return s.current }

// Seal encrypts plaintext under the current key with a fresh random nonce.
// aad binds the result to its context (for example the row it belongs to):
// Open must be given the same aad.
func (s *Sealer) Seal(plaintext, aad []byte) (Sealed, error) {
	aead := s.aeads[s.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, fmt.Errorf("seal value: read nonce: %w", err)
	}
	return Sealed{KeyID: s.current, Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, plaintext, aad)}, nil
}

// Open decrypts v with the key it names, checking aad.
func (s *Sealer) Open(v Sealed, aad []byte) ([]byte, error) {
	aead, ok := s.aeads[v.KeyID]
	if !ok {
		return nil, fmt.Errorf("open sealed value with key %q: %w", v.KeyID, ErrUnknownKey)
	}
	if len(v.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("open sealed value: %w", ErrDecrypt)
	}
	plain, err := aead.Open(nil, v.Nonce, v.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w", ErrDecrypt)
	}
	return plain, nil
}

// Additional data for each kind of sealed column. Each names the kind and
// the row, so a ciphertext cannot be moved to another row or column.

func bridgeKeyAAD(bridgeID, address string) []byte {
	return []byte("bridge-key\x00" + bridgeID + "\x00" + address)
}

func webhookSecretAAD(bridgeID, secretID string) []byte {
	return []byte("webhook-secret\x00" + bridgeID + "\x00" + secretID)
}

func conversationKeyAAD(bridgeID, topic string) []byte {
	return []byte("conversation-key\x00" + bridgeID + "\x00" + topic)
}

func forwardHeadersAAD(bridgeID string) []byte {
	return []byte("forward-headers\x00" + bridgeID)
}
