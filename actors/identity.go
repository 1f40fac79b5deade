package actors

// The identity actor (grain kind "bridge", identity = bridge id).
//
// Accepts: *cluster.ClusterInit (activates: lease, keys, conversations,
// topics, catch-up; see lifecycle.go), *actorpb.ActivateRequest (also
// sent after a change of the bridge: it drops the cached configuration),
// *actorpb.NudgeRequest (wakes the forward child), *inboundEnvelope (from
// the ingress), *actorpb.SendRequest (forwarded to the reverse child; these
// three may come from another member), *sweepTick (from the node's
// scheduler, due.go: wakes the forward child), *topicHandled, *flushCursors, *conversationStarted, *fenced.
// Sends: *deliveryTask to forward, *handlerTask to reverse and canary.
// An envelope on a topic it shares with other identities of the node
// reaches each of them; each opens it with its own keys. Invitations are
// admitted as invitations.go says.
// Supervised by: the cluster's placement actor. A failed activation
// answers its request with the error and stops.
// Supervises: forward, reverse and canary, each spawned on first use
// (children.go), with a supervision.Strategy (OneForOne, exponential
// backoff with jitter, poison quarantine).
// On stop or restart: removes its topics from the ingress, writes its
// cursors, waits for running webhook attempts (DrainTimeout), ends its
// context and releases its lease. A restarted grain activates again from
// the store.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/actors/actorpb"
	"github.com/xmtpbridge/bridge/actors/supervision"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// identity is the grain of one bridge identity.
type identity struct {
	rt       *Runtime
	a        *activation
	err      error
	strategy *supervision.Strategy
	// forward, reverse and canary are the children, nil until first use
	// (children.go).
	forward *actor.PID
	reverse *actor.PID
	canary  *actor.PID
	stale   bool
	seen    *recent
	cursors map[string]persistence.Cursor
	// dirty holds cursor moves not yet written; flushPending says a
	// *flushCursors is in the mailbox.
	dirty        map[string]persistence.Cursor
	flushPending bool
	// lastMove is the outcome of the activation's last cursor move handed
	// to the node's cursor writer: batches run in order, so once it is
	// answered every move before it is too (stop waits for it).
	lastMove <-chan error
	// budgeted is set while a replay runs whose quarantine writes are
	// bounded; quarantineLeft is what remains of its budget.
	budgeted       bool
	quarantineLeft int
	// recording orders cursor writes after in-flight deliveries (commit.go).
	recording recordState
}

// HandleFailure implements actor.SupervisorStrategy for the children.
func (id *identity) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
	rs *actor.RestartStatistics, reason interface{}, message interface{}) {
	if id.strategy == nil {
		sup.StopChildren(child)
		return
	}
	id.strategy.HandleFailure(system, sup, child, rs, reason, message)
}

func (id *identity) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ClusterInit:
		id.err = id.activate(ctx, m.Identity.Identity)
		if id.err != nil {
			// The request that activated the grain may not be in the
			// mailbox yet: it gets the error, then the grain stops. A
			// grain nobody asks stops on its own.
			self, root := ctx.Self(), id.rt.root
			time.AfterFunc(5*time.Second, func() { root.Poison(self) })
		}
	case *actorpb.ActivateRequest:
		// Every change of the bridge over REST ends with this request to
		// its owner (BridgeUpdated), so the cached configuration goes.
		if id.a != nil {
			id.rt.forgetBridge(id.a.bridgeID)
		}
		err := id.err
		if err == nil && (id.a == nil || id.stale) {
			err = ErrNotActive
		}
		ctx.Respond(&actorpb.ActivateResponse{Error: errorToWire(err)})
		if err != nil {
			ctx.Poison(ctx.Self())
		}
	case *actorpb.StopRequest:
		ctx.Respond(&actorpb.StopResponse{})
		ctx.Poison(ctx.Self())
	case *actorpb.NudgeRequest, *sweepTick:
		// From another member, or from this node's scheduler.
		if id.a != nil && !id.stale {
			ctx.Send(id.forwardChild(ctx), &sweepTick{})
		}
	case *inboundEnvelope:
		if id.a != nil && !id.stale {
			id.handleEnvelope(ctx, m.env, m.live)
		}
	case *actorpb.SendRequest:
		if id.a == nil || id.stale {
			err := id.err
			if err == nil {
				err = ErrNotActive
			}
			ctx.Respond(&actorpb.SendResponse{Error: errorToWire(fmt.Errorf("send: %w", err))})
			ctx.Poison(ctx.Self())
			return
		}
		ctx.Forward(id.reverseChild(ctx))
	case *deliveryRecorded:
		id.delivered(ctx, m)
	case *topicHandled:
		id.saveCursor(m.topic, m.ts, m.digest)
	case *flushCursors:
		_ = id.flushCursors()
	case *conversationStarted:
		if id.a != nil {
			id.rt.ingress.addConversations(ctx.Self(), m.conv)
			id.readStarted(ctx, m.conv)
		}
	case *fenced:
		if m.epoch == 0 || (id.a != nil && id.a.currentLease().Epoch == m.epoch) {
			id.goStale(ctx)
		}
	case *actor.Stopping, *actor.Restarting:
		// A restart of the grain itself (a bug in this file) activates
		// it again from the store, so it first gives everything up.
		id.stop()
	case *actor.Stopped:
		id.rt.metrics.stopsIdentity.Inc()
	}
}

// invitePrefix starts every invite topic (keys.InviteTopic).
const invitePrefix = "/xmtp/0/invite-"

// handleEnvelope handles an envelope of one of the identity's topics; live
// says it came from the node subscription (early.go).
func (id *identity) handleEnvelope(ctx actor.Context, env *messagev1.Envelope, live bool) {
	a := id.a
	taken := time.Now()
	// The prefix first: the invite topic's checksummed address costs a
	// hash, and nearly every envelope is a conversation's.
	if t := env.GetContentTopic(); strings.HasPrefix(t, invitePrefix) && t == keys.InviteTopic(a.address) {
		if err := id.handleInvitation(ctx, env, true); err != nil {
			a.log.Error("handle invitation", "error", err)
		}
		return
	}
	conv := a.convs.get(env.GetContentTopic())
	if conv == nil {
		return
	}
	if a.own.Take(env.Message) {
		return // its own reply, as below once opened
	}
	msg, err := conv.Open(env)
	if err != nil {
		if errors.Is(err, conversation.ErrTampered) && id.rt.ingress.foreignHolder(ctx.Self(), conv.Topic, conv.Fingerprint()) {
			// Another identity of this node holds the topic with other
			// key material (a conversation stored before invitations
			// were checked): the envelope may be sealed for it, which
			// is no fault of anyone's. It is counted, not quarantined.
			id.rt.metrics.rejected.WithLabelValues(notParty).Inc()
		} else {
			id.reject(env, err)
		}
		id.saveCursor(env.ContentTopic, env.TimestampNs, env.Message)
		return
	}
	if msg.Sender == a.address || !id.seen.add(msg.ID) {
		return
	}
	task := &handlerTask{msg: msg, raw: env.Message}
	if a.log.Enabled(a.ctx, slog.LevelDebug) { // the attributes cost allocations even when dropped
		a.log.Debug("inbound message", "topic", msg.Topic, "sender", msg.Sender, "message", msg.ID)
	}
	switch {
	case id.rt.cfg.CanaryAddress != "" && strings.EqualFold(msg.Sender, id.rt.cfg.CanaryAddress):
		id.rt.metrics.messagesIn.WithLabelValues("canary").Inc()
		ctx.Send(id.canaryChild(ctx), task)
	case id.rt.cfg.APIAddress != "" && strings.EqualFold(msg.Sender, id.rt.cfg.APIAddress):
		id.rt.metrics.messagesIn.WithLabelValues("reverse").Inc()
		ctx.Send(id.reverseChild(ctx), task)
	default:
		id.forwardMessage(ctx, env, msg, taken, live)
	}
}

// handleInvitation opens an invitation; a new conversation is stored,
// subscribed and queried from its start.
func (id *identity) handleInvitation(ctx actor.Context, env *messagev1.Envelope, live bool) error {
	a := id.a
	conv, err := conversation.OpenInvitation(a.bundle, env)
	if err != nil {
		id.reject(env, err)
		id.saveCursor(env.ContentTopic, env.TimestampNs, env.Message)
		return nil
	}
	if a.convs.get(conv.Topic) != nil {
		id.saveCursor(env.ContentTopic, env.TimestampNs, env.Message)
		return nil
	}
	octx, cancel := context.WithTimeout(a.ctx, id.rt.cfg.ActivationTimeout)
	defer cancel()
	reason, err := id.admit(octx, ctx.Self(), conv)
	if err != nil {
		return err
	}
	if reason != "" {
		id.refuse(conv, reason)
		id.saveCursor(env.ContentTopic, env.TimestampNs, env.Message)
		return nil
	}
	// The conversation is stored before the invite topic's cursor moves
	// past its invitation, so a later activation restores it.
	if err := a.convs.save(octx, conv); err != nil {
		return err
	}
	a.convs.put(conv)
	id.rt.ingress.addConversations(ctx.Self(), conv)
	id.saveCursor(env.ContentTopic, env.TimestampNs, env.Message)
	if !live {
		// The activation's catch-up queries every known topic next.
		return nil
	}
	return id.replayBounded(ctx, octx, conv.Topic, 0)
}

// readStarted reads a conversation the identity started from a little
// before its creation. Its topic follows from both parties' keys, so a
// peer that started it at the same moment may have written to it already;
// and when another identity of this node holds the topic (that very peer,
// say), the node subscription carried it before this identity joined and
// back-fills nothing for it.
func (id *identity) readStarted(ctx actor.Context, conv *conversation.Conversation) {
	a := id.a
	octx, cancel := context.WithTimeout(a.ctx, id.rt.cfg.ActivationTimeout)
	defer cancel()
	start := max(conv.Created.UnixNano()-int64(replaySkew), 1)
	if err := id.replayBounded(ctx, octx, conv.Topic, uint64(start)); err != nil && a.ctx.Err() == nil {
		a.log.Warn("read started conversation", "topic", conv.Topic, "error", err)
	}
}

// forwardMessage records a delivery, then moves the cursor, then hands the
// delivery to the forward child; the last two happen when the committer
// has recorded it (commit.go). Its webhook call may start meanwhile
// (early.go). taken is when the identity took env, from which its stages
// are timed (stages.go); live says env came from the node subscription.
func (id *identity) forwardMessage(ctx actor.Context, env *messagev1.Envelope, msg *conversation.Message, taken time.Time, live bool) {
	a := id.a
	b, ok := id.rt.bridgeConfig(a.ctx, a.bridgeID)
	if !ok {
		return
	}
	if !allowed(b.Forward, msg.Sender) || (b.Forward.URL == "" && !id.rt.answers(a.address)) {
		id.saveCursor(env.ContentTopic, env.TimestampNs, env.Message)
		return
	}
	id.rt.metrics.messagesIn.WithLabelValues("forward").Inc()
	payload, err := encodePayload(msg)
	if err != nil {
		id.reject(env, err)
		id.saveCursor(env.ContentTopic, env.TimestampNs, env.Message)
		return
	}
	lease := a.currentLease()
	clock := newStageClock(id.rt.metrics, taken)
	clock.mark(stageOpen)
	// Every forwarded message is remembered while it is fresh, however
	// it came, so that it never starts early again (early.go).
	fresh, closeUntil := id.rt.fresh.note(a.bridgeID, msg.ID, msg.Sent, time.Now())
	if closeUntil != 0 {
		a.early.close(closeUntil)
	}
	early := id.earlyFor(msg, payload, clock, live, fresh)
	if early != nil {
		// Before the record: the forward child decides before its answer.
		ctx.Send(id.forwardChild(ctx), &earlyTask{e: early})
	}
	id.recordDelivery(ctx, env, msg, clock, early, persistence.NewDelivery{
		BridgeID: a.bridgeID, MessageID: msg.ID, Topic: msg.Topic, SenderAddress: msg.Sender,
		SentNs: sentNs(msg.Sent), Payload: payload, Lease: &lease,
	})
}

// sentNs is a message's creation time as a delivery stores it. The header
// carries it as unsigned nanoseconds, which the sender chooses: one past
// the largest signed value would be negative here, a row the table refuses
// each time it is tried again, which would hold its topic's cursor back.
func sentNs(sent time.Time) int64 { return max(sent.UnixNano(), 0) }

func (id *identity) reject(env *messagev1.Envelope, err error) {
	a := id.a
	reason := conversation.Reason(err)
	id.rt.metrics.rejected.WithLabelValues(reason).Inc()
	if id.budgeted {
		// A replay writes a bounded number of rows; the rest is counted.
		if id.quarantineLeft <= 0 {
			return
		}
		id.quarantineLeft--
	}
	// Sampled: anyone can send junk (see quarantine.go).
	id.rt.quarantineLog.log(a.log, slog.LevelWarn, a.bridgeID, reason, "rejected envelope",
		"topic", env.GetContentTopic(), "reason", reason, "error", err)
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	if qerr := id.rt.cfg.Store.Quarantine(ctx, a.bridgeID, env.GetContentTopic(), env.GetMessage(), "rejected: "+reason); qerr != nil {
		id.rt.quarantineLog.log(a.log, slog.LevelError, a.bridgeID, "store_error", "quarantine envelope", "error", qerr)
	}
}

// quarantine keeps a poison message and takes it out of the pipeline.
func (id *identity) quarantine(q supervision.Quarantined) {
	a := id.a
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reason := fmt.Sprintf("poison message in %s after %d failures: %s", q.Handler, q.Failures, q.Reason)
	if len(reason) > 1000 {
		reason = reason[:1000]
	}
	switch m := q.Message.(type) {
	case *deliveryTask:
		// The payload is message content: it stays sealed in the
		// delivery, which becomes a dead letter, and is not copied here.
		reason = fmt.Sprintf("%s (delivery %d, message %s)", reason, m.delivery.ID, m.delivery.MessageID)
		if err := id.rt.cfg.Store.Quarantine(ctx, a.bridgeID, m.delivery.Topic, nil, reason); err != nil {
			a.log.Error("quarantine delivery", "error", err)
		}
		if err := id.rt.cfg.Store.RecordLeasedAttempt(ctx, a.currentLease(), m.delivery.ID, persistence.DeliveryAttempt{Error: "quarantined"},
			persistence.DeliveryDead, time.Now()); err != nil {
			a.noteFenced(err)
			a.log.Error("record quarantined delivery", "error", err)
		}
		id.rt.metrics.deadLetters.Inc()
	case *handlerTask:
		if err := id.rt.cfg.Store.Quarantine(ctx, a.bridgeID, m.msg.Topic, m.raw, reason); err != nil {
			a.log.Error("quarantine message", "error", err)
		}
		id.rt.root.Send(a.self, &topicHandled{topic: m.msg.Topic, ts: m.msg.EnvelopeTimestamp, digest: m.raw})
	}
}

// allowed applies a bridge's sender allow-list and deny-list.
func allowed(f persistence.ForwardConfig, sender string) bool {
	for _, d := range f.DenySenders {
		if strings.EqualFold(d, sender) {
			return false
		}
	}
	if len(f.AllowSenders) == 0 {
		return true
	}
	for _, al := range f.AllowSenders {
		if strings.EqualFold(al, sender) {
			return true
		}
	}
	return false
}
