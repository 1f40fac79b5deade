package actors

// The forward child.
//
// Accepts: *deliveryTask (from the identity actor or from a sweep),
// *attemptDone (from its own attempt goroutines), *sweepTick (from the
// identity actor, on behalf of the node's scheduler, due.go, or a nudge).
// It is spawned on first use (children.go) and has no timer: the node's
// scheduler wakes it when its bridge has work due.
// Sends: nothing to other actors; it calls the owner's endpoint through the
// Deliverer, records attempts, puts replies in the outbox and publishes them.
// Supervised by: the identity actor's supervision.Strategy. A delivery that
// keeps making it fail is quarantined and becomes a dead letter.
// On restart: it loses its queue of deliveries waiting for a concurrency
// slot; the sweep it runs when it starts again finds them in the store,
// because every delivery it handles is already a durable row. Attempts in
// flight belong to the activation and carry on.

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/persistence"
)

type forwarder struct {
	a       *activation
	running int
	queue   []queuedAttempt
	queued  map[int64]bool
	// again holds deliveries whose task came while an attempt of them
	// ran (a sweep can find it due before the attempt's end arrives);
	// they are taken once it ends. It holds at most one per running
	// attempt.
	again map[int64]persistence.Delivery
	// againEarly holds, by message id, the deliveries whose task came
	// while the message's early attempt ran, before its row was known
	// to it (early.go); they are taken once it ends.
	againEarly map[string]persistence.Delivery
	// more is set when the last sweep found a full page of due
	// deliveries: the next page is loaded as soon as the queue drains
	// (a recovery flush of a large backlog).
	more bool
	// attempted and attemptedBefore hold the deliveries whose attempts
	// ended in this and the previous period of maxStartAge (from
	// attemptedSince): a delivery a sweep found and attempted before its
	// identity's task came must not be attempted again from the task's
	// recorded start, which still says it is pending, and a start older
	// than maxStartAge is not used anyway. They hold about a second of the
	// bridge's attempts, never more.
	attempted, attemptedBefore map[int64]struct{}
	attemptedSince             time.Time
}

// maxStartAge bounds how old a recorded start may be when its attempt
// begins: the row, its lease and the bridge's secrets were read then, and
// a secret rotated since must sign the request.
const maxStartAge = 500 * time.Millisecond

func (f *forwarder) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Send(ctx.Self(), &sweepTick{})
	case *actor.Stopped:
		f.a.rt.metrics.stopsForward.Inc()
	case *deliveryTask:
		if hook := f.a.rt.cfg.OnForward; hook != nil {
			hook(m.delivery)
		}
		start, clock := m.start, m.clock
		if f.wasAttempted(m.delivery.ID) || time.Since(m.startAt) > maxStartAge {
			start, clock = nil, nil // read the row again: see maxStartAge, attempted
		}
		f.take(ctx, m.delivery, start, clock)
	case *earlyTask:
		f.startEarly(ctx, m.e) // early.go
	case *attemptDone:
		f.running--
		if m.deliveryID != 0 {
			f.a.running.remove(m.deliveryID)
			f.noteAttempted(m.deliveryID)
		}
		if m.early != "" {
			f.a.earlyMessages.remove(m.early)
			if d, ok := f.againEarly[m.early]; ok {
				delete(f.againEarly, m.early)
				f.take(ctx, d, nil, nil)
			}
		}
		if d, ok := f.again[m.deliveryID]; ok && m.deliveryID != 0 {
			delete(f.again, m.deliveryID)
			f.take(ctx, d, nil, nil)
		}
		f.next(ctx)
		if f.more && len(f.queue) == 0 {
			f.more = false
			ctx.Send(ctx.Self(), &sweepTick{})
		}
	case *sweepTick:
		f.sweep(ctx)
	}
}

// queuedAttempt is a delivery waiting for a concurrency slot, and what its
// attempt starts from if it was read with the row (deliveryTask.start).
type queuedAttempt struct {
	d     persistence.Delivery
	start *persistence.AttemptStart
	clock *stageClock
}

// noteAttempted remembers that an attempt of the delivery ended.
func (f *forwarder) noteAttempted(id int64) {
	now := time.Now()
	if age := now.Sub(f.attemptedSince); age >= maxStartAge {
		f.attemptedBefore, f.attempted, f.attemptedSince = f.attempted, nil, now
		if age >= 2*maxStartAge {
			f.attemptedBefore = nil // the last period is older still
		}
	}
	if f.attempted == nil {
		f.attempted = map[int64]struct{}{}
	}
	f.attempted[id] = struct{}{}
}

// wasAttempted reports whether an attempt of the delivery ended within
// the last maxStartAge, at least.
func (f *forwarder) wasAttempted(id int64) bool {
	if time.Since(f.attemptedSince) >= 2*maxStartAge {
		f.attempted, f.attemptedBefore = nil, nil
		return false
	}
	_, now := f.attempted[id]
	_, before := f.attemptedBefore[id]
	return now || before
}

// take starts an attempt of d now, or queues it for a free slot; start,
// if not nil, is used only by an attempt that begins now, and so is clock,
// which times its stages.
func (f *forwarder) take(ctx actor.Context, d persistence.Delivery, start *persistence.AttemptStart, clock *stageClock) {
	if f.a.earlyMessages.has(d.MessageID) {
		// Its message's early attempt runs: once it ends, the row tells
		// what is left to do.
		if f.againEarly == nil {
			f.againEarly = map[string]persistence.Delivery{}
		}
		f.againEarly[d.MessageID] = d
		return
	}
	if f.a.running.has(d.ID) {
		if f.again == nil {
			f.again = map[int64]persistence.Delivery{}
		}
		f.again[d.ID] = d
		return
	}
	if f.queued[d.ID] {
		return
	}
	if f.queued == nil {
		f.queued = map[int64]bool{}
	}
	f.queued[d.ID] = true
	f.queue = append(f.queue, queuedAttempt{d: d, start: start, clock: clock})
	f.next(ctx)
	if start != nil && len(f.queue) > 0 && f.queue[len(f.queue)-1].start == start {
		// It waits for a slot: its turn reads the row and the secrets
		// again, as they are then.
		f.queue[len(f.queue)-1].start, f.queue[len(f.queue)-1].clock = nil, nil
	}
}

// next starts queued attempts while the bridge's concurrency allows.
func (f *forwarder) next(ctx actor.Context) {
	b, ok := f.a.rt.bridgeConfig(f.a.ctx, f.a.bridgeID)
	if !ok {
		return
	}
	if b.Status != persistence.StatusActive {
		// An endpoint that answered 410 gets nothing until its owner
		// sets the bridge active again; the deliveries stay due.
		f.queue, f.queued = nil, nil
		return
	}
	limit := concurrency(b)
	for f.running < limit && len(f.queue) > 0 {
		d, start, clock := f.queue[0].d, f.queue[0].start, f.queue[0].clock
		f.queue = f.queue[1:]
		delete(f.queued, d.ID)
		f.a.running.add(d.ID)
		f.running++
		f.a.attempts.Add(1)
		self := ctx.Self()
		order := f.a.rt.replyOrder
		order.enter(f.a.bridgeID, d.Topic, d.ID) // replies in order (reply_order.go)
		f.a.rt.workers.Go(func() {
			defer f.a.attempts.Done()
			defer f.a.rt.root.Send(self, &attemptDone{deliveryID: d.ID})
			defer order.leave(f.a.bridgeID, d.Topic, d.ID)
			f.a.attempt(b, d, start, clock)
		})
	}
}

// sweep picks up due deliveries (retries, deliveries of an earlier
// activation, replayed dead letters) and publishes due replies.
func (f *forwarder) sweep(ctx actor.Context) {
	a := f.a
	sctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	if b, ok := a.rt.bridgeConfig(a.ctx, a.bridgeID); ok && b.Status == persistence.StatusActive {
		due, err := a.rt.cfg.Store.DueDeliveries(sctx, a.bridgeID, 200)
		f.more = len(due) == 200
		if err != nil && a.ctx.Err() == nil {
			a.log.Warn("load due deliveries", "error", err)
		}
		// Through the mailbox, as keyed tasks: a delivery that makes the
		// child fail is counted towards quarantine however it arrives.
		for _, d := range due {
			if !a.running.has(d.ID) && !f.queued[d.ID] {
				ctx.Send(ctx.Self(), &deliveryTask{delivery: d})
			}
		}
		a.fanOut(sctx, b) // broadcast.go
	}
	// A new activation first holds the conversations with replies unsent
	// in the outbox, before the batch publishes a younger one (replies.go).
	if !a.replies.isLoaded() {
		topics, err := a.rt.cfg.Store.UnsentReplyTopics(sctx, a.bridgeID, nil)
		if err != nil {
			if a.ctx.Err() == nil {
				a.log.Warn("load conversations with unsent replies", "error", err)
			}
			return // the replies stay parked; the next sweep loads them
		}
		a.loadHeld(topics)
	}
	// A reply the batch publishes and records while the read runs comes
	// back as due from a snapshot taken before the record: watch remembers
	// it until the loop is done.
	taken, end := a.replies.watch()
	defer end()
	replies, err := a.rt.cfg.Store.DueReplies(sctx, a.bridgeID, dueReplyPage)
	if err != nil && a.ctx.Err() == nil {
		a.log.Warn("load due replies", "error", err)
	}
	// The replies of a conversation come in message order, and stop at
	// the first that does not go out now: behind holds those conversations.
	var behind map[string]bool
	published := 0
	stop := func(r persistence.Reply) {
		if r.DeliveryID != nil {
			if behind == nil {
				behind = map[string]bool{}
			}
			behind[r.Topic] = true
		}
	}
	// The replies that go out now are published up to maxReplyBatch in
	// one call, in page order, so a busy held conversation drains in
	// batches; a batch the node refuses is published again one reply at
	// a time, each stopping its conversation if it fails.
	var batch []sweptReply
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if a.publishSwept(sctx, batch) {
			published += len(batch)
			batch = batch[:0]
			return
		}
		for _, s := range batch {
			if s.r.DeliveryID != nil && behind[s.r.Topic] {
				continue
			}
			if !a.publishReply(sctx, s.r, s.env) {
				stop(s.r)
			} else {
				published++
			}
		}
		batch = batch[:0]
	}
	for _, r := range replies {
		if r.DeliveryID != nil && behind[r.Topic] {
			continue
		}
		if taken(r.ID) {
			stop(r)
			continue // on its way out in a batch, or out already (replies.go)
		}
		// A completion commits its reply due at once and hands it to the
		// batch (publishSoon) only after the commit, while its delivery is
		// still running: a.running loses the delivery only in attemptDone,
		// which this actor handles after the sweep, and after the hand-over.
		// Such a reply is the batch's; if the completion reports an error
		// after all, the next sweep has it.
		if r.DeliveryID != nil {
			if a.running.has(*r.DeliveryID) {
				stop(r)
				if a.replies.topicHeld(r.Topic) {
					a.leftBehind(0) // left to the sweep: look again once it ends
				}
				continue
			}
		}
		env := &messagev1.Envelope{}
		if err := proto.Unmarshal(r.Envelope, env); err != nil {
			// It can never go out: held behind, its conversation would
			// wait for ever.
			a.log.Error("decode outbox reply", "reply", r.ID, "error", err)
			if !a.giveUpReply(sctx, r, "undecodable envelope: "+err.Error()) {
				stop(r)
			}
			continue
		}
		batch = append(batch, sweptReply{r: r, env: env})
		if len(batch) == maxReplyBatch {
			flush()
		}
	}
	flush()
	if len(replies) == dueReplyPage && published > 0 {
		// A full page, and it went: the next one now, not at the next
		// pass (the replies held behind an outage).
		a.rt.due.wake(a.bridgeID, time.Now())
	}
	a.releaseHeld(sctx)
}

// sweptReply is a due reply the sweep publishes, with its envelope.
type sweptReply struct {
	r   persistence.Reply
	env *messagev1.Envelope
}

// publishSwept publishes several due replies in one call, in order, and
// records them sent in one statement; it reports whether they are out
// and recorded. When it reports false, none is recorded, and the caller
// publishes them one at a time (the node stores an envelope it got twice
// once).
func (a *activation) publishSwept(ctx context.Context, batch []sweptReply) bool {
	if len(batch) < 2 {
		return false
	}
	rt := a.rt
	if err := a.checkLease(ctx); err != nil {
		return false
	}
	envs := make([]*messagev1.Envelope, len(batch))
	ids := make([]int64, len(batch))
	for i, s := range batch {
		envs[i], ids[i] = s.env, s.r.ID
	}
	if err := rt.cfg.XMTP.Publish(ctx, a.auth, envs...); err != nil {
		return false
	}
	if err := rt.cfg.Store.RecordReplyAttempts(ctx, a.currentLease(), ids, persistence.ReplySent, "", time.Now()); err != nil {
		a.noteFenced(err)
		if !errors.Is(err, persistence.ErrFenced) {
			a.log.Error("record reply attempts", "replies", len(ids), "error", err)
		}
		return false
	}
	for _, id := range ids {
		rt.failing.remove(a, id)
	}
	rt.metrics.replies.WithLabelValues("sent").Add(float64(len(batch)))
	rt.metrics.messagesOut.WithLabelValues("forward").Add(float64(len(batch)))
	return true
}

// dueReplyPage is the most due replies one sweep publishes.
const dueReplyPage = 200

// releaseHeld ends the hold of the conversations that have nothing left
// unsent in the outbox (replies.go). It reads the outbox only while a
// conversation is held.
func (a *activation) releaseHeld(ctx context.Context) {
	seen := a.replies.heldTopics()
	if len(seen) == 0 {
		return
	}
	topics := make([]string, 0, len(seen))
	for t := range seen {
		topics = append(topics, t)
	}
	unsent, err := a.rt.cfg.Store.UnsentReplyTopics(ctx, a.bridgeID, topics)
	if err != nil {
		if a.ctx.Err() == nil {
			a.log.Warn("load conversations with unsent replies", "error", err)
		}
		return
	}
	if n := a.replies.releaseHeld(seen, unsent); n > 0 {
		a.log.Info("conversations' replies no longer held", "conversations", n, "still_held", len(seen)-n)
	}
}

// attempt makes one webhook attempt of d and records its outcome. It runs
// on its own goroutine; a panic is recorded as a failed attempt. start,
// if not nil, is the row and its secrets as the round trip that created
// the row read them, and replaces StartAttempt's read; clock, if not nil,
// times the attempt's stages (stages.go).
func (a *activation) attempt(b persistence.Bridge, d persistence.Delivery, start *persistence.AttemptStart, clock *stageClock) {
	rt := a.rt
	clock.mark(stageDispatch)
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("webhook attempt panicked", "delivery", d.ID, "panic", p)
			rt.metrics.panics.WithLabelValues("attempt").Inc()
		}
	}()
	// The copy in hand may be stale (a sweep and the identity can both
	// hold one): work from the row, and only if it is still due. A stale
	// activation must not forward: the current one will. One round trip,
	// shared with the node's other attempts that start now (batcher.go),
	// reads the row and the secrets and checks the lease.
	//
	// A row this activation has just created needs none of that: its
	// lease was checked and its secrets read in the statement that
	// created it, less than maxStartAge ago, and this forward child has
	// not attempted it (deliveryTask.start). As after StartAttempt, the
	// lease may be lost before the request goes; the completion is fenced.
	var err error
	if start == nil {
		started := rt.starts.do(persistence.AttemptKey{Lease: a.currentLease(), BridgeID: a.bridgeID, DeliveryID: d.ID})
		start, err = &started.AttemptStart, started.Err
		rt.metrics.startedRead.Inc()
	} else {
		rt.metrics.startedRecorded.Inc()
	}
	if err == nil && a.ctx.Err() != nil {
		return // the activation is stopping; the delivery stays due
	}
	if err != nil {
		a.noteFenced(err)
		if a.ctx.Err() == nil && !errors.Is(err, persistence.ErrFenced) {
			// The delivery stays due; the scheduler's next pass finds it.
			a.log.Warn("start webhook attempt", "delivery", d.ID, "error", err)
		}
		return
	}
	d = start.Delivery
	if d.Status != persistence.DeliveryPending && (d.Status != persistence.DeliveryFailed || d.NextAttemptAt.After(time.Now())) {
		return
	}
	// While the endpoint's breaker is open only the probe goes; the
	// others stay due and use no attempt (breaker.go). The lease was
	// checked by StartAttempt, or by the statement that recorded the row.
	if !a.admit(b, d.ID) {
		return
	}
	contentType, text, auto, err := decodePayload(d.Payload)
	if err != nil {
		a.finish(b, d, webhook.Result{Outcome: webhook.OutcomeInvalid, Err: err}, false, nil)
		return
	}
	if a.subscriptionCommand(b, d, text) { // broadcast.go
		return
	}
	ep := endpointOf(b, start.Secrets)
	msg := a.webhookMessage(d.MessageID, d.SenderAddress, d.Topic, contentType, text, d.SentNs)
	if b.Delivery.Live() && (!a.handOverLive(b, d, msg) || !b.Delivery.Webhook()) {
		return // live only, or not handed over yet: see live.go
	}
	timeout := ep.Timeout
	if timeout <= 0 {
		timeout = webhook.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(a.ctx, timeout)
	res := rt.cfg.Deliverer.Deliver(ctx, ep, msg)
	cancel()
	clock.mark(stageWebhook)
	a.finish(b, d, res, auto, clock)
}

// webhookMessage is what the owner's endpoint is sent of a message of the
// activation's conversation topic.
func (a *activation) webhookMessage(id, sender, topic, contentType, text string, sentNs int64) webhook.Message {
	var convID string
	if conv := a.convs.get(topic); conv != nil {
		convID = conv.ID
	}
	return webhook.Message{
		ID: id, Bridge: a.address, Sender: sender, Topic: topic, ConversationID: convID,
		ContentType: contentType, Content: text, SentAt: time.Unix(0, sentNs),
	}
}

// endpointOf is the webhook endpoint of b's forward handler, signing with
// the secrets that parse.
func endpointOf(b persistence.Bridge, secrets []persistence.WebhookSecret) webhook.Endpoint {
	ep := webhook.Endpoint{
		URL: b.Forward.URL, Format: webhook.Format(b.Forward.BodyFormat), Reply: b.Forward.ReplyMode == persistence.ReplyReply,
		Headers: b.Forward.Headers, Timeout: b.Forward.Timeout,
	}
	for _, s := range secrets {
		if sec, err := webhook.ParseSecret(s.Secret); err == nil {
			ep.Secrets = append(ep.Secrets, sec)
		}
	}
	return ep
}

// logAttempt writes the one line of an attempt: its delivery, number,
// outcome, status and latency, and what happens next. Never the content.
func (a *activation) logAttempt(d persistence.Delivery, res webhook.Result, then string) {
	if !a.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := []any{"message", d.MessageID, "delivery", d.ID, "attempt", d.Attempts + 1, "outcome", string(res.Outcome),
		"status", res.Status, "latency_ms", res.Latency.Milliseconds(), "then", then}
	if res.Err != nil {
		attrs = append(attrs, "error", res.Err)
	}
	a.log.Info("webhook attempt", attrs...)
}

// finish records the outcome of an attempt: success (with its reply in the
// outbox), a retry, a dead letter, or the endpoint gone. The bridge's
// retry mode and the node's webhook.RetryPolicy decide which. auto says
// whether d's message is another bridge's automatic reply (isAutoReply);
// clock times the stages of a reply (stages.go).
func (a *activation) finish(b persistence.Bridge, d persistence.Delivery, res webhook.Result, auto bool, clock *stageClock) {
	rt := a.rt
	att := persistence.DeliveryAttempt{StatusCode: res.Status, Latency: res.Latency}
	if res.Err != nil {
		att.Error = res.Err.Error()
		if len(att.Error) > 1000 {
			att.Error = att.Error[:1000]
		}
	}
	if res.Outcome == webhook.OutcomeDelivered || res.Outcome == webhook.OutcomeBadReply {
		a.reportOutcome(res)
		a.logAttempt(d, res, "done")
		a.complete(d, att, res, auto, clock)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if a.ctx.Err() != nil && res.Status == 0 {
		// The activation is stopping and cut the attempt short: that is
		// not the endpoint's failure. The delivery stays due.
		a.logAttempt(d, res, "stopped")
		return
	}
	a.reportOutcome(res)
	now := time.Now()
	policy := rt.cfg.Retry
	policy.Mode = webhook.RetryMode(b.Forward.Retry)
	next, dead := policy.Next(d.Attempts+1, d.CreatedAt, now, res)
	status := persistence.DeliveryFailed
	if dead || res.Outcome == webhook.OutcomeGone {
		status = persistence.DeliveryDead
		a.logAttempt(d, res, "dead")
	} else {
		a.logAttempt(d, res, "retry in "+next.Sub(now).Round(time.Millisecond).String())
	}
	// The dead letter is written before the bridge's endpoint_gone status,
	// so that whoever sees the status also finds the delivery that caused
	// it.
	recErr := rt.cfg.Store.RecordLeasedAttempt(ctx, a.currentLease(), d.ID, att, status, next)
	if recErr != nil {
		a.noteFenced(recErr)
		if !errors.Is(recErr, persistence.ErrFenced) {
			a.log.Error("record delivery attempt", "delivery", d.ID, "error", recErr)
		}
	}
	if res.Outcome == webhook.OutcomeGone && !errors.Is(recErr, persistence.ErrFenced) {
		if err := rt.cfg.Store.SetLeasedBridgeStatus(ctx, a.currentLease(), a.bridgeID, persistence.StatusEndpointGone); err != nil {
			a.noteFenced(err)
			a.log.Error("set bridge status", "status", persistence.StatusEndpointGone, "error", err)
		}
		rt.forgetBridge(a.bridgeID)
		a.log.Warn("endpoint gone, forwarding stopped", "delivery", d.ID)
	}
	if recErr != nil {
		return
	}
	if status == persistence.DeliveryDead {
		rt.metrics.deadLetters.Inc()
		a.log.Warn("delivery dead", "delivery", d.ID, "message", d.MessageID, "attempts", d.Attempts+1,
			"outcome", string(res.Outcome), "status", res.Status)
		return
	}
	// The node's scheduler wakes the bridge at the retry (due.go).
	rt.due.wake(a.bridgeID, next)
}

// complete marks a delivery succeeded and, when the endpoint replied,
// seals the reply once, at a fixed timestamp, into the outbox, then
// publishes it. A delivery that had already succeeded gets no second reply.
// auto is isAutoReply of d's payload, which the caller has decoded; clock,
// if not nil, times the reply's stages (stages.go).
func (a *activation) complete(d persistence.Delivery, att persistence.DeliveryAttempt, res webhook.Result, auto bool, clock *stageClock) {
	rt := a.rt
	var reply *persistence.Reply
	var env *messagev1.Envelope
	if res.HasReply && res.Reply != "" {
		rt.replyOrder.wait(a.bridgeID, d.Topic, d.ID)
		conv := a.convs.get(d.Topic)
		if !auto {
			rt.loops.reset(a.bridgeID, d.Topic)
		}
		if auto && !rt.loops.allow(a.bridgeID, d.Topic, time.Now()) {
			// A reply loop, or a peer that asks faster than the limit:
			// the delivery completes without its reply.
			rt.metrics.loopSuppressed.Inc()
			if ok, held := rt.loopLog.allow("", "reply held back", time.Now()); ok {
				a.log.Warn("reply held back by the loop limit", "topic", d.Topic, "delivery", d.ID, "suppressed", held)
			}
		} else if conv == nil {
			a.log.Error("reply to unknown conversation", "topic", d.Topic)
		} else {
			var err error
			env, err = conv.Seal(a.bundle, autoReply(res.Reply), time.Now())
			if err != nil {
				a.log.Error("seal reply", "delivery", d.ID, "error", err)
			} else if raw, err := proto.Marshal(env); err != nil {
				a.log.Error("encode reply", "delivery", d.ID, "error", err)
			} else {
				// The completion remembers env as the activation's own
				// once it is stored (completeBatch), before it is
				// published.
				reply = &persistence.Reply{BridgeID: a.bridgeID, Topic: d.Topic, TimestampNs: int64(env.TimestampNs), Envelope: raw,
					Text: res.Reply}
			}
		}
	}
	if reply == nil {
		clock = nil // only replies are timed
	}
	clock.mark(stageSeal)
	// One statement, shared with the node's other completions of the
	// moment (batcher.go), which also queues the reply for publishing.
	// Once this completion is queued, the next reply of the conversation
	// may be sealed: it is recorded and queued after this one.
	queued := rt.completes.enqueue(completeRequest{a: a, env: env, topic: d.Topic, clock: clock,
		c: persistence.Completion{Lease: a.currentLease(), DeliveryID: d.ID, Attempt: att, Reply: reply}})
	rt.replyOrder.pass(a.bridgeID, d.Topic, d.ID)
	if done := <-queued; done.Err != nil {
		a.noteFenced(done.Err)
		a.log.Error("complete delivery", "delivery", d.ID, "error", done.Err)
		if reply != nil && replyOutcomeLost(done.Err) {
			// Its batch may have failed after storing the reply, before
			// handing it over (completeBatch): see holdConversation.
			a.holdConversation(d.Topic)
		}
	}
}

// publishReply publishes an outbox reply and records the result, and
// reports whether it is out (or given up: it holds nothing back any
// more). A reply published twice is the same envelope, byte for byte,
// which the node stores once.
func (a *activation) publishReply(ctx context.Context, r persistence.Reply, env *messagev1.Envelope) bool {
	if err := a.checkLease(ctx); err != nil {
		return false
	}
	return a.publishReplyChecked(ctx, r, env)
}

// publishReplyChecked is publishReply for a caller that has just checked
// the lease. A reply the node cannot take now (it is down, busy, slow or
// unreachable) is retried, however long that lasts, at most a minute
// apart: the younger replies of its conversation wait behind it, and
// bridge_forward_reply_oldest_failing_seconds shows how long. Only a reply
// the node rejects as invalid, which no retry changes, is given up.
func (a *activation) publishReplyChecked(ctx context.Context, r persistence.Reply, env *messagev1.Envelope) bool {
	rt := a.rt
	err := rt.cfg.XMTP.Publish(ctx, a.auth, env)
	status, lastErr, next := persistence.ReplySent, "", time.Now()
	if err != nil {
		lastErr = err.Error()
		if rejectedEnvelope(err) {
			return a.giveUpReply(ctx, r, lastErr)
		}
		wait := time.Second << min(r.Attempts, 6)
		status, next = persistence.ReplyFailed, time.Now().Add(min(wait, time.Minute))
		rt.metrics.replies.WithLabelValues("retry").Inc()
		rt.failing.add(a, r.ID, r.CreatedAt)
		var delivery int64
		if r.DeliveryID != nil {
			delivery = *r.DeliveryID
		}
		a.log.Warn("publish reply", "reply", r.ID, "delivery", delivery, "topic", r.Topic, "attempts", r.Attempts+1,
			"age", time.Since(r.CreatedAt).Round(time.Second).String(), "retry_in", next.Sub(time.Now()).Round(time.Second).String(),
			"error", err)
		rt.due.wake(a.bridgeID, next)
	}
	if err := rt.cfg.Store.RecordReplyAttempt(ctx, a.currentLease(), r.ID, status, lastErr, next); err != nil {
		a.noteFenced(err)
		if !errors.Is(err, persistence.ErrFenced) {
			a.log.Error("record reply attempt", "reply", r.ID, "error", err)
		}
		// Not recorded as out: the conversation's younger replies stay
		// behind it, and the next sweep looks again (it is published
		// again, the same envelope, which the node stores once).
		return false
	}
	if err == nil {
		rt.failing.remove(a, r.ID)
		rt.metrics.replies.WithLabelValues("sent").Inc()
		rt.metrics.messagesOut.WithLabelValues("forward").Inc()
	}
	return err == nil
}

// rejectedEnvelope reports whether the XMTP node refused a publish for
// what its envelopes are, which no retry changes: InvalidArgument (too
// large, empty, a bad topic or timestamp) or PermissionDenied (a topic
// that belongs to another wallet, such as a contact or private-store
// topic an invitation named). Every other failure (the node down, busy,
// slow or unreachable, the call cancelled, its store failing, a token it
// refused) may pass.
func rejectedEnvelope(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied:
		return true
	}
	return false
}

// giveUpReply records an outbox reply as dead: it will never be published,
// and the younger replies of its conversation no longer wait for it. It
// reports whether the record was made; if not, the reply is still unsent,
// and the next sweep gives it up again.
func (a *activation) giveUpReply(ctx context.Context, r persistence.Reply, lastErr string) bool {
	rt := a.rt
	if err := rt.cfg.Store.RecordReplyAttempt(ctx, a.currentLease(), r.ID, persistence.ReplyDead, lastErr, time.Now()); err != nil {
		a.noteFenced(err)
		if !errors.Is(err, persistence.ErrFenced) {
			a.log.Error("record reply attempt", "reply", r.ID, "error", err)
		}
		return false
	}
	rt.failing.remove(a, r.ID)
	rt.metrics.replies.WithLabelValues("dead").Inc()
	var delivery int64
	if r.DeliveryID != nil {
		delivery = *r.DeliveryID
	}
	a.log.Error("reply given up: it can never be published; its conversation's younger replies go", "reply", r.ID,
		"delivery", delivery, "topic", r.Topic, "attempts", r.Attempts+1, "age", time.Since(r.CreatedAt).Round(time.Second).String(),
		"error", lastErr)
	return true
}
