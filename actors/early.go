package actors

// Early attempts: a new message's webhook call starts while its delivery
// row commits, instead of after.
//
// A message read live from the node subscription, new to its identity,
// goes to the committer as always (commit.go); when the conditions below
// hold, the identity also hands it to the forward child as an
// *earlyTask, and the child starts its webhook call at once on a worker,
// in a concurrency slot of its own. The call's result waits for the
// record's answer, which the committer hands to the attempt directly
// (earlyAttempt.recorded):
//   - created under a live lease: the result is finished as attempt()
//     would finish it, with the created row (its first attempt), and the
//     identity does not start the delivery again;
//   - not created (the message had a row), fenced, or a record error:
//     the result is dropped, with no attempt row and no reply, and the
//     slot is given back. The identity does for the message what it does
//     today (a pending existing row is attempted as usual; a failed record
//     is tried again).
//
// The conditions: the envelope came from the live stream (not a catch-up
// page, a replay, or a record tried again), its message is new to the
// identity's seen window and fresh (earlyFresh, below); the activation's
// early gate is open (earlyGate); no earlier delivery of its conversation
// is being recorded, or failed to record; the bridge's configuration is in
// the node's cache, active, forwarding by webhook only (no live delivery),
// and the message is not a subscription command; and, when the forward
// child takes the task: nothing waits in its queue, the bridge's
// concurrency limit has a free slot, the endpoint's breaker admits without
// a read or a probe (a cached healthy or failing state), and a record
// statement of this node read the bridge's webhook secrets at most
// maxStartAge ago (earlySecrets). A task the child takes after the
// record's answer has come is declined: the usual start is as quick.
//
// At least once, as before: a crash after the webhook call and before the
// row commits leaves no row and the cursor behind the message, so the
// next activation reads it again and calls the endpoint again, as a
// crash between a call and its completion does today. A fenced-out
// activation may make the call (as an attempt whose lease is lost after
// its start read may today), but it records, completes and publishes
// nothing.
//
// A hostile sender must not make the endpoint be called more than once for
// a message already recorded, which the record's ON CONFLICT stops on the
// usual path but an early call precedes. An envelope carrying the same
// message bytes again, with another envelope timestamp, is early only if
// its signed sent time is within earlyWindow of now; and every message an
// identity forwards, however it came, whose sent time is within that span,
// is remembered node-wide until its sent time is earlyWindow past, so
// that, within the span, it is known again (earlyFresh). A message whose
// sent time lies further ahead, or that the full set cannot take, closes
// the activation's gate until its sent time is earlyWindow past. Messages
// recorded before the activation are covered by the gate's opening: at
// the latest sent time of the bridge's deliveries plus earlyWindow
// (Store.LatestSentNs, read once, earlySettle after the activation so that
// a statement of an earlier owner cannot still be committing; a first
// activation ever, at lease epoch 1, has no earlier rows and reads
// nothing).
//
// Reply order: an early attempt enters the conversation's reply order
// (reply_order.go) with its delivery id when its record is answered,
// before any younger message of the conversation can start (the committer
// answers a conversation's records in order); the older ones have entered
// before it began, since it begins only when none of its conversation is
// being recorded and the forward child's queue is empty.

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
)

// earlyWindow is how far a message's signed sent time may be from now, on
// either side, for its call to start early.
const earlyWindow = 2 * time.Second

// earlySettle is how old an activation that took its lease from an earlier
// owner must be before it reads the latest sent time of its bridge's
// deliveries: longer than a record statement of that owner may still run
// (the committer's 10 s).
const earlySettle = 15 * time.Second

// maxEarlyFresh bounds the node's set of fresh messages.
const maxEarlyFresh = 1 << 15

// maxEarlySecrets bounds the node's cache of webhook secrets.
const maxEarlySecrets = 4096

// earlyJoinTimeout bounds how long an early call's result waits for its
// record's answer; the committer's statement gives up after 10 s.
const earlyJoinTimeout = 20 * time.Second

// earlyTask asks the forward child to start an early attempt.
type earlyTask struct{ e *earlyAttempt }

const (
	earlyPending int32 = iota
	earlyStarted
	earlyDeclined
	// earlyAbandoned: the attempt started but ended without the record's
	// answer (it waited earlyJoinTimeout, or it panicked). A created row
	// that comes later goes to the usual start.
	earlyAbandoned
)

// earlyAttempt is one early webhook call and its join with the record.
type earlyAttempt struct {
	a     *activation
	topic string
	msgID string
	msg   webhook.Message
	auto  bool
	clock *stageClock
	// state moves once, from pending to started (the forward child) or
	// to declined (the child, or the record's answer if it comes first);
	// a started attempt that ends unjoined moves on to abandoned.
	state atomic.Int32

	mu sync.Mutex
	// joined is set, with rec, when the record's answer came to a started
	// attempt; abandoned when the attempt gave up waiting for it.
	joined, abandoned bool
	rec               persistence.Recorded
	done              chan struct{}
}

func newEarlyAttempt(a *activation, topic, msgID string, msg webhook.Message, auto bool, clock *stageClock) *earlyAttempt {
	return &earlyAttempt{a: a, topic: topic, msgID: msgID, msg: msg, auto: auto, clock: clock, done: make(chan struct{})}
}

// start reports whether the attempt may start: its record has not been
// answered yet.
func (e *earlyAttempt) start() bool { return e.state.CompareAndSwap(earlyPending, earlyStarted) }

// decline gives the message to the usual start.
func (e *earlyAttempt) decline() { e.state.CompareAndSwap(earlyPending, earlyDeclined) }

// started reports whether the attempt started (false for nil); final once
// the record is answered.
func (e *earlyAttempt) started() bool { return e != nil && e.state.Load() == earlyStarted }

// recorded hands the record's answer to the attempt, on the committer's
// goroutine, before the identity hears of it. A created row is the
// attempt's from now: it runs (a sweep that finds the row waits for it)
// and it holds its conversation's younger replies back.
func (e *earlyAttempt) recorded(res persistence.Recorded) {
	if e.state.CompareAndSwap(earlyPending, earlyDeclined) || e.state.Load() != earlyStarted {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.abandoned {
		return // a created row stays due: the sweep attempts it
	}
	e.joined, e.rec = true, res
	if res.Err == nil && res.Created {
		a := e.a
		a.running.add(res.Delivery.ID)
		a.rt.replyOrder.enter(a.bridgeID, e.topic, res.Delivery.ID)
	}
	close(e.done)
}

// join waits for the record's answer; false if it did not come in time
// (and then it never joins).
func (e *earlyAttempt) join() (persistence.Recorded, bool) {
	t := time.NewTimer(earlyJoinTimeout)
	defer t.Stop()
	select {
	case <-e.done:
	case <-t.C:
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.joined {
		e.abandonLocked()
		return persistence.Recorded{}, false
	}
	return e.rec, true
}

// abandonLocked ends an attempt that was not joined: the record's answer,
// when it comes, is the identity's to start as usual (started is false
// from now). e.mu is held.
func (e *earlyAttempt) abandonLocked() {
	e.abandoned = true
	e.state.Store(earlyAbandoned)
}

// settle ends the attempt however its call ended, a panic included: an
// attempt not joined yet is abandoned, and the id of the row its record
// created, if any, is returned, so that the row's running entry and its
// place in the conversation's reply order are given back.
func (e *earlyAttempt) settle() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.joined {
		e.abandonLocked()
		return 0
	}
	if e.rec.Err == nil && e.rec.Created {
		return e.rec.Delivery.ID
	}
	return 0
}

// earlyStore is what the early gate needs of the store; a Store without it
// forwards nothing early.
type earlyStore interface {
	LatestSentNs(ctx context.Context, bridgeID string) (int64, error)
}

// earlyGate is when an activation may start calls early. The zero value is
// closed until opened.
type earlyGate struct {
	// from is when it opens (unix ns), 0 while unknown; asked is when it
	// was last read, and failed how many reads in a row failed.
	from   atomic.Int64
	asked  atomic.Int64
	failed atomic.Int32
	// reading is set while a read is under way: one at a time.
	reading atomic.Bool
	// until is when the messages it could not remember stop being fresh
	// (unix ns).
	until atomic.Int64
}

// close keeps the gate closed until ns.
func (g *earlyGate) close(ns int64) {
	for {
		cur := g.until.Load()
		if ns <= cur || g.until.CompareAndSwap(cur, ns) {
			return
		}
	}
}

// earlyOpen reports whether the activation may start calls early now; the
// first time after earlySettle it reads when (in the background).
func (a *activation) earlyOpen(now time.Time) bool {
	g := &a.early
	ns := now.UnixNano()
	if from := g.from.Load(); from != 0 {
		return ns >= from && ns >= g.until.Load()
	}
	st, ok := a.rt.cfg.Store.(earlyStore)
	if !ok {
		return false
	}
	lease := a.currentLease()
	if lease.Epoch == 1 {
		// The identity's first lease ever: no delivery of it was recorded
		// before this activation.
		g.from.Store(a.started.UnixNano())
		return ns >= g.until.Load()
	}
	if now.Sub(a.started) < a.rt.cfg.earlySettle {
		return false
	}
	if last := g.asked.Load(); last != 0 && ns-last < int64(earlyRetry(g.failed.Load())) || !g.reading.CompareAndSwap(false, true) {
		return false
	}
	g.asked.Store(ns)
	a.rt.workers.Go(func() {
		defer g.reading.Store(false)
		ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
		defer cancel()
		latest, err := st.LatestSentNs(ctx, a.bridgeID)
		if err != nil {
			// The gate stays closed, and the read waits longer each time
			// it fails: a read that times out on a bridge with very many
			// deliveries must not run again every few seconds.
			g.failed.Add(1)
			return
		}
		g.from.Store(max(latest+int64(earlyWindow), 1))
	})
	return false
}

// earlyRetry is how long the early gate waits before it reads the latest
// sent time again after failed reads in a row: 5 s, doubling, at most 10
// minutes.
func earlyRetry(failed int32) time.Duration {
	d := 5 * time.Second
	for i := int32(0); i < failed && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// earlyFresh is the node's set of fresh messages: those its identities
// forwarded whose sent time was within earlyWindow of when they came, each
// kept until its sent time is earlyWindow past. It never holds more than
// maxEarlyFresh; nothing runs on a timer: an insert drops what has expired
// every 2 earlyWindow, or at most every 100 ms while the set is full.
type earlyFresh struct {
	mu    sync.Mutex
	ids   map[earlyKey]int64
	swept time.Time
}

type earlyKey struct{ bridge, message string }

// note remembers a message of bridge sent at sent, come now; it reports
// whether the message may be called early: fresh and new to the set. When
// it may never be known again as it should, it returns the time (unix ns)
// until which the activation's gate must stay closed instead, or 0.
func (f *earlyFresh) note(bridge, message string, sent, now time.Time) (bool, int64) {
	s, n := sent.UnixNano(), now.UnixNano()
	keep := s + int64(earlyWindow)
	switch {
	case keep < n:
		return false, 0 // never early again: too old already
	case s > n+int64(earlyWindow):
		return false, keep // further ahead than the set remembers
	}
	k := earlyKey{bridge, message}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, known := f.ids[k]; known {
		return false, 0
	}
	if f.ids == nil {
		f.ids = map[earlyKey]int64{}
	}
	if since := now.Sub(f.swept); since >= 2*earlyWindow || len(f.ids) >= maxEarlyFresh && since >= 100*time.Millisecond {
		f.swept = now
		for id, until := range f.ids {
			if until < n {
				delete(f.ids, id)
			}
		}
	}
	if len(f.ids) >= maxEarlyFresh {
		return false, keep
	}
	f.ids[k] = keep
	return true, 0
}

// earlySecrets holds, by bridge, the webhook secrets the node's last
// record statement of a created row read, and when; an early call uses
// them only while they are at most maxStartAge old, as a recorded start.
type earlySecrets struct {
	mu sync.Mutex
	m  map[string]cachedSecrets
	// gen counts forgets: a statement sent before a bridge was forgotten
	// (its secrets rotated, say) may have read what the rotation
	// replaced, and must not put it back.
	gen uint64
}

// generation is what put must be given for a statement sent now.
func (c *earlySecrets) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

type cachedSecrets struct {
	secrets []persistence.WebhookSecret
	at      time.Time
}

// put keeps the secrets a statement read, sent at at in generation gen:
// nothing if a bridge was forgotten since it was sent, or if a statement
// sent later has put the bridge's secrets already.
func (c *earlySecrets) put(bridge string, secrets []persistence.WebhookSecret, at time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if cur, ok := c.m[bridge]; ok && cur.at.After(at) {
		return
	}
	if c.m == nil {
		c.m = map[string]cachedSecrets{}
	}
	if _, ok := c.m[bridge]; !ok && len(c.m) >= maxEarlySecrets {
		for b, s := range c.m {
			if at.Sub(s.at) > maxStartAge {
				delete(c.m, b)
			}
		}
		if len(c.m) >= maxEarlySecrets {
			return
		}
	}
	c.m[bridge] = cachedSecrets{secrets: secrets, at: at}
}

// fresh returns the bridge's secrets if they were read at most maxStartAge
// ago.
func (c *earlySecrets) fresh(bridge string, now time.Time) ([]persistence.WebhookSecret, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[bridge]
	if !ok || now.Sub(s.at) > maxStartAge {
		return nil, false
	}
	return s.secrets, true
}

func (c *earlySecrets) forget(bridge string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, bridge)
	c.gen++
}

// earlyFor returns the early attempt of a message the identity is about to
// record, or nil when it must start as usual. fresh is what earlyFresh
// said of it.
func (id *identity) earlyFor(msg *conversation.Message, payload []byte, clock *stageClock, live, fresh bool) *earlyAttempt {
	a := id.a
	// An OnForward hook sees every delivery the forward child takes: an
	// early attempt takes a message before it is one.
	if !live || !fresh || id.rt.cfg.earlyOff || id.rt.earlyPaused.Load() || id.rt.cfg.OnForward != nil || !a.earlyOpen(time.Now()) {
		return nil
	}
	if r := id.rec(); r.sent[msg.Topic] > r.answered[msg.Topic] {
		return nil // an older message of the conversation is being recorded
	} else {
		for _, t := range r.failed {
			if t == msg.Topic {
				return nil
			}
		}
	}
	b, ok := id.rt.cachedBridge(a.bridgeID)
	if !ok || !earlyBridge(b) {
		return nil
	}
	contentType, text, auto, err := decodePayload(payload)
	if err != nil || b.Subscriptions.Command(text) != 0 {
		return nil
	}
	m := a.webhookMessage(msg.ID, msg.Sender, msg.Topic, contentType, text, sentNs(msg.Sent))
	return newEarlyAttempt(a, msg.Topic, msg.ID, m, auto, clock)
}

// earlyBridge reports whether a bridge's configuration lets a call start
// early: active, forwarding by webhook only.
func earlyBridge(b persistence.Bridge) bool {
	return b.Status == persistence.StatusActive && b.Forward.URL != "" && !b.Delivery.Live()
}

// concurrency is the bridge's limit of attempts at once.
func concurrency(b persistence.Bridge) int {
	if b.Forward.MaxConcurrency <= 0 {
		return 64 // the API's default
	}
	return b.Forward.MaxConcurrency
}

// admitsEarly reports whether the endpoint's breaker admits an attempt
// without a read or a probe.
func (a *activation) admitsEarly() bool {
	br := a.rt.breaker
	if br.store == nil {
		return true
	}
	s, ok := br.cached(a.bridgeID)
	return ok && (s == persistence.EndpointHealthy || s == persistence.EndpointFailing)
}

// startEarly starts an early attempt if the forward child may now, and
// declines it otherwise.
func (f *forwarder) startEarly(ctx actor.Context, e *earlyAttempt) {
	a := f.a
	b, ok := a.rt.cachedBridge(a.bridgeID)
	now := time.Now()
	// Nothing may wait to start before it, queued or parked behind an
	// attempt in flight: it would seal its reply after this one's.
	waiting := len(f.queue) > 0 || len(f.again) > 0 || len(f.againEarly) > 0
	if !ok || !earlyBridge(b) || waiting || f.running >= concurrency(b) || a.ctx.Err() != nil || !a.admitsEarly() {
		e.decline()
		return
	}
	secrets, ok := a.rt.earlySecrets.fresh(a.bridgeID, now)
	if !ok {
		e.decline()
		return
	}
	if !e.start() {
		return // its record was answered first
	}
	ep := endpointOf(b, secrets)
	f.running++
	a.earlyMessages.add(e.msgID)
	a.attempts.Add(1)
	self := ctx.Self()
	a.rt.workers.Go(func() { a.runEarly(b, ep, e, self) })
}

// runEarly makes an early attempt's call, then joins it with its record.
func (a *activation) runEarly(b persistence.Bridge, ep webhook.Endpoint, e *earlyAttempt, self *actor.PID) {
	rt := a.rt
	var deliveryID int64
	defer a.attempts.Done()
	defer func() { rt.root.Send(self, &attemptDone{deliveryID: deliveryID, early: e.msgID}) }()
	defer func() {
		// After the recover below, so that a panic in the call gives back
		// what a joined row holds, as the end of any attempt does.
		if id := e.settle(); id != 0 {
			deliveryID = id
			rt.replyOrder.leave(a.bridgeID, e.topic, id)
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("webhook attempt panicked", "message", e.msgID, "panic", p)
			rt.metrics.panics.WithLabelValues("attempt").Inc()
		}
	}()
	e.clock.mark(stageDispatch)
	timeout := ep.Timeout
	if timeout <= 0 {
		timeout = webhook.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(a.ctx, timeout)
	res := rt.cfg.Deliverer.Deliver(ctx, ep, e.msg)
	cancel()
	e.clock.mark(stageWebhook)
	// A created row is this attempt's (recorded): it runs, and holds its
	// conversation's younger replies back, until the attempt ends.
	rec, ok := e.join()
	if !ok || rec.Err != nil || !rec.Created {
		rt.metrics.earlyDropped.Inc()
		return
	}
	rt.metrics.earlyJoined.Inc()
	e.clock.mark(stageRecord)
	a.finish(b, rec.Delivery, res, e.auto, e.clock)
}
