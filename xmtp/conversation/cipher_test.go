package conversation

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/hkdf"
)

func referenceHKDF32(secret, salt, info []byte) []byte {
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, salt, info), out); err != nil {
		panic(err)
	}
	return out
}

func referenceHMAC(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func checkDerivations(t *testing.T, secret, salt, info []byte) {
	t.Helper()
	if got, want := hkdf32(secret, salt, info), referenceHKDF32(secret, salt, info); !bytes.Equal(got, want) {
		t.Fatalf("hkdf32(%x, %x, %x) = %x, want %x", secret, salt, info, got, want)
	}
	if got, want := hmacSHA256(secret, info), referenceHMAC(secret, info); !bytes.Equal(got, want) {
		t.Fatalf("hmacSHA256(%x, %x) = %x, want %x", secret, info, got, want)
	}
}

// TestDerivationsMatchTheStandardLibrary checks hkdf32 against
// x/crypto/hkdf and hmacSHA256 against crypto/hmac, with keys shorter
// than, as long as and longer than a SHA-256 block, and no salt.
func TestDerivationsMatchTheStandardLibrary(t *testing.T) {
	// RFC 5869 test case 1, first 32 bytes of its OKM.
	ikm := bytes.Repeat([]byte{0x0b}, 22)
	salt := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	info := []byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9}
	want := []byte{0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a, 0x90, 0x43, 0x4f, 0x64, 0xd0, 0x36, 0x2f, 0x2a,
		0x2d, 0x2d, 0x0a, 0x90, 0xcf, 0x1a, 0x5a, 0x4c, 0x5d, 0xb0, 0x2d, 0x56, 0xec, 0xc4, 0xc5, 0xbf}
	if got := hkdf32(ikm, salt, info); !bytes.Equal(got, want) {
		t.Fatalf("RFC 5869 case 1: %x, want %x", got, want)
	}
	for _, n := range []int{0, 1, 31, 32, 33, 63, 64, 65, 128, 200} {
		key := bytes.Repeat([]byte{byte(n)}, n)
		checkDerivations(t, key, nil, nil)
		checkDerivations(t, key, key, key)
		checkDerivations(t, key, []byte("salt"), []byte("0|0xabc|0xdef"))
	}
}

// FuzzDerivations checks hkdf32 and hmacSHA256 against the standard
// library on any input.
func FuzzDerivations(f *testing.F) {
	f.Add([]byte("secret"), []byte("salt"), []byte("info"))
	f.Fuzz(func(t *testing.T, secret, salt, info []byte) {
		checkDerivations(t, secret, salt, info)
	})
}

// BenchmarkHKDF32 derives a message key as Seal and Open do.
func BenchmarkHKDF32(b *testing.B) {
	secret, salt := bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{9}, 32)
	b.ReportAllocs()
	for b.Loop() {
		_ = hkdf32(secret, salt, nil)
	}
}

// BenchmarkHKDF32Reference is x/crypto/hkdf on the same input.
func BenchmarkHKDF32Reference(b *testing.B) {
	secret, salt := bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{9}, 32)
	b.ReportAllocs()
	for b.Loop() {
		_ = referenceHKDF32(secret, salt, nil)
	}
}

// TestSenderHMACFollowsPeriodAndSender checks the kept key of senderHMAC:
// each message's HMAC is the one derived afresh for its period and
// sender, across a period's end and a change of sender.
func TestSenderHMACFollowsPeriodAndSender(t *testing.T) {
	c := &Conversation{keyMaterial: bytes.Repeat([]byte{3}, 32)}
	header := []byte("header bytes")
	const month = 30 * 24 * time.Hour
	start := time.UnixMilli(1764637200000)
	for _, step := range []struct {
		addr string
		at   time.Time
	}{
		{"0xaaa", start}, {"0xaaa", start.Add(time.Minute)}, {"0xbbb", start}, {"0xaaa", start},
		{"0xaaa", start.Add(month)}, {"0xaaa", start.Add(month + time.Hour)}, {"0xaaa", start},
	} {
		period := step.at.UnixMilli() / 1000 / 60 / 60 / 24 / 30
		key := referenceHKDF32(c.keyMaterial, nil, []byte(strconv.FormatInt(period, 10)+"-"+step.addr))
		if got, want := c.senderHMAC(step.addr, header, step.at), referenceHMAC(key, header); !bytes.Equal(got, want) {
			t.Fatalf("senderHMAC(%s, %v) = %x, want %x", step.addr, step.at, got, want)
		}
	}
}
