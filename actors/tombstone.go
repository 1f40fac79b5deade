package actors

// The tombstone responder: one per node, for every deleted bridge whose
// tombstone the store keeps (BRIDGE_TOMBSTONE_FOR).
//
// Accepts: *actor.Started, *tombstoneRefresh (its own timer, every
// ReconcileInterval), *inboundEnvelope (from the ingress, on the invite and
// conversation topics of the tombstones).
// Sends: nothing to other actors; it publishes, as the deleted identity,
// one TombstoneMessage per conversation through the Transport, after the
// store granted the conversation's claim (so one node answers it).
// Supervised by: the root context (protoactor's default strategy).
// On restart: loads the tombstones again; the ingress keeps routing their
// topics to it meanwhile.
//
// An idle tombstone costs one routing entry per topic: no goroutine, timer
// or query of its own. Its keys stay sealed in the store and are opened
// only for an envelope on one of its topics; the refresh also deletes the
// expired tombstones, which erases their keys.

import (
	"context"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// TombstoneStore is what the tombstone responder needs of the store.
type TombstoneStore interface {
	LiveTombstones(ctx context.Context) ([]persistence.Tombstone, error)
	TombstoneKey(ctx context.Context, bridgeID string) ([]byte, error)
	TombstoneConversation(ctx context.Context, bridgeID, topic string) (persistence.Conversation, error)
	ClaimTombstoneReply(ctx context.Context, bridgeID, topic string) (bool, error)
	PurgeTombstones(ctx context.Context) (int, error)
}

var _ TombstoneStore = (*persistence.Store)(nil)

// TombstoneActorName is the name of the node's tombstone responder.
const TombstoneActorName = "tombstones"

type tombstoneRefresh struct{}

// tombstoneTopic says whose topic an envelope came on.
type tombstoneTopic struct {
	bridgeID, address string
	invite            bool
	deletedAt         time.Time
}

type tombstones struct {
	rt      *Runtime
	store   TombstoneStore
	byTopic map[string]tombstoneTopic
	timer   *time.Timer
	started time.Time
}

func (ts *tombstones) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ts.started = time.Now()
		ts.refresh(ctx)
	case *tombstoneRefresh:
		ts.refresh(ctx)
	case *inboundEnvelope:
		ts.answer(m.env)
	case *actor.Stopping:
		if ts.timer != nil {
			ts.timer.Stop()
		}
		topics := make([]string, 0, len(ts.byTopic))
		for t := range ts.byTopic {
			topics = append(topics, t)
		}
		ts.rt.ingress.remove(ctx.Self(), topics...)
	}
}

// refresh deletes expired tombstones, loads the live ones and routes their
// topics here, then schedules the next refresh.
func (ts *tombstones) refresh(ctx actor.Context) {
	defer func() {
		self, root := ctx.Self(), ts.rt.root
		ts.timer = time.AfterFunc(ts.rt.cfg.ReconcileInterval, func() { root.Send(self, &tombstoneRefresh{}) })
	}()
	qctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := ts.store.PurgeTombstones(qctx); err != nil {
		ts.rt.log.Warn("purge tombstones", "error", err)
	} else if n > 0 {
		ts.rt.log.Info("tombstones expired, keys erased", "count", n)
	}
	live, err := ts.store.LiveTombstones(qctx)
	if err != nil {
		ts.rt.log.Warn("load tombstones", "error", err)
		return
	}
	next := make(map[string]tombstoneTopic, len(ts.byTopic))
	for _, t := range live {
		next[keys.InviteTopic(t.Address)] = tombstoneTopic{bridgeID: t.BridgeID, address: t.Address, invite: true, deletedAt: t.DeletedAt}
		for _, topic := range t.Topics {
			next[topic] = tombstoneTopic{bridgeID: t.BridgeID, address: t.Address, deletedAt: t.DeletedAt}
		}
	}
	var added, gone []string
	for t := range next {
		if _, ok := ts.byTopic[t]; !ok {
			added = append(added, t)
		}
	}
	for t := range ts.byTopic {
		if _, ok := next[t]; !ok {
			gone = append(gone, t)
		}
	}
	ts.byTopic = next
	if len(added) > 0 {
		ts.rt.ingress.add(ctx.Self(), added...)
		// What arrived between the deletion and this refresh: answered
		// from a query of each new topic of a bridge deleted while this
		// responder runs (not of every tombstone at start), and the
		// claims keep it at one answer per conversation.
		for _, topic := range added {
			if next[topic].deletedAt.Before(ts.started.Add(-ts.rt.cfg.ReconcileInterval)) {
				continue
			}
			since := uint64(next[topic].deletedAt.Add(-time.Second).UnixNano())
			err := ts.rt.cfg.XMTP.QueryAll(qctx, topic, since, 0, func(env *messagev1.Envelope) error {
				ts.answer(env)
				return nil
			})
			if err != nil {
				ts.rt.log.Warn("query tombstone topic", "topic", topic, "error", err)
			}
		}
	}
	if len(gone) > 0 {
		ts.rt.ingress.remove(ctx.Self(), gone...)
	}
}

// answer sends the tombstone line into the conversation env belongs to,
// once: an invitation opens a new conversation, a message on a kept
// conversation is checked to come from the peer.
func (ts *tombstones) answer(env *messagev1.Envelope) {
	target, ok := ts.byTopic[env.GetContentTopic()]
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := ts.store.TombstoneKey(ctx, target.bridgeID)
	if err != nil {
		return // expired meanwhile, or the store is down: nothing to say
	}
	bundle, err := keys.UnmarshalPrivateKeyBundle(raw)
	if err != nil {
		ts.rt.log.Error("decode tombstone key", "bridge", target.bridgeID, "error", err)
		return
	}
	var conv *conversation.Conversation
	if target.invite {
		if conv, err = conversation.OpenInvitation(bundle, env); err != nil {
			return // junk on the invite topic
		}
	} else {
		c, err := ts.store.TombstoneConversation(ctx, target.bridgeID, env.GetContentTopic())
		if err != nil {
			return
		}
		if conv, err = conversation.RestoreBytes(target.address, c.PeerAddress, time.Unix(0, c.CreatedNs), c.KeyMaterial); err != nil {
			return
		}
		msg, err := conv.Open(env)
		if err != nil || strings.EqualFold(msg.Sender, target.address) {
			return // junk, or the identity's own message
		}
	}
	first, err := ts.store.ClaimTombstoneReply(ctx, target.bridgeID, conv.Topic)
	if err != nil {
		ts.rt.log.Warn("claim tombstone reply", "bridge", target.bridgeID, "error", err)
		return
	}
	if !first {
		return
	}
	out, err := conv.Seal(bundle, content.Text(ts.rt.cfg.TombstoneMessage), time.Now())
	if err != nil {
		ts.rt.log.Error("seal tombstone reply", "bridge", target.bridgeID, "error", err)
		return
	}
	if err := ts.rt.cfg.XMTP.Publish(ctx, keys.NewAuthorizer(bundle), out); err != nil {
		ts.rt.log.Warn("publish tombstone reply", "bridge", target.bridgeID, "error", err)
		return
	}
	ts.rt.log.Info("tombstone answered", "bridge", target.bridgeID, "topic", conv.Topic)
}
