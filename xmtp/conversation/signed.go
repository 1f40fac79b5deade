package conversation

import (
	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// signedContent is a SignedContent whose sender bundle is kept as bytes:
// a conversation sees the same one or two bundles on every message, and
// one it has verified before is recognised by its bytes without decoding
// it again.
type signedContent struct {
	payload   []byte
	sender    []byte // the bundle's encoding; nil when absent
	hasSender bool
	signature *mc.Signature
}

// The fields of SignedContent.
const (
	signedPayload   protowire.Number = 1
	signedSender    protowire.Number = 2
	signedSignature protowire.Number = 3
)

// splitSignedContent reads a SignedContent, accepting and refusing what
// proto.Unmarshal does (signed_test.go holds it to that): unknown fields
// and fields of an unexpected wire type are skipped, the last payload wins,
// and repeated messages merge, which is decoding their encodings one after
// the other. The sender bundle is checked to decode, but only by callers
// that do not know its bytes already: decodeSender.
func splitSignedContent(b []byte) (signedContent, bool) {
	var s signedContent
	var sig []byte
	// A message field given more than once is merged, as proto.Unmarshal
	// merges it, by concatenating its occurrences; proto.Unmarshal also
	// refuses an occurrence that is not a well-formed message on its own,
	// which the concatenation could hide, so each one is checked then.
	hasSig, senderSeenAgain, sigSeenAgain := false, false, false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return s, false
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == signedPayload || num == signedSender || num == signedSignature) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return s, false
			}
			b = b[n:]
			switch num {
			case signedPayload:
				s.payload = v
			case signedSender:
				if s.hasSender && (!senderSeenAgain && !wellFormed(s.sender, &mc.SignedPublicKeyBundle{}) || !wellFormed(v, &mc.SignedPublicKeyBundle{})) {
					return s, false
				}
				senderSeenAgain = s.hasSender
				s.sender = concat(s.sender, s.hasSender, v)
				s.hasSender = true
			default:
				if hasSig && (!sigSeenAgain && !wellFormed(sig, &mc.Signature{}) || !wellFormed(v, &mc.Signature{})) {
					return s, false
				}
				sigSeenAgain = hasSig
				sig = concat(sig, hasSig, v)
				hasSig = true
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return s, false
		}
		b = b[n:]
	}
	if hasSig {
		s.signature = &mc.Signature{}
		if err := proto.Unmarshal(sig, s.signature); err != nil {
			return s, false
		}
	}
	if s.payload == nil {
		s.payload = []byte{}
	}
	return s, true
}

// wellFormed reports whether b decodes as m, one occurrence of a message
// field given more than once.
func wellFormed(b []byte, m proto.Message) bool { return proto.Unmarshal(b, m) == nil }

// concat is the encoding of a message field seen again: the first
// occurrence's bytes are used as they are, later ones are appended to a
// copy.
func concat(prev []byte, seen bool, v []byte) []byte {
	if !seen {
		return v
	}
	return append(append([]byte(nil), prev...), v...)
}

// decodeSender decodes a sender bundle's bytes.
func decodeSender(raw []byte) (*mc.SignedPublicKeyBundle, bool) {
	var b mc.SignedPublicKeyBundle
	if err := proto.Unmarshal(raw, &b); err != nil {
		return nil, false
	}
	return &b, true
}

// knownSender returns the bundle verified before with exactly these bytes.
func (c *Conversation) knownSender(raw []byte) *keys.PeerBundle {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verifiedRaw[string(raw)]
}

// rememberSender keeps a verified bundle under its bytes.
func (c *Conversation) rememberSender(raw []byte, p *keys.PeerBundle) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.verifiedRaw == nil || len(c.verifiedRaw) >= maxVerifiedSenders {
		c.verifiedRaw = map[string]*keys.PeerBundle{}
	}
	c.verifiedRaw[string(raw)] = p
}

// encodeSignedContent writes the SignedContent of payload, an encoded
// sender bundle and a signature: the bytes proto.Marshal writes for it,
// with the bundle's encoding reused rather than made again.
func encodeSignedContent(payload, sender []byte, sig *mc.Signature) ([]byte, error) {
	sigBytes, err := proto.Marshal(sig)
	if err != nil {
		return nil, err
	}
	n := protowire.SizeTag(signedSender) + protowire.SizeBytes(len(sender)) +
		protowire.SizeTag(signedSignature) + protowire.SizeBytes(len(sigBytes))
	if len(payload) > 0 {
		n += protowire.SizeTag(signedPayload) + protowire.SizeBytes(len(payload))
	}
	b := make([]byte, 0, n)
	if len(payload) > 0 {
		b = protowire.AppendTag(b, signedPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, payload)
	}
	b = protowire.AppendTag(b, signedSender, protowire.BytesType)
	b = protowire.AppendBytes(b, sender)
	b = protowire.AppendTag(b, signedSignature, protowire.BytesType)
	return protowire.AppendBytes(b, sigBytes), nil
}
