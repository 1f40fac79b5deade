package conversation

import (
	"bytes"
	"errors"
	"testing"
	"time"

	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// checkSplitMatchesProto holds splitSignedContent and decodeSender to
// proto.Unmarshal of the whole SignedContent, the decoding Open did before.
func checkSplitMatchesProto(t *testing.T, b []byte) {
	t.Helper()
	var ref mc.SignedContent
	refErr := proto.Unmarshal(b, &ref)
	s, ok := splitSignedContent(b)
	var sender *mc.SignedPublicKeyBundle
	if ok && s.hasSender {
		sender, ok = decodeSender(s.sender)
	}
	if ok != (refErr == nil) {
		t.Fatalf("split %x: ok %v, proto.Unmarshal error %v", b, ok, refErr)
	}
	if !ok {
		return
	}
	if !bytes.Equal(s.payload, ref.Payload) || !proto.Equal(sender, ref.Sender) || (sender == nil) != (ref.Sender == nil) ||
		!proto.Equal(s.signature, ref.Signature) || (s.signature == nil) != (ref.Signature == nil) {
		t.Fatalf("split %x: payload %x sender %v signature %v; proto %x %v %v", b, s.payload, sender, s.signature,
			ref.Payload, ref.Sender, ref.Signature)
	}
}

func signedContentSamples(t testing.TB) [][]byte {
	p := newPair(t)
	payload, _ := content.Encode(content.Text("hello"))
	sc := &mc.SignedContent{Payload: payload, Sender: p.alice.SenderBundle(), Signature: p.alice.SignWithPreKey(keys.Sha256(payload))}
	good, _ := proto.Marshal(sc)
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	bundle, _ := proto.Marshal(sc.Sender)
	sig, _ := proto.Marshal(sc.Signature)
	return [][]byte{
		nil, {}, good,
		append(bytes.Clone(good), good...), // everything twice: messages merge
		good[:len(good)-1],
		append(bytes.Clone(good), protowire.AppendVarint(tag(nil, 2, protowire.VarintType), 1)...), // wrong wire type: skipped
		append(bytes.Clone(good), protowire.AppendVarint(tag(nil, 9, protowire.VarintType), 1)...),
		append(bytes.Clone(good), protowire.AppendVarint(tag(nil, protowire.MaxValidNumber+1, protowire.VarintType), 1)...),
		append(bytes.Clone(good), protowire.AppendBytes(tag(nil, 2, protowire.BytesType), []byte{0xff})...), // a broken second sender
		append(bytes.Clone(good), protowire.AppendBytes(tag(nil, 3, protowire.BytesType), []byte{0x0a})...),
		protowire.AppendBytes(tag(nil, 2, protowire.BytesType), bundle[:len(bundle)/2]),
		protowire.AppendBytes(tag(nil, 3, protowire.BytesType), sig),
		protowire.AppendBytes(tag(nil, 1, protowire.BytesType), nil),
		append(bytes.Clone(good), tag(nil, 7, protowire.EndGroupType)...),
	}
}

func TestSplitSignedContentMatchesProto(t *testing.T) {
	for _, b := range signedContentSamples(t) {
		checkSplitMatchesProto(t, b)
	}
}

func FuzzSplitSignedContent(f *testing.F) {
	for _, b := range signedContentSamples(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSplitMatchesProto(t, b)
	})
}

// TestKnownSenderBytesOnly checks that a conversation that has verified a
// sender's bundle still verifies any bundle whose bytes differ from it: a
// bundle with a broken signature is refused after good messages carrying
// the good one, and the good one is still accepted after it.
func TestKnownSenderBytesOnly(t *testing.T) {
	p := newPair(t)
	now := time.Now()
	ca, invs, err := Invite(p.alice, p.bobPeer, "", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := OpenInvitation(p.bob, invs[0])
	if err != nil {
		t.Fatal(err)
	}
	good := func() {
		t.Helper()
		env, err := ca.Seal(p.alice, content.Text("hi"), now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cb.Open(env); err != nil {
			t.Fatalf("good message refused: %v", err)
		}
	}
	good()
	good()
	forged := sealWith(t, cb, p.alice, func(sc *mc.SignedContent, hb []byte) {
		sc.Sender = proto.Clone(sc.Sender).(*mc.SignedPublicKeyBundle)
		sig := sc.Sender.PreKey.GetSignature().GetEcdsaCompact()
		if sig == nil {
			t.Fatalf("pre-key signature of an unexpected kind: %v", sc.Sender.PreKey.GetSignature())
		}
		sig.Bytes = bytes.Clone(sig.Bytes)
		sig.Bytes[5] ^= 1
		sc.Signature = p.alice.SignWithPreKey(keys.Sha256(hb, sc.Payload))
	})
	if _, err := cb.Open(forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bundle with a broken pre-key signature: %v, want ErrBadSignature", err)
	}
	good()
}

// TestEncodeSignedContentMatchesProto checks the hand-written SignedContent
// against proto.Marshal of the same message, with and without a payload.
func TestEncodeSignedContentMatchesProto(t *testing.T) {
	p := newPair(t)
	for _, payload := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("long "), 100)} {
		sig := p.alice.SignWithPreKey(keys.Sha256(payload))
		got, err := encodeSignedContent(payload, p.alice.SenderBundleBytes(), sig)
		if err != nil {
			t.Fatal(err)
		}
		want, err := proto.Marshal(&mc.SignedContent{Payload: payload, Sender: p.alice.SenderBundle(), Signature: sig})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("payload %q:\n got %x\nwant %x", payload, got, want)
		}
	}
}

// BenchmarkEncodeSignedContent encodes the signed content of a reply.
func BenchmarkEncodeSignedContent(b *testing.B) {
	p := newPair(b)
	payload, _ := content.Encode(content.Text("a short reply"))
	sig := p.alice.SignWithPreKey(keys.Sha256(payload))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeSignedContent(payload, p.alice.SenderBundleBytes(), sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeSignedContentProto is proto.Marshal of the same content.
func BenchmarkEncodeSignedContentProto(b *testing.B) {
	p := newPair(b)
	payload, _ := content.Encode(content.Text("a short reply"))
	sig := p.alice.SignWithPreKey(keys.Sha256(payload))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := proto.Marshal(&mc.SignedContent{Payload: payload, Sender: p.alice.SenderBundle(), Signature: sig}); err != nil {
			b.Fatal(err)
		}
	}
}
