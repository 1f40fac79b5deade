package conversation

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/xmtp/content"
)

// benchText is a 1 KiB message, a typical HTTP-ish payload.
var benchText = string(make([]byte, 1024))

func BenchmarkSeal(b *testing.B) {
	p := newPair(b)
	c, _, _ := Invite(p.alice, p.bobPeer, "", nil, time.Now())
	body := content.Text(benchText)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Seal(p.alice, body, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	p := newPair(b)
	ca, invs, _ := Invite(p.alice, p.bobPeer, "", nil, time.Now())
	cb, _ := OpenInvitation(p.bob, invs[0])
	env, _ := ca.Seal(p.alice, content.Text(benchText), time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cb.Open(env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInvite(b *testing.B) {
	p := newPair(b)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Invite(p.alice, p.bobPeer, "", nil, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenInvitation(b *testing.B) {
	p := newPair(b)
	_, invs, _ := Invite(p.alice, p.bobPeer, "", nil, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenInvitation(p.bob, invs[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawAESGCM is the baseline: one AES-256-GCM seal of the same
// payload size with a fixed key, so the protocol's overhead can be read as a
// ratio.
func BenchmarkRawAESGCM(b *testing.B) {
	key := make([]byte, 32)
	nonce := make([]byte, 12)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	plain := []byte(benchText)
	aad := make([]byte, 80)
	b.ReportAllocs()
	for b.Loop() {
		gcm.Seal(nil, nonce, plain, aad)
	}
}
