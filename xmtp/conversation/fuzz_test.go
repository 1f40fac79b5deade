package conversation

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"

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

// FuzzSealOpenRoundTrip seals arbitrary content in a conversation, in
// either direction: the other side opens it to the same content, sender,
// topic and time, and a flipped byte of the envelope does not open.
func FuzzSealOpenRoundTrip(f *testing.F) {
	p := newPair(f)
	now := time.Now()
	ca, invs, err := Invite(p.alice, p.bobPeer, "example.com/thread/1", nil, now)
	if err != nil {
		f.Fatal(err)
	}
	cb, err := OpenInvitation(p.bob, invs[0])
	if err != nil {
		f.Fatal(err)
	}
	f.Add("hello", []byte(nil), false, int64(0), uint16(0))
	f.Add("", []byte{0, 1, 0xff}, true, int64(1), uint16(40))
	f.Add("héllo ✓", []byte("body"), false, int64(-1), uint16(1000))
	f.Fuzz(func(t *testing.T, text string, body []byte, toAlice bool, skewNs int64, flip uint16) {
		from, sealer, opener := p.alice, ca, cb
		if toAlice {
			from, sealer, opener = p.bob, cb, ca
		}
		in := content.Text(text)
		if len(body) > 0 {
			in = &content.Content{Type: content.TypeID{Authority: "example.com", Type: "blob", Major: 1}, Fallback: text, Body: body}
		}
		sent := now.Add(time.Duration(skewNs % int64(time.Hour)))
		env, err := sealer.Seal(from, in, sent)
		if err != nil {
			if !utf8.ValidString(text) {
				return // protobuf refuses the invalid UTF-8 fallback
			}
			t.Fatalf("seal: %v", err)
		}
		m, err := opener.Open(env)
		if err != nil {
			t.Fatalf("open a sealed message: %v", err)
		}
		if m.Sender != from.Address() || m.Topic != sealer.Topic || !m.Sent.Equal(time.Unix(0, sent.UnixNano())) ||
			m.Content.Type != in.Type || m.Content.Fallback != in.Fallback || !bytes.Equal(m.Content.Body, in.Body) {
			t.Fatalf("round trip changed the message: %+v", m)
		}
		if own, err := sealer.Open(env); err != nil || own.Sender != from.Address() {
			t.Fatalf("the sender cannot open its own message: %v", err)
		}
		tampered := bytes.Clone(env.Message)
		tampered[int(flip)%len(tampered)] ^= 0x01
		if m, err := opener.Open(&messagev1.Envelope{ContentTopic: env.ContentTopic, Message: tampered}); err == nil &&
			(m.Sender != from.Address() || !bytes.Equal(m.Content.Body, in.Body)) {
			t.Fatalf("a tampered envelope opened to %+v", m)
		}
	})
}
