package conversation

import (
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/xmtp/content"
)

func FuzzOpenMessage(f *testing.F) {
	p := newPair(f)
	now := time.Now()
	ca, invs, _ := Invite(p.alice, p.bobPeer, "", nil, now)
	cb, _ := OpenInvitation(p.bob, invs[0])
	env, _ := ca.Seal(p.alice, content.Text("seed"), now)
	f.Add(env.Message)
	f.Add(env.Message[:10])
	f.Add([]byte{0x12, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := cb.Open(&messagev1.Envelope{ContentTopic: cb.Topic, Message: data})
		if err == nil && m.Sender != p.alice.Address() && m.Sender != p.bob.Address() {
			t.Fatalf("accepted message from %s", m.Sender)
		}
	})
}

func FuzzOpenInvitation(f *testing.F) {
	p := newPair(f)
	_, invs, _ := Invite(p.alice, p.bobPeer, "seed", nil, time.Now())
	f.Add(invs[0].Message, invs[0].TimestampNs)
	f.Add(invs[0].Message[:20], uint64(0))
	f.Add([]byte{0x0a, 0x00}, uint64(1))
	f.Fuzz(func(t *testing.T, data []byte, ts uint64) {
		c, err := OpenInvitation(p.bob, &messagev1.Envelope{Message: data, TimestampNs: ts})
		if err == nil && c.Peer != p.alice.Address() {
			t.Fatalf("invitation from unexpected peer %s", c.Peer)
		}
	})
}
