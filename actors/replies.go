package actors

// Replies published in batches.
//
// A completed delivery's reply is already in the outbox when it is handed
// here. The activation publishes the replies that queued up while its
// previous publish was in flight in one Publish call, and records their
// outcome in one statement, instead of one call and one write per reply.
// A goroutine runs only while replies wait. A reply whose publish fails
// stays in the outbox and is retried like any other (forwarder.sweep, woken
// by the node's scheduler at the retry).

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
	// held are the ids queued or being published, which the sweep leaves
	// alone.
	held map[int64]bool
}

// holds reports whether the reply is queued or being published here.
func (b *replyBatch) holds(replyID int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held[replyID]
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
	go func() {
		defer a.attempts.Done()
		a.drainReplies()
	}()
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
		a.publishBatch(batch)
		b.mu.Lock()
		for _, r := range batch {
			delete(b.held, r.id)
		}
		b.mu.Unlock()
	}
}

// publishBatch publishes a batch of replies in one call and records the
// outcome of each.
func (a *activation) publishBatch(batch []outboxReply) {
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
	if err := rt.cfg.Store.RecordReplyAttempts(ctx, a.currentLease(), ids, status, lastErr, next); err != nil {
		a.noteFenced(err)
		if !errors.Is(err, persistence.ErrFenced) {
			a.log.Error("record reply attempts", "replies", len(batch), "error", err)
		}
	}
}
