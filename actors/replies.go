package actors

// Replies published in batches.
//
// A completed delivery's reply is already in the outbox when it is handed
// here. The activation publishes the replies that queued up while its
// publishes in flight were under way in one Publish call, and records
// their outcome in one statement, instead of one call and one write per
// reply. While the publishes in flight are small, a reply goes at once in
// a publish of its own beside them (publishDepth); the replies of one
// conversation are never in two publishes in flight.
// The outcomes are recorded beside the next publish, not before it: a
// reply does not wait for the record of the replies published before it.
// A goroutine runs for each stage only while it has work. A reply whose
// publish fails stays in the outbox and is retried like any other
// (forwarder.sweep, woken by the node's scheduler at the retry). A reply
// published whose outcome is not recorded (a crash in between) is
// published again, the same envelope byte for byte, which the XMTP node
// stores once.
//
// Conversations held behind a reply. The replies of one conversation to
// the messages it forwarded reach the batch in the order of their messages
// (reply_order.go). A reply of them that leaves that queue for the sweep
// (its publish failed; its completion's outcome was lost, so that it may
// sit in the outbox unannounced, as after completeAgain; an earlier
// activation left it there) would let the younger ones overtake it. So
// its conversation is held (replyBatch.waiting): a younger reply of it is
// not published by the batch, but left in the outbox, pending, for the
// sweep, which publishes a conversation's replies in message order and
// stops at the first that does not go out (persistence.DueReplies,
// forwarder.sweep). Once the sweep finds nothing of the conversation
// unsent in the outbox, and nothing was left to it meanwhile, the hold
// ends and the batch publishes its replies again. A new activation holds
// the conversations with unsent replies in the outbox before it publishes
// a reply of them (load). The state is one entry per held conversation;
// a reply that fails to publish because the XMTP node cannot take it now
// keeps its conversation held for as long as that lasts (it is retried,
// and bridge_forward_reply_oldest_failing_seconds grows); one the node
// rejects as invalid is given up, loudly, which ends the hold.

import (
	"context"
	"errors"
	"sync"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/persistence"
)

// maxReplyBatch is the most envelopes of one Publish: the local XMTP
// node's default limit (BRIDGE_XMTP_MAX_ENVELOPES_PER_PUBLISH).
const maxReplyBatch = 16

// replyBatch is an activation's queue of replies to publish.
type replyBatch struct {
	mu    sync.Mutex
	queue []outboxReply
	// running counts the drains, each with at most one publish in flight
	// (publishDepth), and flying the replies in those publishes; busy
	// counts, by conversation, the replies in publishes in flight.
	running int
	flying  int
	busy    map[string]int
	// held are the ids queued, being published or having their outcome
	// recorded, which the sweep leaves alone.
	held map[int64]bool
	// outcomes are the publish outcomes waiting to be recorded, and
	// recording says a goroutine records them.
	outcomes  []replyOutcome
	recording bool
	// hurried says outcomes are recorded without lingering
	// (replyOutcomeLinger): the activation stops. wake ends a linger.
	hurried bool
	wake    lingerWake
	// released, while a sweep looks at due replies (watch), are the ids
	// whose outcome was recorded since the sweep began: the sweep may have
	// read them as due just before the record committed.
	released map[int64]bool
	watchers int
	// waiting holds the conversations (topics) held behind a reply left
	// for the sweep, each with a count of the replies left to the sweep
	// so far, which tells the sweep whether one was left while it looked.
	waiting map[string]uint64
	// loaded says the conversations that had replies unsent in the
	// outbox when the activation began are in waiting; until then the
	// replies to forwarded messages are parked, held from the sweep.
	loaded bool
	parked []outboxReply
	// wokeAt is when the sweep woken for replies left to it runs.
	wokeAt time.Time
}

// failingReplies holds, for the whole node, the replies whose last publish
// by the sweep failed and that are not out yet, by activation, with when
// each was created (bridge_forward_reply_oldest_failing_seconds). A scrape
// looks at these replies only, not at every hosted identity.
type failingReplies struct {
	mu    sync.Mutex
	byAct map[*activation]map[int64]time.Time
}

// add notes that the publish of activation a's reply id, created at
// created, failed. Once the activation is cancelled nothing is noted: it
// stops, and forget (after the cancel) drops what it noted before.
func (f *failingReplies) add(a *activation, id int64, created time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.ctx != nil && a.ctx.Err() != nil {
		return
	}
	if f.byAct == nil {
		f.byAct = map[*activation]map[int64]time.Time{}
	}
	m := f.byAct[a]
	if m == nil {
		m = map[int64]time.Time{}
		f.byAct[a] = m
	}
	m[id] = created
}

// remove notes that activation a's reply id is out, or given up.
func (f *failingReplies) remove(a *activation, id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.byAct[a]
	if m == nil {
		return
	}
	delete(m, id)
	if len(m) == 0 {
		delete(f.byAct, a)
	}
}

// forget drops what activation a noted: it stopped, and the node that
// activates the identity next notes its own failures.
func (f *failingReplies) forget(a *activation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.byAct, a)
}

// oldest returns when the oldest failing reply was created; zero when
// there is none.
func (f *failingReplies) oldest() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var oldest time.Time
	for _, m := range f.byAct {
		for _, t := range m {
			if oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
		}
	}
	return oldest
}

// replyOutcome is the outcome of one Publish of replies, to record.
type replyOutcome struct {
	ids     []int64
	status  persistence.ReplyStatus
	lastErr string
	next    time.Time
	// at is when it was queued, for the linger.
	at time.Time
}

// replyOutcomeLinger is how long the record of a publish outcome waits
// for more outcomes to join its statement. The reply is out already, and
// held from the sweep until its outcome is recorded; a crash in between
// publishes it again, the same envelope, which the XMTP node stores once.
// Under a steady load it makes one statement of the outcomes of 50 ms
// instead of one per publish, and the CPU saved is taken off the
// statements replies wait for. A stopping activation hurries it.
const replyOutcomeLinger = 50 * time.Millisecond

// watch begins a sweep's look at the due replies it is about to read. Until
// end is called, taken reports whether a reply is queued, being published or
// recorded here, or has been recorded here since watch: such a reply is on
// its way out or out already, whatever the sweep's read of it says.
func (b *replyBatch) watch() (taken func(replyID int64) bool, end func()) {
	b.mu.Lock()
	if b.watchers == 0 {
		b.released = map[int64]bool{}
	}
	b.watchers++
	b.mu.Unlock()
	taken = func(replyID int64) bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.held[replyID] || b.released[replyID]
	}
	end = func() {
		b.mu.Lock()
		if b.watchers--; b.watchers == 0 {
			b.released = nil
		}
		b.mu.Unlock()
	}
	return taken, end
}

type outboxReply struct {
	id  int64
	env *messagev1.Envelope
	// topic is the conversation of a reply to a forwarded message, whose
	// replies go out in order; empty for a broadcast copy.
	topic string
	// clock times its stages (stages.go).
	clock *stageClock
}

// publishSoon queues an outbox reply, written under a lease checked just
// now, for the next batch. Stopping the activation waits for the batch
// (a.attempts). topic is the conversation of a reply to a forwarded
// message, empty for others: a reply of a held conversation is left in
// the outbox for the sweep, behind the older ones. clock, if not nil, times
// the reply's stages (stages.go).
func (a *activation) publishSoon(replyID int64, topic string, env *messagev1.Envelope, clock *stageClock) {
	b := &a.replies
	r := outboxReply{id: replyID, env: env, topic: topic, clock: clock}
	b.mu.Lock()
	if topic != "" && !b.loaded {
		b.hold(replyID)
		b.parked = append(b.parked, r)
		b.mu.Unlock()
		return
	}
	if topic != "" && b.isHeld(topic) {
		b.leave(topic)
		b.mu.Unlock()
		a.leftBehind(1)
		return
	}
	start := b.enqueue(r)
	b.mu.Unlock()
	if start {
		a.startDrain()
	}
}

// publishDepth is how many publishes of an activation's replies may be in
// flight at once. A reply that comes while the publishes in flight are
// small (smallBatch replies or fewer) goes at once in a publish of its
// own, beside them, instead of waiting for their round trip; while they
// are large, the replies queue for the next one, as with one at a time.
// The replies of one conversation are never in two publishes in flight:
// a reply of a conversation with one in flight waits for its publish to
// return, so the XMTP node stores them in order.
const publishDepth = 4

// enqueue queues r for the batch and reports whether a drain must start:
// it has counted one in running, which the caller starts; b.mu is held.
func (b *replyBatch) enqueue(r outboxReply) (start bool) {
	b.queue = append(b.queue, r)
	b.hold(r.id)
	if b.running >= publishDepth || (b.running > 0 && b.flying > smallBatch) {
		return false
	}
	if r.topic != "" && b.busy[r.topic] > 0 {
		// The drain whose publish carries the conversation takes it
		// once that returns; a new one would find nothing to take.
		return false
	}
	b.running++
	return true
}

// take removes the next publish's replies from the queue, in queue order,
// passing over those of a conversation with a publish in flight (and the
// later ones of it); b.mu is held. The caller marks their conversations
// busy (markBusy) under the same hold of b.mu.
func (b *replyBatch) take() []outboxReply {
	var batch []outboxReply
	batch, b.queue = takeUnblocked(b.queue, maxReplyBatch, func(r outboxReply) string { return r.topic },
		func(topic string) bool { return topic != "" && b.busy[topic] > 0 })
	return batch
}

// markBusy notes the conversations of batch in flight, or no longer
// (delta -1); b.mu is held.
func (b *replyBatch) markBusy(batch []outboxReply, delta int) {
	for _, r := range batch {
		if r.topic == "" {
			continue
		}
		if b.busy == nil {
			b.busy = map[string]int{}
		}
		if b.busy[r.topic] += delta; b.busy[r.topic] <= 0 {
			delete(b.busy, r.topic)
		}
	}
	b.flying += delta * len(batch)
}

// hold keeps the sweep off a reply the batch has; b.mu is held.
func (b *replyBatch) hold(id int64) {
	if b.held == nil {
		b.held = map[int64]bool{}
	}
	b.held[id] = true
}

// isHeld reports whether topic is held behind a reply left for the sweep;
// b.mu is held.
func (b *replyBatch) isHeld(topic string) bool {
	_, ok := b.waiting[topic]
	return ok
}

// leave notes that a reply of topic is left for the sweep: the
// conversation is held until the sweep has it all out; b.mu is held.
func (b *replyBatch) leave(topic string) {
	if b.waiting == nil {
		b.waiting = map[string]uint64{}
	}
	b.waiting[topic]++
}

// leftBehind counts n replies left in the outbox behind an older reply of
// their conversation, and has the sweep look soon: the older one may be
// due already, or out, with nothing else to wake the sweep.
func (a *activation) leftBehind(n int) {
	a.rt.metrics.repliesHeld.Add(float64(n))
	b := &a.replies
	now := time.Now()
	b.mu.Lock()
	if b.wokeAt.After(now) {
		b.mu.Unlock()
		return
	}
	b.wokeAt = now.Add(heldSweepDelay)
	b.mu.Unlock()
	a.rt.due.wake(a.bridgeID, now.Add(heldSweepDelay))
}

// heldSweepDelay is how soon the sweep looks at replies left behind an
// older one; the replies left meanwhile share its look.
const heldSweepDelay = 50 * time.Millisecond

// holdConversation holds topic: a reply of it may be in the outbox
// unannounced (its completion's outcome was lost), and the younger ones
// wait until the sweep has looked.
func (a *activation) holdConversation(topic string) {
	b := &a.replies
	b.mu.Lock()
	held := b.isHeld(topic)
	b.leave(topic)
	b.mu.Unlock()
	if !held {
		a.log.Warn("conversation's replies held for the sweep", "topic", topic, "reason", "completion outcome unknown")
	}
	a.leftBehind(0)
}

// loadHeld holds the conversations of topics, which have replies unsent in
// the outbox, and lets the batch have the replies parked until then, or
// leaves those of a held conversation to the sweep.
func (a *activation) loadHeld(topics []string) {
	b := &a.replies
	b.mu.Lock()
	for _, t := range topics {
		b.leave(t)
	}
	b.loaded = true
	parked := b.parked
	b.parked = nil
	start, left := 0, 0
	for _, r := range parked {
		if b.isHeld(r.topic) {
			b.leave(r.topic)
			delete(b.held, r.id)
			left++
			continue
		}
		if b.enqueue(r) {
			start++ // each drain enqueue counted must run
		}
	}
	b.mu.Unlock()
	if len(topics) > 0 {
		a.log.Info("conversations' replies held for the sweep", "conversations", len(topics), "reason", "unsent replies in the outbox")
	}
	if left > 0 {
		a.leftBehind(left)
	}
	for range start {
		a.startDrain()
	}
}

// topicHeld reports whether topic is held.
func (b *replyBatch) topicHeld(topic string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.isHeld(topic)
}

// isLoaded reports whether loadHeld has run.
func (b *replyBatch) isLoaded() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.loaded
}

// heldTopics returns the held conversations with their counts of replies
// left, for the sweep to compare after its look (release).
func (b *replyBatch) heldTopics() map[string]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiting) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(b.waiting))
	for t, n := range b.waiting {
		out[t] = n
	}
	return out
}

// releaseHeld ends the hold of the conversations of seen (heldTopics) that
// have nothing unsent in the outbox (unsent lists those that do), unless a
// reply of theirs was left for the sweep since seen was taken.
func (b *replyBatch) releaseHeld(seen map[string]uint64, unsent []string) (released int) {
	still := make(map[string]bool, len(unsent))
	for _, t := range unsent {
		still[t] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for t, n := range seen {
		if !still[t] && b.waiting[t] == n {
			delete(b.waiting, t)
			released++
		}
	}
	return released
}

func (a *activation) startDrain() {
	a.attempts.Add(1)
	a.rt.workers.Go(func() {
		defer a.attempts.Done()
		a.drainReplies()
	})
}

// drainReplies publishes the queue in batches until it is empty, or until
// what is left waits for conversations with a publish in flight (the drain
// whose publish returns takes them next).
func (a *activation) drainReplies() {
	b := &a.replies
	for {
		b.mu.Lock()
		batch := b.take()
		if len(batch) == 0 {
			b.running--
			if len(b.queue) == 0 {
				b.queue = nil
			}
			b.mu.Unlock()
			return
		}
		left := 0
		if len(b.waiting) > 0 {
			// Replies of a conversation held since they were queued (an
			// older one's publish failed) are left for the sweep.
			kept := make([]outboxReply, 0, len(batch))
			for _, r := range batch {
				if r.topic != "" && b.isHeld(r.topic) {
					b.leave(r.topic)
					delete(b.held, r.id)
					left++
					continue
				}
				kept = append(kept, r)
			}
			batch = kept
		}
		b.markBusy(batch, 1)
		b.mu.Unlock()
		if left > 0 {
			a.leftBehind(left)
		}
		if len(batch) > 0 {
			// A failed publish holds its conversations before they are
			// free again (publishBatch), so the replies queued behind it
			// are left for the sweep.
			o := a.publishBatch(batch)
			b.mu.Lock()
			b.markBusy(batch, -1)
			b.mu.Unlock()
			a.recordSoon(o)
		}
	}
}

// recordSoon queues a publish outcome for the recording goroutine, which
// runs while outcomes wait.
func (a *activation) recordSoon(o replyOutcome) {
	b := &a.replies
	o.at = time.Now()
	b.mu.Lock()
	b.outcomes = append(b.outcomes, o)
	if b.recording {
		b.mu.Unlock()
		return
	}
	b.recording = true
	b.mu.Unlock()
	a.attempts.Add(1)
	a.rt.workers.Go(func() {
		defer a.attempts.Done()
		a.drainOutcomes()
	})
}

// drainOutcomes records the queued outcomes until none is left. Outcomes
// of the same kind that queued up together (replies sent) are recorded in
// one statement.
func (a *activation) drainOutcomes() {
	b := &a.replies
	for {
		b.mu.Lock()
		if wait := b.lingerFor(); wait > 0 {
			b.wake.wait(&b.mu, wait)
			continue
		}
		if len(b.outcomes) == 0 {
			b.recording = false
			b.outcomes = nil
			b.mu.Unlock()
			return
		}
		o := b.outcomes[0]
		k := 1
		for ; k < len(b.outcomes) && len(o.ids) < maxOutcomeIDs; k++ {
			next := b.outcomes[k]
			// A sent reply's next attempt time means nothing.
			if next.status != o.status || next.lastErr != o.lastErr || (o.status != persistence.ReplySent && !next.next.Equal(o.next)) {
				break
			}
			o.ids = append(o.ids[:len(o.ids):len(o.ids)], next.ids...)
		}
		b.outcomes = b.outcomes[k:]
		b.mu.Unlock()
		a.recordOutcome(o)
		b.release(o.ids)
	}
}

// lingerFor returns how much longer the queued outcomes wait for more;
// b.mu is held.
func (b *replyBatch) lingerFor() time.Duration {
	if b.hurried || len(b.outcomes) == 0 {
		return 0
	}
	ids := 0
	for _, o := range b.outcomes {
		ids += len(o.ids)
	}
	if ids >= maxOutcomeIDs {
		return 0
	}
	return replyOutcomeLinger - time.Since(b.outcomes[0].at)
}

// hurry records the outcomes queued and to come without lingering: the
// activation stops, and waits for them.
func (b *replyBatch) hurry() {
	b.mu.Lock()
	b.hurried = true
	b.wake.wake()
	b.mu.Unlock()
}

// release lets the sweep have replies whose outcome has been recorded,
// and tells the sweeps that watch.
func (b *replyBatch) release(ids []int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		delete(b.held, id)
		if b.released != nil {
			b.released[id] = true
		}
	}
}

// maxOutcomeIDs bounds the replies of one outcome statement.
const maxOutcomeIDs = 256

// recordOutcome stores the outcome of published replies.
func (a *activation) recordOutcome(o replyOutcome) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.rt.cfg.Store.RecordReplyAttempts(ctx, a.currentLease(), o.ids, o.status, o.lastErr, o.next); err != nil {
		if a.ctx.Err() != nil {
			return // the activation has ended; the next one publishes them again
		}
		a.noteFenced(err)
		if !errors.Is(err, persistence.ErrFenced) {
			a.log.Error("record reply attempts", "replies", len(o.ids), "error", err)
		}
	}
}

// publishBatch publishes a batch of replies in one call and returns the
// outcome to record.
func (a *activation) publishBatch(batch []outboxReply) replyOutcome {
	rt := a.rt
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	envs := make([]*messagev1.Envelope, len(batch))
	ids := make([]int64, len(batch))
	began := time.Now()
	for i, r := range batch {
		envs[i], ids[i] = r.env, r.id
		r.clock.markAt(stagePublishQueue, began)
	}
	err := rt.cfg.XMTP.Publish(ctx, a.auth, envs...)
	if err == nil {
		for _, r := range batch {
			r.clock.mark(stagePublish)
		}
	}
	status, lastErr, next := persistence.ReplySent, "", time.Now()
	if err != nil {
		lastErr = err.Error()
		status, next = persistence.ReplyFailed, time.Now().Add(time.Second)
		rt.metrics.replies.WithLabelValues("retry").Add(float64(len(batch)))
		a.log.Warn("publish replies", "replies", len(batch), "error", err)
		// Their conversations are held: the replies queued behind them
		// must not go first.
		b := &a.replies
		b.mu.Lock()
		for _, r := range batch {
			if r.topic != "" {
				b.leave(r.topic)
			}
		}
		b.mu.Unlock()
		rt.due.wake(a.bridgeID, next)
	} else {
		rt.metrics.replies.WithLabelValues("sent").Add(float64(len(batch)))
		rt.metrics.messagesOut.WithLabelValues("forward").Add(float64(len(batch)))
	}
	return replyOutcome{ids: ids, status: status, lastErr: lastErr, next: next}
}
