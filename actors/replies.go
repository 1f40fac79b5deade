package actors

// Replies published in batches.
//
// A completed delivery's reply is already in the outbox when it is handed
// here. The activation publishes the replies that queued up while its
// previous publish was in flight in one Publish call, and records their
// outcome in one statement, instead of one call and one write per reply.
// The outcomes are recorded beside the next publish, not before it: a
// reply does not wait for the record of the replies published before it.
// A goroutine runs for each stage only while it has work. A reply whose
// publish fails stays in the outbox and is retried like any other
// (forwarder.sweep, woken by the node's scheduler at the retry). A reply
// published whose outcome is not recorded (a crash in between) is
// published again, the same envelope byte for byte, which the XMTP node
// stores once.

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
	mu      sync.Mutex
	queue   []outboxReply
	running bool
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
}

// publishSoon queues an outbox reply, written under a lease checked just
// now, for the next batch. Stopping the activation waits for the batch
// (a.attempts).
func (a *activation) publishSoon(replyID int64, env *messagev1.Envelope) {
	b := &a.replies
	b.mu.Lock()
	b.queue = append(b.queue, outboxReply{id: replyID, env: env})
	if b.held == nil {
		b.held = map[int64]bool{}
	}
	b.held[replyID] = true
	if b.running {
		b.mu.Unlock()
		return
	}
	b.running = true
	b.mu.Unlock()
	a.attempts.Add(1)
	a.rt.workers.Go(func() {
		defer a.attempts.Done()
		a.drainReplies()
	})
}

// drainReplies publishes the queue in batches until it is empty.
func (a *activation) drainReplies() {
	b := &a.replies
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxReplyBatch)
		if n == 0 {
			b.running = false
			b.queue = nil
			b.mu.Unlock()
			return
		}
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()
		a.recordSoon(a.publishBatch(batch))
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
	for i, r := range batch {
		envs[i], ids[i] = r.env, r.id
	}
	err := rt.cfg.XMTP.Publish(ctx, a.auth, envs...)
	status, lastErr, next := persistence.ReplySent, "", time.Now()
	if err != nil {
		lastErr = err.Error()
		status, next = persistence.ReplyFailed, time.Now().Add(time.Second)
		rt.metrics.replies.WithLabelValues("retry").Add(float64(len(batch)))
		a.log.Warn("publish replies", "replies", len(batch), "error", err)
		rt.due.wake(a.bridgeID, next)
	} else {
		rt.metrics.replies.WithLabelValues("sent").Add(float64(len(batch)))
		rt.metrics.messagesOut.WithLabelValues("forward").Add(float64(len(batch)))
	}
	return replyOutcome{ids: ids, status: status, lastErr: lastErr, next: next}
}
