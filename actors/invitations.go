package actors

// What an identity accepts of the sealed invitations on its invite topic.
//
// Anyone with an XMTP wallet can seal a valid invitation to any identity,
// and the invitation names its topic and key freely: an attacker who read a
// victim's conversation topic from the network can invite a bridge to that
// topic with a key of its own. Such an invitation opens nothing on the
// topic, since the victim's messages are sealed with the real key. So a new
// conversation is joined only if
//   - no identity of this node holds its topic with other key material
//     (the parties of a conversation share one key), and
//   - its topic is empty, or one of its first invitationProbe envelopes
//     opens with the invitation's key.
// A refused invitation is counted in bridge_ingress_invitations_rejected_total
// by reason and logged at most once per invitationLogPeriod per node; its
// cursor moves on. The replay that follows an accepted invitation, and an
// activation's catch-up, write at most replayQuarantineBudget quarantine
// rows: the rest of what they cannot open is only counted.
//
// What this does not stop: an attacker who also publishes messages sealed
// with its own key onto a topic held only on another node passes the
// probe. It gains a conversation with the invited bridge on that topic and
// nothing more: routing is per holder, so the victim keeps receiving
// everything, and the invited bridge rejects the victim's messages as
// envelopes it cannot open.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/xmtp/conversation"
)

// invitationProbe is how many envelopes of an invitation's topic are read
// at most, looking for one its key opens.
const invitationProbe = 64

// replayQuarantineBudget bounds the quarantine rows one replay of a topic
// joined by invitation, or one activation's catch-up, writes.
const replayQuarantineBudget = 16

// invitationLogPeriod spaces the log lines of refused invitations.
const invitationLogPeriod = 10 * time.Second

// Reasons for refusing an invitation, the labels of
// bridge_ingress_invitations_rejected_total.
const (
	// refusedTopicInUse: another identity of this node holds the topic
	// with other key material.
	refusedTopicInUse = "topic_in_use"
	// refusedForeignKey: the topic has messages and none of those probed
	// opens with the invitation's key.
	refusedForeignKey = "foreign_key"
)

var invitationRefusals = []string{refusedTopicInUse, refusedForeignKey}

// notParty labels, in bridge_actor_envelopes_rejected_total, an envelope
// that an identity's key does not open on a topic that another identity of
// the node holds with another key.
const notParty = "not_party"

// errProbed ends a probe's query early.
var errProbed = errors.New("probe done")

// admit reports why the conversation of an invitation self opened must not
// be joined, or "" when it may be.
func (id *identity) admit(ctx context.Context, self *actor.PID, conv *conversation.Conversation) (string, error) {
	if id.rt.ingress.foreignHolder(self, conv.Topic, conv.Fingerprint()) {
		return refusedTopicInUse, nil
	}
	var read int
	opened := false
	err := id.rt.cfg.XMTP.QueryAll(ctx, conv.Topic, 0, 0, func(env *messagev1.Envelope) error {
		read++
		if _, err := conv.Open(env); err == nil {
			opened = true
			return errProbed
		}
		if read >= invitationProbe {
			return errProbed
		}
		return nil
	})
	if err != nil && !errors.Is(err, errProbed) {
		return "", fmt.Errorf("probe topic %s: %w", conv.Topic, err)
	}
	if read > 0 && !opened {
		return refusedForeignKey, nil
	}
	return "", nil
}

// refuse counts a refused invitation and logs it, sampled.
func (id *identity) refuse(conv *conversation.Conversation, reason string) {
	rt := id.rt
	rt.metrics.invitationsRejected.WithLabelValues(reason).Inc()
	if ok, held := rt.invitationLog.allow("", "invitation refused", time.Now()); ok {
		id.a.log.Warn("invitation refused", "topic", conv.Topic, "peer", conv.Peer, "reason", reason, "suppressed", held)
	}
}
