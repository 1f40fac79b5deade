package persistence

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzSealerRoundTrip seals arbitrary plaintext under arbitrary additional
// data. It opens to the same plaintext with the same data, also after the
// key is rotated out to a previous one; with other data, one flipped bit
// of nonce or ciphertext, or another key, it does not open.
func FuzzSealerRoundTrip(f *testing.F) {
	f.Add([]byte("secret"), []byte("bridge-key\x00id\x000xabc"), uint16(0))
	f.Add([]byte{}, []byte{}, uint16(7))
	f.Add(bytes.Repeat([]byte{0xff}, 300), []byte("row"), uint16(2000))
	cur, other := testKey(f, "current"), testKey(f, "other")
	s := mustSealer(f, cur)
	rotated := mustSealer(f, testKey(f, "next"), cur)
	stranger := mustSealer(f, MasterKey{ID: cur.ID, Key: other.Key})
	f.Fuzz(func(t *testing.T, plain, aad []byte, flip uint16) {
		v, err := s.Seal(plain, aad)
		if err != nil {
			t.Fatalf("seal: %v", err)
		}
		if v.KeyID != cur.ID || (len(plain) > 16 && bytes.Contains(v.Ciphertext, plain)) {
			t.Fatalf("sealed value %+v names the wrong key or shows the plaintext", v)
		}
		for name, opener := range map[string]*Sealer{"sealer": s, "rotated sealer": rotated} {
			got, err := opener.Open(v, aad)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s opened %q to %q (%v)", name, plain, got, err)
			}
		}
		if _, err := s.Open(v, append(append([]byte{}, aad...), 0)); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("opened with other additional data: %v", err)
		}
		if _, err := stranger.Open(v, aad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("opened with another key of the same id: %v", err)
		}
		bits := 8 * (len(v.Nonce) + len(v.Ciphertext))
		bit := int(flip) % bits
		tampered := Sealed{KeyID: v.KeyID, Nonce: bytes.Clone(v.Nonce), Ciphertext: bytes.Clone(v.Ciphertext)}
		if bit < 8*len(v.Nonce) {
			tampered.Nonce[bit/8] ^= 1 << (bit % 8)
		} else {
			bit -= 8 * len(v.Nonce)
			tampered.Ciphertext[bit/8] ^= 1 << (bit % 8)
		}
		if _, err := s.Open(tampered, aad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("opened with a flipped bit: %v", err)
		}
	})
}
