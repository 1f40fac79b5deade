package actors

// Subscriptions and broadcasts, run by the forward child.
//
// A message whose text is the bridge's subscribe or unsubscribe word (when
// its subscriptions are on) is a command, not a message for the owner: the
// forward child records the subscription, then completes the delivery with
// a confirmation reply through the outbox, so a redelivered command is
// confirmed once.
//
// On each sweep of a bridge whose broadcasts_pending hint is up (read with
// the bridge's cached configuration: an idle bridge costs no query), the
// forward child takes the next batch of copies the broadcast rate allows,
// starts the conversations it lacks, seals each copy and queues it into
// the outbox in one transaction with the copy's status, then hands it to
// the batched reply publisher (replies.go). A copy is queued once whatever crashes; the outbox publishes it
// until it is out, byte for byte the same envelope each time.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
)

// DefaultBroadcastRate is how many broadcast copies a bridge queues a
// second by default.
const DefaultBroadcastRate = 50

// The confirmations of the subscribe commands.
const (
	subscribedReply   = "You are subscribed. Send %s to stop."
	unsubscribedReply = "You are unsubscribed. Send %s to subscribe again."
	fullReply         = "This bridge has as many subscribers as it can take; try again later."
)

// subscriptionCommand handles d when its text is a subscribe command and
// reports whether it was one.
func (a *activation) subscriptionCommand(b persistence.Bridge, d persistence.Delivery, text string) bool {
	cmd := b.Subscriptions.Command(text)
	if cmd == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	reply := fmt.Sprintf(subscribedReply, b.Subscriptions.UnsubscribeWord)
	if cmd < 0 {
		reply = fmt.Sprintf(unsubscribedReply, b.Subscriptions.SubscribeWord)
	}
	err := a.rt.cfg.Store.SetSubscribed(ctx, a.currentLease(), a.bridgeID, d.SenderAddress, cmd > 0)
	switch {
	case errors.Is(err, persistence.ErrQuotaExceeded):
		reply = fullReply
	case err != nil:
		a.noteFenced(err)
		a.log.Warn("set subscription", "delivery", d.ID, "error", err)
		return true // the delivery stays due and is tried again
	}
	a.complete(d, persistence.DeliveryAttempt{}, webhook.Result{Outcome: webhook.OutcomeDelivered, HasReply: true, Reply: reply}, isAutoReply(d.Payload), nil)
	return true
}

// fanOut queues the next batch of broadcast copies of the bridge.
func (a *activation) fanOut(ctx context.Context, b persistence.Bridge) {
	if !b.BroadcastsPending {
		return
	}
	st := a.rt.cfg.Store
	copies, more, err := st.BroadcastBatch(ctx, a.currentLease(), a.bridgeID, a.rt.cfg.BroadcastRate)
	if err != nil {
		a.noteFenced(err)
		if a.ctx.Err() == nil {
			a.log.Warn("load broadcast batch", "error", err)
		}
		return
	}
	if !more {
		if err := st.FinishBroadcasts(ctx, a.bridgeID); err != nil {
			a.log.Warn("finish broadcasts", "error", err)
		}
		a.rt.forgetBridge(a.bridgeID)
		return
	}
	// The copies are independent: a few at a time overlap their round
	// trips (the conversations they lack are still started one at a
	// time, conversations.start).
	work := make(chan persistence.BroadcastCopy)
	var wg sync.WaitGroup
	for range min(broadcastWorkers, len(copies)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				a.queueCopy(ctx, c)
			}
		}()
	}
	for _, c := range copies {
		if ctx.Err() != nil {
			break
		}
		work <- c
	}
	close(work)
	wg.Wait()
}

// broadcastWorkers is how many copies of a batch are queued at once.
const broadcastWorkers = 8

// queueCopy queues and publishes one recipient's copy, or records why it
// cannot be sent.
func (a *activation) queueCopy(ctx context.Context, c persistence.BroadcastCopy) {
	st := a.rt.cfg.Store
	conv, created, err := a.convs.start(ctx, c.Address, time.Now())
	if err != nil {
		if ctx.Err() == nil {
			if ferr := st.FailBroadcastCopy(ctx, a.currentLease(), c, err.Error()); ferr != nil {
				a.noteFenced(ferr)
			}
		}
		return
	}
	if created {
		a.rt.root.Send(a.self, &conversationStarted{conv: conv})
	}
	env, err := conv.Seal(a.bundle, content.Text(c.Content), time.Now())
	if err != nil {
		a.log.Error("seal broadcast copy", "broadcast", c.BroadcastID, "error", err)
		return
	}
	raw, err := proto.Marshal(env)
	if err != nil {
		a.log.Error("encode broadcast copy", "broadcast", c.BroadcastID, "error", err)
		return
	}
	r := persistence.Reply{BridgeID: a.bridgeID, Topic: conv.Topic, TimestampNs: int64(env.TimestampNs), Envelope: raw}
	replyID, ok, err := st.QueueBroadcastCopy(ctx, a.currentLease(), c, r, conversation.MessageID(env.Message))
	if err != nil {
		a.noteFenced(err)
		a.log.Warn("queue broadcast copy", "broadcast", c.BroadcastID, "error", err)
		return
	}
	if ok {
		// Queued under the lease just checked; published with the other
		// copies and replies waiting, many to a call (replies.go).
		a.publishSoon(replyID, "", env, nil) // a copy of its own, in no conversation's order
	}
}
