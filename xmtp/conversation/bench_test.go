package conversation

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/keys"
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

// BenchmarkRoundTripSenders opens a short message and seals its reply,
// the bridge's crypto per forwarded message (the crypto floor of
// BenchmarkForwardGoals), for 1 and 16 senders taking turns. The work per
// operation is the same; with 16 senders the signature tables of 16 keys
// (keys/verifytable.go) take turns in the caches.
func BenchmarkRoundTripSenders(b *testing.B) {
	for _, senders := range []int{1, 16} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			bob := newPair(b).bob
			bobPeer, err := keys.VerifyBundle(bob.PublicBundle())
			if err != nil {
				b.Fatal(err)
			}
			type conv struct {
				alice  *keys.PrivateKeyBundle
				ca, cb *Conversation
			}
			convs := make([]conv, senders)
			for i := range convs {
				alice := newPair(b).alice
				ca, invs, err := Invite(alice, bobPeer, "", nil, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				cb, err := OpenInvitation(bob, invs[0])
				if err != nil {
					b.Fatal(err)
				}
				convs[i] = conv{alice: alice, ca: ca, cb: cb}
			}
			// Enough messages per sender first that each key has its
			// table, as a busy sender's has in the node.
			const n = 512
			envs := make([]*messagev1.Envelope, n+32*senders)
			for k := range envs {
				c := convs[k%senders]
				if envs[k], err = c.ca.Seal(c.alice, content.Text(fmt.Sprintf("bridge-peak %06d", k)), time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			roundTrip := func(k int) {
				c := convs[k%senders]
				m, err := c.cb.Open(envs[k])
				if err != nil {
					b.Fatal(err)
				}
				text, _ := m.Content.Text()
				if _, err := c.cb.Seal(bob, content.Text("echo: "+text), time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			for k := range 32 * senders {
				roundTrip(k)
			}
			b.ResetTimer()
			k := 0
			for b.Loop() {
				roundTrip(32*senders + k%n)
				k++
			}
		})
	}
}
