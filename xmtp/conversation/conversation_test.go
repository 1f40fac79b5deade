package conversation

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

type pair struct {
	alice, bob *keys.PrivateKeyBundle
	bobPeer    *keys.PeerBundle
}

func newPair(t testing.TB) pair {
	t.Helper()
	a, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	p, err := keys.VerifyBundle(b.PublicBundle())
	if err != nil {
		t.Fatal(err)
	}
	return pair{alice: a, bob: b, bobPeer: p}
}

func TestInvitationAndMessagesBothWays(t *testing.T) {
	for _, convID := range []string{"", "example.com/thread/1"} {
		p := newPair(t)
		now := time.Now()
		ca, envs, err := Invite(p.alice, p.bobPeer, convID, map[string]string{"k": "v"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(envs) != 2 || envs[0].ContentTopic != keys.InviteTopic(p.bob.Address()) || envs[1].ContentTopic != keys.InviteTopic(p.alice.Address()) {
			t.Fatalf("invite topics: %s %s", envs[0].ContentTopic, envs[1].ContentTopic)
		}
		cb, err := OpenInvitation(p.bob, envs[0])
		if err != nil {
			t.Fatalf("bob opens: %v", err)
		}
		ca2, err := OpenInvitation(p.alice, envs[1])
		if err != nil {
			t.Fatalf("alice opens her copy: %v", err)
		}
		if cb.Topic != ca.Topic || ca2.Topic != ca.Topic || cb.Peer != p.alice.Address() || ca2.Peer != p.bob.Address() || cb.ID != convID || cb.Metadata["k"] != "v" {
			t.Fatalf("conversation mismatch: %+v %+v", cb, ca2)
		}
		// Deterministic topic: bob inviting alice yields the same topic.
		alicePeer, _ := keys.VerifyBundle(p.alice.PublicBundle())
		cb2, _, err := Invite(p.bob, alicePeer, convID, nil, now)
		if err != nil || cb2.Topic != ca.Topic {
			t.Fatalf("reverse invite topic %s != %s (%v)", cb2.Topic, ca.Topic, err)
		}

		env, err := ca.Seal(p.alice, content.Text("hi bob"), now)
		if err != nil {
			t.Fatal(err)
		}
		m, err := cb.Open(env)
		if err != nil {
			t.Fatalf("bob reads: %v", err)
		}
		if s, _ := m.Content.Text(); s != "hi bob" || m.Sender != p.alice.Address() || m.ID != MessageID(env.Message) {
			t.Fatalf("message %+v", m)
		}
		reply, _ := cb.Seal(p.bob, content.Text("hi alice"), now)
		m, err = ca.Open(reply)
		if err != nil {
			t.Fatalf("alice reads: %v", err)
		}
		if s, _ := m.Content.Text(); s != "hi alice" || m.Sender != p.bob.Address() {
			t.Fatalf("reply %+v", m)
		}
		// Restore from the stored invitation.
		r, err := Restore(ca.Self, ca.Peer, ca.Created, ca.Invitation())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Open(reply); err != nil {
			t.Fatalf("restored conversation: %v", err)
		}
	}
}

func TestBadInput(t *testing.T) {
	p := newPair(t)
	now := time.Now()
	ca, invs, err := Invite(p.alice, p.bobPeer, "", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := OpenInvitation(p.bob, invs[0])
	env, _ := ca.Seal(p.alice, content.Text("payload"), now)
	var rej Rejections

	check := func(name string, err, want error) {
		t.Helper()
		rej.Record(err)
		if !errors.Is(err, want) {
			t.Fatalf("%s: got %v, want %v", name, err, want)
		}
	}

	// Tampered ciphertext.
	msg := decodeMessage(t, env)
	msg.GetV2().Ciphertext.GetAes256GcmHkdfSha256().Payload[3] ^= 1
	_, err = cb.Open(reencode(t, env, msg))
	check("tampered ciphertext", err, ErrTampered)

	// Tampered header (AAD).
	msg = decodeMessage(t, env)
	hdr, _ := proto.Marshal(&mc.MessageHeaderV2{Topic: ca.Topic, CreatedNs: 42})
	msg.GetV2().HeaderBytes = hdr
	_, err = cb.Open(reencode(t, env, msg))
	check("tampered header", err, ErrTampered)

	// Wrong signature: a message signed by bob's pre-key but carrying
	// alice's bundle.
	bad := sealWith(t, ca, p.alice, func(sc *mc.SignedContent, hb []byte) {
		sc.Signature = p.bob.SignWithPreKey(keys.Sha256(hb, sc.Payload))
	})
	_, err = cb.Open(bad)
	check("wrong signature", err, ErrBadSignature)

	// Sender bundle whose pre-key is not signed by its identity.
	bad = sealWith(t, ca, p.alice, func(sc *mc.SignedContent, hb []byte) {
		sc.Sender.PreKey = p.bob.PublicBundle().PreKey
	})
	_, err = cb.Open(bad)
	check("forged bundle", err, ErrBadSignature)

	// Truncated envelope.
	_, err = cb.Open(&messagev1.Envelope{ContentTopic: ca.Topic, Message: env.Message[:len(env.Message)/2]})
	check("truncated", err, ErrTruncated)

	// Oversized envelope.
	_, err = cb.Open(&messagev1.Envelope{ContentTopic: ca.Topic, Message: make([]byte, MaxEnvelopeBytes+1)})
	check("oversized", err, ErrOversized)

	// Unknown (V1) message version.
	v1, _ := proto.Marshal(&mc.Message{Version: &mc.Message_V1{V1: &mc.MessageV1{}}})
	_, err = cb.Open(&messagev1.Envelope{ContentTopic: ca.Topic, Message: v1})
	check("v1 message", err, ErrUnknownVersion)

	// Message for another topic.
	other, _, _ := Invite(p.alice, p.bobPeer, "other", nil, now)
	oenv, _ := other.Seal(p.alice, content.Text("x"), now)
	_, err = cb.Open(oenv)
	check("topic mismatch", err, ErrTopicMismatch)

	// Invitation whose envelope timestamp is not its header's.
	skewed := proto.Clone(invs[0]).(*messagev1.Envelope)
	skewed.TimestampNs++
	_, err = OpenInvitation(p.bob, skewed)
	check("invitation timestamp", err, ErrTimestampMismatch)

	// Tampered invitation ciphertext.
	var sealed mc.SealedInvitation
	proto.Unmarshal(invs[0].Message, &sealed)
	sealed.GetV1().Ciphertext.GetAes256GcmHkdfSha256().Payload[0] ^= 1
	tampered, _ := proto.Marshal(&sealed)
	_, err = OpenInvitation(p.bob, &messagev1.Envelope{ContentTopic: invs[0].ContentTopic, TimestampNs: invs[0].TimestampNs, Message: tampered})
	check("tampered invitation", err, ErrTampered)

	// Invitation for someone else.
	stranger, _ := keys.Generate()
	_, err = OpenInvitation(stranger, invs[0])
	check("stranger", err, ErrNotParticipant)

	// Unknown invitation version, truncated and oversized invitations.
	_, err = OpenInvitation(p.bob, &messagev1.Envelope{Message: []byte{}})
	check("empty invitation", err, ErrUnknownVersion)
	_, err = OpenInvitation(p.bob, &messagev1.Envelope{Message: invs[0].Message[:40]})
	check("truncated invitation", err, ErrTruncated)
	_, err = OpenInvitation(p.bob, &messagev1.Envelope{Message: make([]byte, MaxEnvelopeBytes+1)})
	check("oversized invitation", err, ErrOversized)

	snap := rej.Snapshot()
	if snap["tampered"] != 3 || snap["bad_signature"] != 2 || snap["truncated"] != 2 || snap["oversized"] != 2 || snap["other"] != 0 {
		t.Fatalf("counts %v", snap)
	}
	if Reason(ErrTimestampMismatch) != "timestamp_mismatch" {
		t.Fatal("reason label")
	}
}

func decodeMessage(t *testing.T, env *messagev1.Envelope) *mc.Message {
	t.Helper()
	var m mc.Message
	if err := proto.Unmarshal(env.Message, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func reencode(t *testing.T, env *messagev1.Envelope, m *mc.Message) *messagev1.Envelope {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &messagev1.Envelope{ContentTopic: env.ContentTopic, TimestampNs: env.TimestampNs, Message: b}
}

// sealWith builds a message like Seal but lets the test alter the signed
// content before encryption.
func sealWith(t *testing.T, c *Conversation, me *keys.PrivateKeyBundle, alter func(*mc.SignedContent, []byte)) *messagev1.Envelope {
	t.Helper()
	payload, _ := content.Encode(content.Text("forged"))
	hb, _ := proto.Marshal(&mc.MessageHeaderV2{Topic: c.Topic, CreatedNs: 1})
	sc := &mc.SignedContent{Payload: payload, Sender: me.PublicBundle(), Signature: me.SignWithPreKey(keys.Sha256(hb, payload))}
	alter(sc, hb)
	sb, _ := proto.Marshal(sc)
	ct, err := encrypt(sb, c.keyMaterial, hb)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := proto.Marshal(&mc.Message{Version: &mc.Message_V2{V2: &mc.MessageV2{HeaderBytes: hb, Ciphertext: ct}}})
	return &messagev1.Envelope{ContentTopic: c.Topic, TimestampNs: 1, Message: mb}
}

func TestRejectionsCollector(t *testing.T) {
	var rej Rejections
	rej.Record(ErrTampered)
	rej.Record(ErrTampered)
	rej.Record(errors.New("something else"))
	reg := prometheus.NewRegistry()
	if err := reg.Register(&rej); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil || len(families) != 1 || families[0].GetName() != "bridge_xmtp_rejected_envelopes_total" {
		t.Fatalf("families %v, %v", families, err)
	}
	got := map[string]float64{}
	for _, m := range families[0].Metric {
		got[m.Label[0].GetValue()] = m.GetCounter().GetValue()
	}
	if len(got) != len(reasons)+1 || got["tampered"] != 2 || got["other"] != 1 || got["bad_signature"] != 0 {
		t.Fatalf("counters %v", got)
	}
}
