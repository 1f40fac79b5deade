package conversation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// invitationSalt is the HKDF salt of a conversation's key material.
var invitationSalt = []byte("__XMTP__INVITATION__SALT__XMTP__")

// Conversation is one V2 conversation between me and a peer: its topic and
// the key material every message on it is sealed with.
type Conversation struct {
	// Topic is the content topic, /xmtp/0/m-<hex>/proto.
	Topic string
	// Self and Peer are the EIP-55 wallet addresses of the two parties.
	Self, Peer string
	// ID and Metadata are the invitation's context; ID may be empty.
	ID       string
	Metadata map[string]string
	// Created is the invitation's creation time.
	Created time.Time

	keyMaterial []byte

	mu       sync.Mutex
	verified map[string]*keys.PeerBundle // sender bundles already verified
	// verifiedRaw holds the same bundles by their encoding (signed.go).
	verifiedRaw map[string]*keys.PeerBundle

	senderKey atomic.Pointer[senderKey] // the key of senderHMAC this period
}

// Invitation returns the InvitationV1 the conversation was built from.
func (c *Conversation) Invitation() *mc.InvitationV1 {
	inv := &mc.InvitationV1{
		Topic: c.Topic,
		Encryption: &mc.InvitationV1_Aes256GcmHkdfSha256{
			Aes256GcmHkdfSha256: &mc.InvitationV1_Aes256GcmHkdfsha256{KeyMaterial: c.keyMaterial},
		},
	}
	if c.ID != "" || len(c.Metadata) > 0 {
		inv.Context = &mc.InvitationV1_Context{ConversationId: c.ID, Metadata: c.Metadata}
	}
	return inv
}

// Restore rebuilds a conversation from a stored InvitationV1, for callers
// that persist conversations. The invitation carries the key material, so
// the stored form must be kept secret.
func Restore(self, peer string, created time.Time, inv *mc.InvitationV1) (*Conversation, error) {
	c, err := fromInvitation(inv)
	if err != nil {
		return nil, err
	}
	c.Self, c.Peer, c.Created = keys.ChecksumAddress(self), keys.ChecksumAddress(peer), created
	return c, nil
}

// MarshalInvitation encodes the conversation's InvitationV1 for storage.
// The bytes hold the key material and must be kept secret.
func (c *Conversation) MarshalInvitation() ([]byte, error) {
	b, err := proto.Marshal(c.Invitation())
	if err != nil {
		return nil, fmt.Errorf("encode invitation: %w", err)
	}
	return b, nil
}

// RestoreBytes is Restore over an encoded InvitationV1, as MarshalInvitation
// writes it.
func RestoreBytes(self, peer string, created time.Time, invitation []byte) (*Conversation, error) {
	var inv mc.InvitationV1
	if err := proto.Unmarshal(invitation, &inv); err != nil {
		return nil, fmt.Errorf("decode invitation: %w", ErrTruncated)
	}
	return Restore(self, peer, created, &inv)
}

func fromInvitation(inv *mc.InvitationV1) (*Conversation, error) {
	km := inv.GetAes256GcmHkdfSha256().GetKeyMaterial()
	if inv.GetAes256GcmHkdfSha256() == nil {
		return nil, fmt.Errorf("read invitation: %w", ErrUnknownVersion)
	}
	if len(km) != 32 || !strings.HasPrefix(inv.Topic, "/xmtp/0/m-") || !strings.HasSuffix(inv.Topic, "/proto") {
		return nil, fmt.Errorf("read invitation: %w", ErrTruncated)
	}
	return &Conversation{
		Topic:       inv.Topic,
		ID:          inv.GetContext().GetConversationId(),
		Metadata:    inv.GetContext().GetMetadata(),
		keyMaterial: bytes.Clone(km),
	}, nil
}

// Invite creates a conversation with a verified peer and the sealed
// invitation envelopes to publish, one to the peer's invite topic and one to
// mine. The topic and key material are deterministic for the pair of current
// pre-keys and the conversation id, as in xmtp-js.
func Invite(me *keys.PrivateKeyBundle, peer *keys.PeerBundle, conversationID string, metadata map[string]string, now time.Time) (*Conversation, []*messagev1.Envelope, error) {
	myAddr, theirAddr := me.Address(), peer.Address
	sealSecret, asRecipient, err := me.SharedSecrets(peer, me.CurrentPreKeyPublic())
	if err != nil {
		return nil, nil, fmt.Errorf("invite %s: %w", theirAddr, err)
	}
	secret := sealSecret
	if myAddr < theirAddr {
		secret = asRecipient
	}
	sorted := []string{myAddr, theirAddr}
	sort.Strings(sorted)
	topicHex := hex.EncodeToString(hmacSHA256(secret, []byte(conversationID+sorted[0]+","+sorted[1])))
	c := &Conversation{
		Topic:       keys.ConversationTopic(topicHex),
		Self:        myAddr,
		Peer:        theirAddr,
		ID:          conversationID,
		Metadata:    metadata,
		keyMaterial: hkdf32(secret, invitationSalt, []byte("0|"+sorted[0]+"|"+sorted[1])),
	}
	envs, created, err := SealInvitation(me, peer, c.Invitation(), now)
	if err != nil {
		return nil, nil, err
	}
	c.Created = created
	return c, envs, nil
}

// SealInvitation seals inv from me to a verified peer, as the envelopes to
// publish to the peer's invite topic and to mine, and returns the
// invitation's creation time. Invite uses it for the invitation it derives;
// a caller may seal any invitation, so a receiver cannot trust an
// invitation's topic and key material to belong together with a topic
// others already use: it must check that the key opens the topic's
// messages.
func SealInvitation(me *keys.PrivateKeyBundle, peer *keys.PeerBundle, inv *mc.InvitationV1, now time.Time) ([]*messagev1.Envelope, time.Time, error) {
	myAddr, theirAddr := me.Address(), peer.Address
	sealSecret, _, err := me.SharedSecrets(peer, me.CurrentPreKeyPublic())
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("invite %s: %w", theirAddr, err)
	}
	createdNs := uint64(now.UnixMilli()) * 1_000_000 // xmtp-js keeps milliseconds
	invBytes, err := proto.Marshal(inv)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("encode invitation: %w", err)
	}
	headerBytes, err := proto.Marshal(&mc.SealedInvitationHeaderV1{
		Sender: me.PublicBundle(), Recipient: peer.Signed, CreatedNs: createdNs,
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("encode invitation header: %w", err)
	}
	ct, err := encrypt(invBytes, sealSecret, headerBytes)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("seal invitation: %w", err)
	}
	sealed, err := proto.Marshal(&mc.SealedInvitation{Version: &mc.SealedInvitation_V1{
		V1: &mc.SealedInvitationV1{HeaderBytes: headerBytes, Ciphertext: ct},
	}})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("encode sealed invitation: %w", err)
	}
	envs := []*messagev1.Envelope{
		{ContentTopic: keys.InviteTopic(theirAddr), TimestampNs: createdNs, Message: sealed},
		{ContentTopic: keys.InviteTopic(myAddr), TimestampNs: createdNs, Message: sealed},
	}
	return envs, time.Unix(0, int64(createdNs)), nil
}

// Fingerprint identifies the conversation's key material without revealing
// it: SHA-256 over a fixed label and the key. The two parties of one
// conversation hold the same key material, so the same fingerprint.
func (c *Conversation) Fingerprint() [32]byte {
	return sha256.Sum256(append([]byte("xmtpbridge conversation key\x00"), c.keyMaterial...))
}

// OpenInvitation opens a sealed invitation envelope that I sent or received
// and returns the conversation it starts.
func OpenInvitation(me *keys.PrivateKeyBundle, env *messagev1.Envelope) (*Conversation, error) {
	if env == nil {
		return nil, fmt.Errorf("open invitation: %w", ErrTruncated)
	}
	if len(env.Message) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("open invitation: %w", ErrOversized)
	}
	var sealed mc.SealedInvitation
	if err := proto.Unmarshal(env.Message, &sealed); err != nil {
		return nil, fmt.Errorf("open invitation: %w", ErrTruncated)
	}
	v1 := sealed.GetV1()
	if v1 == nil {
		return nil, fmt.Errorf("open invitation: %w", ErrUnknownVersion)
	}
	var header mc.SealedInvitationHeaderV1
	if err := proto.Unmarshal(v1.HeaderBytes, &header); err != nil {
		return nil, fmt.Errorf("open invitation header: %w", ErrTruncated)
	}
	if header.CreatedNs != env.TimestampNs {
		return nil, fmt.Errorf("open invitation: %w", ErrTimestampMismatch)
	}
	if header.Sender == nil || header.Recipient == nil {
		return nil, fmt.Errorf("open invitation header: %w", ErrTruncated)
	}
	senderID, err1 := keys.PublicKeyOf(header.Sender.IdentityKey)
	recipientID, err2 := keys.PublicKeyOf(header.Recipient.IdentityKey)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("open invitation header: %w", ErrTruncated)
	}
	// Only the peer's bundle needs verifying: my side is checked by finding
	// the named pre-key among mine.
	var secret []byte
	var peer *keys.PeerBundle
	var err error
	switch myID := me.IdentityPublic(); {
	case bytes.Equal(senderID.SerializeUncompressed(), myID):
		if peer, err = keys.VerifyBundle(header.Recipient); err != nil {
			return nil, fmt.Errorf("open invitation: recipient: %w: %w", ErrBadSignature, err)
		}
		secret, err = sharedSecret(me, peer, header.Sender.PreKey, false)
	case bytes.Equal(recipientID.SerializeUncompressed(), myID):
		if peer, err = keys.VerifyBundle(header.Sender); err != nil {
			return nil, fmt.Errorf("open invitation: sender: %w: %w", ErrBadSignature, err)
		}
		secret, err = sharedSecret(me, peer, header.Recipient.PreKey, true)
	default:
		return nil, fmt.Errorf("open invitation: %w", ErrNotParticipant)
	}
	if err != nil {
		return nil, fmt.Errorf("open invitation: %w: %w", ErrNotParticipant, err)
	}
	plain, err := decrypt(v1.Ciphertext, secret, v1.HeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("open invitation: %w", err)
	}
	var inv mc.InvitationV1
	if err := proto.Unmarshal(plain, &inv); err != nil {
		return nil, fmt.Errorf("open invitation body: %w", ErrTruncated)
	}
	c, err := fromInvitation(&inv)
	if err != nil {
		return nil, fmt.Errorf("open invitation: %w", err)
	}
	c.Self, c.Peer, c.Created = me.Address(), peer.Address, time.Unix(0, int64(header.CreatedNs))
	return c, nil
}

// sharedSecret computes the 3DH secret with my pre-key named in the header.
func sharedSecret(me *keys.PrivateKeyBundle, peer *keys.PeerBundle, myPreKey *mc.SignedPublicKey, isRecipient bool) ([]byte, error) {
	pre, err := keys.PublicKeyOf(myPreKey)
	if err != nil {
		return nil, err
	}
	return me.SharedSecret(peer, pre.SerializeUncompressed(), isRecipient)
}
