package actors

// Batched round trips of attempts.
//
// Many attempts run at once on a busy node, each on its own goroutine.
// The statements each one makes against Postgres (StartAttempt before the
// webhook call, CompleteDelivery after it) go through a batcher: an
// attempt's call waits while the batch in flight completes, and everything
// that queued up meanwhile goes as the next batch, one round trip for all
// of them. An idle node runs nothing; a lone attempt's call goes at once.
//
// A batcher on the critical path of a reply (delivery records,
// completions) may run more than one batch at once (depth): a call that
// comes while a small batch is in flight (smallBatch calls or fewer) goes
// at once in a batch of its own instead of waiting for the round trip
// under way; the calls that come while larger batches, or depth batches,
// are in flight wait, for the first of them to end. Calls of one key (a
// conversation) are never in two batches in flight at once: one batch of
// a key commits, and is handed back, before the next batch of that key
// begins, as when batches ran one at a time. So a key's results come back
// in the order of its calls, and each batch is handed back as soon as it
// returns: a batch that returns while one taken before it is slow, which
// holds none of its keys, does not wait for it. A batcher without keys
// hands its batches back in the order it took them.
//
// A batcher whose calls are off the critical path of a reply (cursor
// moves) may linger: its batch waits up to linger after its first call
// for more to join it, so that a node under a steady load makes one
// statement for many moves instead of one for every move or two. The CPU
// that saves is the latency of the statements that are on the critical
// path, which a busy machine runs slower the more work it has. hurry ends
// the wait of the calls already queued, for a stopping activation.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/persistence"
)

// maxAttemptBatch bounds the attempts of one batched statement.
const maxAttemptBatch = 128

// batcher runs calls of Req in batches through run, which returns one Res
// per Req, in order. Batches are taken in the order their requests were
// queued and run up to depth at once; without keys they are handed back
// in the order they were taken, with keys each as it returns (a key's
// batches still in order). It runs a goroutine only while it has work.
type batcher[Req, Res any] struct {
	run func([]Req) []Res
	// fail is the result of a request whose batch panicked or gave it no
	// result: every caller gets an answer, and the batcher goes on.
	fail func(error) Res
	max  int
	// depth is how many batches may be in flight at once; zero or one
	// runs them one at a time. A batcher that lingers runs one at a time.
	depth int
	// key names what two batches in flight must not share (with depth
	// above one): a call whose key is in a batch in flight waits, and so
	// do the calls of that key queued after it. Nil keys nothing.
	key func(Req) string
	// deliver, if set, sees each call's result before its caller gets
	// it: with keys, as each batch returns (two batches in flight never
	// share a key, and a key's batches come in the order they were
	// taken), possibly two batches at once; without, one batch at a time,
	// in the order the batches were taken. A panic in it loses that
	// call's hand-over only: the batch's other calls are handed over, and
	// every caller gets its result.
	deliver func(Req, Res)
	// panicked, if set, hears of each panic the batcher recovered from:
	// in run, which fails the batch, in deliver, or in key, which puts
	// the call under the empty key. A recovered panic is a defect, and
	// the node reports it (bridge_internal_panics_total).
	panicked func(where string, p any)
	// spawn runs the drain; nil is a goroutine of its own.
	spawn func(func())
	mu    sync.Mutex
	// linger is how long a batch smaller than max waits after its first
	// call for more calls; zero runs it at once. Set before the first call,
	// or under mu.
	linger time.Duration
	queue  []batchCall[Req, Res]
	// running counts the drains, each with at most one batch in flight,
	// and flying the calls in those batches.
	running int
	flying  int
	// busy counts, by key, the calls in batches in flight; tail, without
	// keys, is closed once the last batch taken has been handed back.
	busy map[string]int
	tail chan struct{}
	// hurried says the calls queued so far go without lingering; it lasts
	// until a batch is taken.
	hurried bool
	// wake ends a linger early: the queue is full, or hurried.
	wake lingerWake
}

// lingerWake ends early the linger of a batch that waits for more to
// join it. Its channel is made on first use; the mutex of the batch it
// belongs to guards it.
type lingerWake struct{ ch chan struct{} }

// wait unlocks mu, which is held, and waits for d or a wake-up; it
// returns with mu unlocked.
func (w *lingerWake) wait(mu *sync.Mutex, d time.Duration) {
	if w.ch == nil {
		w.ch = make(chan struct{}, 1)
	}
	ch := w.ch
	mu.Unlock()
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ch:
	}
	t.Stop()
}

// wake ends a linger under way, or the next one; the batch's mutex is
// held. With no channel yet no linger has begun, and the next one looks
// at the batch first.
func (w *lingerWake) wake() {
	if w.ch == nil {
		return
	}
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

type batchCall[Req, Res any] struct {
	req  Req
	done chan Res
	// at is when it was queued, for the linger.
	at time.Time
	// key is the batcher's key of req, taken once when it is queued.
	key string
}

// do queues req and waits for its result.
func (b *batcher[Req, Res]) do(req Req) Res { return <-b.enqueue(req) }

// enqueue queues req, after every request queued before it, and returns
// where its result will be.
func (b *batcher[Req, Res]) enqueue(req Req) <-chan Res {
	done := make(chan Res, 1)
	// The key is taken before the lock: a panic in it must not leave
	// the batcher locked for every call after it.
	var key string
	if b.key != nil && b.depth > 1 {
		key = b.keyOf(req)
	}
	b.mu.Lock()
	var at time.Time
	if b.linger > 0 {
		at = time.Now()
	}
	b.queue = append(b.queue, batchCall[Req, Res]{req: req, done: done, at: at, key: key})
	if b.linger > 0 && len(b.queue) >= b.max {
		b.wake.wake()
	}
	// A call whose key is in a batch in flight opens no drain: the drain
	// of that batch takes it once it has handed the batch back, and a new
	// one would find nothing to take.
	if b.running < b.maxDrains() && (b.running == 0 || b.flying <= smallBatch) && b.busy[key] == 0 {
		b.running++
		if b.spawn != nil {
			b.spawn(b.drain)
		} else {
			go b.drain()
		}
	}
	b.mu.Unlock()
	return done
}

// smallBatch is the most calls in flight with which a call that comes
// opens another batch beside them (depth): a lightly loaded node then
// does not make a call wait for a round trip under way, while a busy one,
// whose batches are large, lets the calls queue for the next batch as
// with one at a time, and makes one round trip for many of them.
const smallBatch = 4

// keyed reports whether the batcher keeps keys out of two batches in
// flight: it has keys and may run more than one batch at once.
func (b *batcher[Req, Res]) keyed() bool { return b.key != nil && b.maxDrains() > 1 }

// maxDrains is how many batches may be in flight at once.
func (b *batcher[Req, Res]) maxDrains() int {
	if b.depth <= 1 || b.linger > 0 {
		return 1
	}
	return b.depth
}

// hurry makes the calls queued so far go as soon as the batch in flight, if
// any, is done, without lingering. A caller queues its calls first, then
// hurries them.
func (b *batcher[Req, Res]) hurry() {
	b.mu.Lock()
	b.hurried = true
	b.wake.wake()
	b.mu.Unlock()
}

// lingerFor returns how much longer the queue waits for more calls; b.mu
// is held.
func (b *batcher[Req, Res]) lingerFor() time.Duration {
	if b.linger <= 0 || b.hurried || len(b.queue) == 0 || len(b.queue) >= b.max {
		return 0
	}
	return b.linger - time.Since(b.queue[0].at)
}

// drain runs the queue in batches until it is empty, or until what is
// left waits for keys in flight (a drain that hands back a batch of them
// takes it next).
func (b *batcher[Req, Res]) drain() {
	for {
		b.mu.Lock()
		if wait := b.lingerFor(); wait > 0 {
			b.wake.wait(&b.mu, wait)
			continue
		}
		b.hurried = false
		batch, keys := b.take()
		if len(batch) == 0 {
			b.running--
			if len(b.queue) == 0 {
				b.queue = nil
			}
			b.mu.Unlock()
			return
		}
		// Without keys, the batches are handed back in the order they
		// were taken; with keys, each as it returns (take).
		var prev, mine chan struct{}
		if !b.keyed() {
			prev, mine = b.tail, make(chan struct{})
			b.tail = mine
		}
		b.flying += len(batch)
		b.mu.Unlock()
		reqs := make([]Req, len(batch))
		for i, c := range batch {
			reqs[i] = c.req
		}
		res, err := b.runBatch(reqs)
		if len(res) < len(reqs) {
			full := make([]Res, len(reqs))
			copy(full, res)
			for i := len(res); i < len(reqs); i++ {
				full[i] = b.fail(err)
			}
			res = full
		}
		if prev != nil {
			<-prev // the batch taken before this one is handed back first
		}
		if b.deliver != nil {
			for i := range reqs {
				b.deliverOne(reqs[i], res[i])
			}
		}
		for i, c := range batch {
			c.done <- res[i]
		}
		if mine != nil {
			close(mine)
		}
		b.mu.Lock()
		b.flying -= len(batch)
		for _, k := range keys {
			if b.busy[k]--; b.busy[k] <= 0 {
				delete(b.busy, k)
			}
		}
		b.mu.Unlock()
	}
}

// take removes the next batch from the queue, in queue order, passing over
// the calls whose key is in a batch in flight (and the later calls of
// their keys), and marks the keys it takes busy; b.mu is held.
func (b *batcher[Req, Res]) take() (batch []batchCall[Req, Res], keys []string) {
	if !b.keyed() {
		n := min(len(b.queue), b.max)
		batch = b.queue[:n:n]
		b.queue = b.queue[n:]
		return batch, nil
	}
	batch, b.queue = takeUnblocked(b.queue, b.max, func(c batchCall[Req, Res]) string { return c.key },
		func(k string) bool { return b.busy[k] > 0 })
	keys = make([]string, len(batch))
	for i, c := range batch {
		keys[i] = c.key
	}
	if b.busy == nil {
		b.busy = map[string]int{}
	}
	for _, k := range keys {
		b.busy[k]++
	}
	return batch, keys
}

// takeUnblocked takes from queue, in queue order, up to max items whose
// key is not busy, passing over the items of a busy key and every later
// item of that key, so that a key's items are taken in order. It returns
// the items taken and those left, in order. The batcher and an
// activation's reply publishes (replies.go) take their batches with it.
func takeUnblocked[T any](queue []T, max int, key func(T) string, busy func(string) bool) (batch, left []T) {
	var blocked map[string]bool
	for i, x := range queue {
		if len(batch) == max {
			left = append(left, queue[i:]...)
			break
		}
		k := key(x)
		if blocked[k] || busy(k) {
			if blocked == nil {
				blocked = map[string]bool{}
			}
			blocked[k] = true
			left = append(left, x)
			continue
		}
		batch = append(batch, x)
	}
	return batch, left
}

// deliverOne runs deliver for one call; a panic in it does not keep the
// other calls of the batch from their hand-over, the callers from their
// results, nor the batches after it from theirs.
func (b *batcher[Req, Res]) deliverOne(req Req, res Res) {
	defer func() {
		if p := recover(); p != nil {
			b.recovered("deliver", p)
		}
	}()
	b.deliver(req, res)
}

// keyOf is key(req), or the empty key if key panics: such calls still
// never share a batch in flight with one another.
func (b *batcher[Req, Res]) keyOf(req Req) (key string) {
	defer func() {
		if p := recover(); p != nil {
			key = ""
			b.recovered("key", p)
		}
	}()
	return b.key(req)
}

func (b *batcher[Req, Res]) recovered(where string, p any) {
	if b.panicked != nil {
		b.panicked(where, p)
	}
}

// runBatch runs one batch; a panic in it becomes err, with no results.
func (b *batcher[Req, Res]) runBatch(reqs []Req) (res []Res, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("batch of %d panicked: %v", len(reqs), p)
			b.recovered("run", p)
		}
	}()
	res = b.run(reqs)
	if len(res) < len(reqs) {
		err = fmt.Errorf("batch of %d gave %d results", len(reqs), len(res))
	}
	return res, err
}

// completeRequest is a successful attempt for the node's completion
// batcher: the completion, and the activation and sealed envelope of its
// reply.
type completeRequest struct {
	a   *activation
	env *messagev1.Envelope
	c   persistence.Completion
	// topic is the conversation of the completion's delivery.
	topic string
	// clock times the reply's stages (stages.go).
	clock *stageClock
}

// replyOutcomeLost reports whether a completion that failed with err may
// have stored its reply all the same. A completion that succeeded without
// a reply (its delivery had succeeded already) and one refused for a lost
// lease or a delivery that does not exist stored none.
func replyOutcomeLost(err error) bool {
	return err != nil && !errors.Is(err, persistence.ErrFenced) && !errors.Is(err, persistence.ErrNotFound)
}

// completeDepth is how many completion statements may be in flight at
// once (batcher.depth). The completions of one conversation are never in
// two at once: its replies are stored, and handed over, in order.
const completeDepth = 2

// completeKey is the conversation of a completion.
func completeKey(r completeRequest) string { return r.a.bridgeID + " " + r.topic }

// completeBatch records a batch of completions in one statement.
func completeBatch(store Store, reqs []completeRequest) []persistence.Completed {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs := make([]persistence.Completion, len(reqs))
	for i, r := range reqs {
		cs[i] = r.c
	}
	return store.CompleteDeliveries(ctx, cs)
}

// handOverCompleted queues the replies a batch of completions put in the
// outbox for publishing, in the order they were handed over; the batcher
// hands a conversation's batches over in the order it took them (its
// completions are never in two batches in flight). That is what keeps the
// replies of a conversation in order (reply_order.go). Each reply is
// queued under the lease the statement has just checked, once its
// activation remembers the envelope as its own (conversation.OwnSent), so
// that it is passed over when the subscription brings it back. An
// envelope whose completion was refused or stored no reply is never
// published, and is not remembered.
func handOverCompleted(r completeRequest, res persistence.Completed) {
	switch {
	case res.Err == nil && res.ReplyID != 0:
		r.a.own.Add(r.env.Message)
		r.clock.mark(stageComplete)
		r.a.publishSoon(res.ReplyID, r.c.Reply.Topic, r.env, r.clock)
	case r.c.Reply != nil && replyOutcomeLost(res.Err):
		// The statement may have stored the reply all the same, its
		// outcome lost (completeAgain could not find it, the connection
		// broke, the batch panicked): the younger replies of the
		// conversation, handed over next, wait until the sweep has
		// looked.
		r.a.holdConversation(r.c.Reply.Topic)
	}
}
