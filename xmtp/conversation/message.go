package conversation

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// Message is a decrypted, verified message of a conversation.
type Message struct {
	// ID is the lowercase hex SHA-256 of the envelope's message bytes, the
	// id xmtp-js gives the same message.
	ID string
	// Topic is the conversation topic.
	Topic string
	// ConversationID is the conversation's context id, empty for the
	// default conversation of a pair.
	ConversationID string
	// Sender is the EIP-55 wallet address that signed the message.
	Sender string
	// Sent is the header's creation time.
	Sent time.Time
	// Content is the decoded content; unknown types keep their raw bytes.
	Content *content.Content
	// EnvelopeTimestamp is the envelope's timestamp in nanoseconds.
	EnvelopeTimestamp uint64
}

// MessageID returns the id of an envelope's message bytes.
func MessageID(message []byte) string { return hex.EncodeToString(keys.Sha256(message)) }

// Seal encodes, signs and encrypts content as a MessageV2 envelope on the
// conversation topic, stamped with now.
func (c *Conversation) Seal(me *keys.PrivateKeyBundle, body *content.Content, now time.Time) (*messagev1.Envelope, error) {
	payload, err := content.Encode(body)
	if err != nil {
		return nil, err
	}
	return c.SealPayload(me, payload, now)
}

// SealPayload signs and encrypts an already encoded EncodedContent.
func (c *Conversation) SealPayload(me *keys.PrivateKeyBundle, payload []byte, now time.Time) (*messagev1.Envelope, error) {
	createdNs := uint64(now.UnixNano())
	headerBytes, err := proto.Marshal(&mc.MessageHeaderV2{Topic: c.Topic, CreatedNs: createdNs})
	if err != nil {
		return nil, fmt.Errorf("encode message header: %w", err)
	}
	signed, err := encodeSignedContent(payload, me.SenderBundleBytes(), me.SignWithPreKey(keys.Sha256(headerBytes, payload)))
	if err != nil {
		return nil, fmt.Errorf("encode signed content: %w", err)
	}
	ct, err := encrypt(signed, c.keyMaterial, headerBytes)
	if err != nil {
		return nil, fmt.Errorf("seal message: %w", err)
	}
	push := true
	msg, err := proto.Marshal(&mc.Message{Version: &mc.Message_V2{V2: &mc.MessageV2{
		HeaderBytes: headerBytes,
		Ciphertext:  ct,
		SenderHmac:  c.senderHMAC(me.Address(), headerBytes, now),
		ShouldPush:  &push,
	}}})
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	return &messagev1.Envelope{ContentTopic: c.Topic, TimestampNs: createdNs, Message: msg}, nil
}

// senderHMAC is the HMAC push servers use to recognise a sender's own
// messages, keyed per thirty-day period and sender address.
func (c *Conversation) senderHMAC(addr string, headerBytes []byte, now time.Time) []byte {
	period := now.UnixMilli() / 1000 / 60 / 60 / 24 / 30
	k := c.senderKey.Load()
	if k == nil || k.period != period || k.addr != addr {
		k = &senderKey{period: period, addr: addr,
			key: hkdf32(c.keyMaterial, nil, []byte(strconv.FormatInt(period, 10)+"-"+addr))}
		c.senderKey.Store(k)
	}
	return hmacSHA256(k.key, headerBytes)
}

// senderKey is the key of senderHMAC for one period and sender: it is the
// same for every message the conversation seals in thirty days.
type senderKey struct {
	period int64
	addr   string
	key    []byte
}

// Open decrypts and verifies a MessageV2 envelope of this conversation.
func (c *Conversation) Open(env *messagev1.Envelope) (*Message, error) {
	if env == nil {
		return nil, fmt.Errorf("open message: %w", ErrTruncated)
	}
	if len(env.Message) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("open message: %w", ErrOversized)
	}
	var msg mc.Message
	if err := proto.Unmarshal(env.Message, &msg); err != nil {
		return nil, fmt.Errorf("open message: %w", ErrTruncated)
	}
	v2 := msg.GetV2()
	if v2 == nil {
		return nil, fmt.Errorf("open message: %w", ErrUnknownVersion)
	}
	var header mc.MessageHeaderV2
	if err := proto.Unmarshal(v2.HeaderBytes, &header); err != nil {
		return nil, fmt.Errorf("open message header: %w", ErrTruncated)
	}
	if header.Topic != c.Topic {
		return nil, fmt.Errorf("open message: %w", ErrTopicMismatch)
	}
	plain, err := decrypt(v2.Ciphertext, c.keyMaterial, v2.HeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("open message: %w", err)
	}
	signed, ok := splitSignedContent(plain)
	if !ok {
		return nil, fmt.Errorf("open signed content: %w", ErrTruncated)
	}
	// A bundle already verified with these very bytes is that bundle; any
	// other is decoded (it must decode, as the whole content must) and
	// verified.
	var sender *keys.PeerBundle
	if signed.hasSender {
		sender = c.knownSender(signed.sender)
	}
	if sender == nil {
		var bundle *mc.SignedPublicKeyBundle
		if signed.hasSender {
			if bundle, ok = decodeSender(signed.sender); !ok {
				return nil, fmt.Errorf("open signed content: %w", ErrTruncated)
			}
		}
		if sender, err = c.verifySender(bundle); err != nil {
			return nil, fmt.Errorf("open message: sender: %w: %w", ErrBadSignature, err)
		}
		if signed.hasSender {
			c.rememberSender(signed.sender, sender)
		}
	}
	if err := keys.VerifyWithKey(sender.PreKey, signed.signature, keys.Sha256(v2.HeaderBytes, signed.payload)); err != nil {
		return nil, fmt.Errorf("open message: %w: %w", ErrBadSignature, err)
	}
	if sender.Address != c.Peer && sender.Address != c.Self {
		return nil, fmt.Errorf("open message from %s: %w", sender.Address, ErrNotParticipant)
	}
	body, err := content.Decode(signed.payload)
	if err != nil {
		return nil, fmt.Errorf("open message: %w: %w", ErrBadContent, err)
	}
	return &Message{
		ID:                MessageID(env.Message),
		Topic:             c.Topic,
		ConversationID:    c.ID,
		Sender:            sender.Address,
		Sent:              time.Unix(0, int64(header.CreatedNs)),
		Content:           body,
		EnvelopeTimestamp: env.TimestampNs,
	}, nil
}

// maxVerifiedSenders bounds the per-conversation cache of verified sender
// bundles; a conversation normally sees two.
const maxVerifiedSenders = 16

// verifySender verifies a sender bundle, remembering bundles already
// verified on this conversation so each message costs one signature check
// instead of three.
func (c *Conversation) verifySender(b *mc.SignedPublicKeyBundle) (*keys.PeerBundle, error) {
	if b == nil || b.IdentityKey == nil || b.PreKey == nil {
		return keys.VerifyBundle(b)
	}
	// The key is built on the stack; only a new entry copies it.
	var scratch [320]byte
	key := bundleKey(scratch[:0], b)
	c.mu.Lock()
	p, ok := c.verified[string(key)]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := keys.VerifyBundle(b)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.verified == nil || len(c.verified) >= maxVerifiedSenders {
		c.verified = map[string]*keys.PeerBundle{}
	}
	c.verified[string(key)] = p
	c.mu.Unlock()
	return p, nil
}

// bundleKey identifies a bundle by every byte its verification reads.
func bundleKey(dst []byte, b *mc.SignedPublicKeyBundle) []byte {
	buf := dst
	for _, k := range []*mc.SignedPublicKey{b.IdentityKey, b.PreKey} {
		buf = appendField(buf, k.KeyBytes)
		switch s := k.GetSignature().GetUnion().(type) {
		case *mc.Signature_EcdsaCompact:
			buf = appendField(append(buf, 1, byte(s.EcdsaCompact.GetRecovery())), s.EcdsaCompact.GetBytes())
		case *mc.Signature_WalletEcdsaCompact:
			buf = appendField(append(buf, 2, byte(s.WalletEcdsaCompact.GetRecovery())), s.WalletEcdsaCompact.GetBytes())
		default:
			buf = append(buf, 0)
		}
	}
	return buf
}

func appendField(buf, field []byte) []byte {
	n := len(field)
	return append(append(buf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n)), field...)
}
