// Package conversation implements XMTP V2 conversations as pure functions
// over envelopes: sealing and opening invitations, and sealing and opening
// MessageV2 payloads on a conversation topic. Nothing here touches the
// network, so one subscription can route envelopes for many identities.
package conversation

import (
	"errors"
	"sync/atomic"
)

// ErrTampered reports ciphertext that fails AES-GCM authentication: the
// payload or its header was changed, or it was sealed under other keys.
var ErrTampered = errors.New("ciphertext authentication failed")

// ErrBadSignature reports a sender bundle or message signature that does not
// verify.
var ErrBadSignature = errors.New("bad signature")

// ErrTimestampMismatch reports an invitation whose envelope timestamp is not
// its header's creation time.
var ErrTimestampMismatch = errors.New("invitation timestamp mismatch")

// ErrTruncated reports an envelope whose bytes are cut short or otherwise do
// not decode.
var ErrTruncated = errors.New("truncated or malformed envelope")

// ErrOversized reports an envelope larger than MaxEnvelopeBytes.
var ErrOversized = errors.New("envelope too large")

// ErrUnknownVersion reports a message, invitation or ciphertext version this
// package does not implement.
var ErrUnknownVersion = errors.New("unknown version")

// ErrTopicMismatch reports a message whose header names another topic than
// the conversation's.
var ErrTopicMismatch = errors.New("topic mismatch")

// ErrNotParticipant reports an invitation that names neither party as me, or
// a message signed by someone outside the conversation.
var ErrNotParticipant = errors.New("not a participant")

// ErrBadContent reports a message whose decrypted content cannot be decoded.
var ErrBadContent = errors.New("undecodable content")

// MaxEnvelopeBytes bounds the message bytes of an envelope this package
// opens.
const MaxEnvelopeBytes = 1 << 20

// reasons lists the rejection classes in a fixed order.
var reasons = []struct {
	err  error
	name string
}{
	{ErrTampered, "tampered"},
	{ErrBadSignature, "bad_signature"},
	{ErrTimestampMismatch, "timestamp_mismatch"},
	{ErrTruncated, "truncated"},
	{ErrOversized, "oversized"},
	{ErrUnknownVersion, "unknown_version"},
	{ErrTopicMismatch, "topic_mismatch"},
	{ErrNotParticipant, "not_participant"},
	{ErrBadContent, "bad_content"},
}

// Reason returns a short stable label for a rejection error, suitable as a
// metric label: "tampered", "bad_signature", ..., or "other".
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}

// Rejections counts rejected envelopes by reason. The zero value is ready to
// use and it is safe for concurrent use.
type Rejections struct {
	counts [10]atomic.Uint64 // one per reason, then "other"
}

// Record counts err under its reason. A nil err is ignored.
func (r *Rejections) Record(err error) {
	if err == nil || r == nil {
		return
	}
	for i, re := range reasons {
		if errors.Is(err, re.err) {
			r.counts[i].Add(1)
			return
		}
	}
	r.counts[len(reasons)].Add(1)
}

// Snapshot returns the counts by reason label.
func (r *Rejections) Snapshot() map[string]uint64 {
	out := make(map[string]uint64, len(reasons)+1)
	for i, re := range reasons {
		out[re.name] = r.counts[i].Load()
	}
	out["other"] = r.counts[len(reasons)].Load()
	return out
}
