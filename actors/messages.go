package actors

import (
	"errors"
	"strconv"
	"time"

	"github.com/xmtpbridge/bridge/cluster"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
)

// ErrPeerNotOnNetwork reports a send to an address that has no valid
// contact bundle.
var ErrPeerNotOnNetwork = errors.New("peer is not on the XMTP network")

// ErrNotActive reports a call about an identity this node does not host.
var ErrNotActive = errors.New("identity not active")

// ErrDisabled reports an activation of a bridge its owner disabled.
var ErrDisabled = errors.New("bridge disabled")

// ErrStopped reports a call on a runtime that is stopping or stopped: it
// is cluster.ErrStopped, so the cluster's placement and drain see it too.
var ErrStopped = cluster.ErrStopped

// The messages of the identity actor and its children below travel between
// actors of one process only; none is serialised. Requests that may come
// from another member (activate, send, nudge, node info, drain) are the
// protobuf messages of package actorpb.

// flushCursors makes the identity actor write the cursors it moved.
type flushCursors struct{}

// sweepTick makes the forward child look for due deliveries and replies.
type sweepTick struct{}

// topicHandled tells the identity actor that a reverse or canary message
// is handled, so its topic's cursor may move past it.
type topicHandled struct {
	topic  string
	ts     uint64
	digest []byte
}

// conversationStarted tells the identity actor that a child started (and
// stored) a conversation whose topic must join the node subscription.
type conversationStarted struct {
	conv *conversation.Conversation
}

// fenced tells the identity actor that its lease is lost: a child's write
// was refused, or the node's lease renewer found its node lease run out or
// its lease taken over. epoch names
// the lease it is about; zero means the current one.
type fenced struct{ epoch int64 }

// deliveryTask is one delivery for the forward child. Its key is the
// delivery id, so a delivery that keeps killing the child is quarantined.
type deliveryTask struct {
	delivery persistence.Delivery
	// start is what the delivery's first attempt starts from, when the
	// round trip that created the row read it (persistence.Recorded), at
	// startAt: the attempt then makes no StartAttempt read of its own. It
	// is used only by an attempt that begins at once, within maxStartAge
	// of the read, of a delivery the forward child has not attempted yet
	// (forwarder.take); any other attempt reads the row and the secrets
	// as they are when it begins.
	start   *persistence.AttemptStart
	startAt time.Time
	// clock times the stages of the attempt that starts from start
	// (stages.go); nil for others.
	clock *stageClock
}

// Key implements supervision.Keyed.
func (t *deliveryTask) Key() string { return "delivery:" + strconv.FormatInt(t.delivery.ID, 10) }

// attemptDone tells the forward child that an attempt ended.
type attemptDone struct {
	// deliveryID is 0 for an early attempt whose result was dropped.
	deliveryID int64
	// early is the message id of an early attempt (early.go).
	early string
}

// handlerTask is one decrypted message for the reverse or canary child.
type handlerTask struct {
	msg *conversation.Message
	// raw is the envelope's message bytes, kept for quarantine.
	raw []byte
}

// Key implements supervision.Keyed.
func (t *handlerTask) Key() string { return "message:" + t.msg.ID }
