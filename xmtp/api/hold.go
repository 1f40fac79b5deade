package api

import (
	"math"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
)

// A topic's stream envelopes and its catch-up race: when a topic is added,
// or its stream reconnects, the node streams what is published from the
// moment it applies the topic set, while the catch-up query fetches what
// was stored before. Delivered as they come, a live envelope could go
// before older ones the catch-up had not delivered yet, and a
// conversation's messages would reach the consumer out of order.
//
// So a new or reconnected topic is held: envelopes the stream brings for
// it wait in its hold, in the order they came, until the node is known to
// stream the topic and a catch-up begun after that has delivered what it
// found. The node stores an envelope before it streams it, so that
// catch-up saw everything the stream does not bring; the held envelopes
// follow it in order, less those it already delivered: each catch-up page
// takes what it delivers out of the hold, and the stream holds none a
// catch-up has delivered, so a hold keeps no duplicates against its
// bounds, and none is delivered twice when the seen set forgets it.
//
// Subscribe2 does not acknowledge a topic set, and a node may apply one
// late (xmtp-node-go applies it on another path than its queries), so no
// delay proves that the node streams a topic. The stream itself does: an
// envelope of a topic that no earlier set of the connection carried shows
// that the node has applied the set that first carried it, and with it
// every earlier set of the connection (a stream's sets are applied in the
// order sent). Such an envelope proves the holds of all the topics those
// sets carried (hold.proven); a topic removed and added again on the same
// connection proves nothing while the stream has not shown that the node
// applied the set that removed it (its envelope may come from the set that
// carried it before), though others prove it, and the stream forgets the
// removal once it has (the node streams no topic its sets dropped); until then each of its
// envelopes is fetched by a catch-up queued when it comes, and delivered
// from there. Until its proof a held
// topic is caught up after the settle delay, then after four times that,
// and so on up to proofProbeMax between catch-ups: what those find is
// delivered, so a topic nothing else is published to still gets what was
// stored while the node had not applied its set, but its hold stays until
// the proof, and an empty hold costs a few words. With WithSetProofs the
// subscription does not wait for traffic: each set carries a private
// proof topic, and the envelope it publishes there proves the set
// (proof.go); the catch-ups above remain for when that proof fails.
//
// A sender sets an envelope's timestamp, and the node takes any: one the
// stream brings stamped before where the topic's catch-up started (the
// hold's base) is delivered as it comes, since no catch-up fetches it and
// its order against the rest means nothing. No catch-up of a hold starts
// below its base, so a sender stamping envelopes in the far past makes the
// catch-up read neither them nor the topic's history again. Once a hold is
// proven, an overflow delivers at once, in the order they came, the held
// envelopes stamped no later than where the catch-up of the proof has got
// to (hold.reached), which that catch-up has passed: stamped within the
// clock-skew allowance of the start, they no longer send it back to read
// everything since them after each overflow. Before the proof, each of
// a topic's envelopes still moves its catch-up back to its stamp.
//
// Holds are bounded per topic (holdEnvelopes, holdBytes) and per
// subscription (holdTotalBytes). On overflow the topic's held envelopes
// are dropped and the topic's catch-up fetches those not yet delivered:
// the catch-up in progress pages on to them, or one starts at the oldest
// of them. Nothing is lost and nothing is read twice but around an
// overflow; a topic flooded faster than its catch-up pages is delivered by
// its pages until the flood eases and a page comes back short.
//
// A catch-up page delivers nothing stamped at or past an envelope still
// to fetch below where it started (unfetched, catchup.go), and a page
// asked before a drop moves h.reached no further than the drop's stamp:
// either way a sender's later envelope would overtake its dropped
// earlier one. Before a page's envelopes go, the held ones stamped
// behind where the catch-up has got to go (passedHeld), as no page
// fetches them. One race is left: senders stamp their own envelopes, so
// another sender's envelope stamped later can be stored first, and a
// catch-up that starts at it (the oldest a hold dropped) can fetch a
// sender's later envelopes while its earlier ones, stamped below that
// start, are stored but not yet streamed. They then go after the later
// ones. It needs two senders' stamps crossed within a topic that
// overflows its hold, and the stream running behind the queries; the
// cure is a hold that keeps the order of what it dropped, not only its
// oldest stamp.
//
// Holds are guarded by Subscription.mu. A hold is released by the
// catch-up goroutine, the one that delivers catch-up results, so releases
// and catch-ups of a topic never interleave.
type hold struct {
	envs  []*messagev1.Envelope
	bytes int
	// proven: the stream has shown that the node streams the topic on
	// connection epoch; the topic's catch-up begun since then releases
	// the hold once it is done.
	proven bool
	epoch  uint64
	// floor is, while the hold is not proven, the oldest timestamp of
	// envelopes it dropped that were not delivered (noFloor: none); the
	// catch-up of the proof starts no later.
	floor uint64
	// chase is the catch-up begun at the proof, and reached how far it
	// has got: it has fetched every envelope stamped from its start up
	// to reached that was stored before its last page was asked, and
	// every envelope the hold dropped undelivered is stamped at or past
	// it (advance).
	chase   *chase
	reached uint64
	// base is where the topic's catch-up started when it was held: the
	// stream's envelopes stamped before it are delivered as they come,
	// so no floor or catch-up of the hold goes below it, and nothing
	// stored before it is read again.
	base uint64
	// releasing: its catch-up is done and the held envelopes are going
	// out; one that comes meanwhile goes in turn.
	releasing bool
}

// Default bounds of held envelopes.
const (
	defaultHoldEnvelopes  = 64
	defaultHoldBytes      = 256 << 10
	defaultHoldTotalBytes = 8 << 20
	// envelopeOverhead is counted for each held envelope besides its
	// message and topic.
	envelopeOverhead = 64
	// noFloor is a floor that asks for nothing.
	noFloor = math.MaxUint64
)

// proofProbeMax is the longest wait between two catch-ups of a topic whose
// hold waits for proof that the node streams it: a node that has not
// applied a set for that long may still have stored, unstreamed, what is
// published meanwhile. A topic costs one query per wait; 100,000 idle
// topics, about 56 a second at the longest.
const proofProbeMax = 30 * time.Minute

// probeRoundPages is the most pages of probes a round of catch-up pages
// asks.
const probeRoundPages = 4 * maxBatch

func heldSize(env *messagev1.Envelope) int {
	return len(env.Message) + len(env.ContentTopic) + envelopeOverhead
}

// fromStream delivers an envelope received on st, or holds it while its
// topic is held; it takes what the envelope proves first.
func (s *Subscription) fromStream(st *stream, env *messagev1.Envelope) {
	t := env.ContentTopic
	s.mu.Lock()
	if s.proofOf(st, env) {
		// A set's proof (proof.go): never the consumer's.
		s.mu.Unlock()
		return
	}
	ts := s.topics[t]
	if ts != nil && ts.stream == st && ts.goneAt <= st.applied && ts.set > st.applied {
		s.applied(st, ts.set)
	}
	h := s.holds[t]
	if h == nil {
		s.mu.Unlock()
		s.deliver(env)
		return
	}
	if ts == nil {
		// Removed; deliver drops it.
		s.mu.Unlock()
		return
	}
	if !h.proven && ts.stream == st && h.epoch == st.epoch && ts.set != 0 && ts.set <= st.applied {
		s.prove(t, ts, h)
	}
	if env.TimestampNs < h.base {
		// Stamped before where the topic's catch-ups start, so none
		// fetches it, and its order against the topic's other
		// envelopes means nothing: a sender sets the timestamp, and the
		// node takes any. It goes now, and moves no catch-up back.
		s.mu.Unlock()
		s.deliver(env)
		return
	}
	if !h.proven {
		// Its envelope proves nothing (hold.go): the hold stays, and
		// the catch-up fetches the envelope, so the topic's envelopes
		// are delivered, in order, at the pace of its catch-ups.
		if c := s.chases[t]; c != nil {
			c.floor = min(c.floor, env.TimestampNs)
		} else {
			s.restart(t, min(s.startFor(ts, h), env.TimestampNs))
		}
		signal(s.wake)
	}
	if s.recent.has(envelopeKey(env)) {
		// A catch-up delivered it already.
		s.mu.Unlock()
		return
	}
	size := heldSize(env)
	if len(h.envs) >= s.c.opts.holdEnvelopes || h.bytes+size > s.c.opts.holdBytes || s.heldBytes+size > s.c.opts.holdTotalBytes {
		// Too much waits: drop it all, and fetch again those not
		// delivered yet from the oldest of them. Senders set the
		// timestamps, so the oldest is not always the first.
		// Once proven, those stamped no later than where the catch-up
		// of the proof has got to (h.reached) were stored after its
		// pages passed them, or lie just past its cursor (the next
		// page brings them again, and the seen set drops them): they
		// go now, in the order they came, rather than make the
		// catch-up read all since them again.
		floor := uint64(noFloor)
		var now []*messagev1.Envelope
		for _, e := range append(h.envs, env) {
			switch {
			case s.recent.has(envelopeKey(e)):
			case h.proven && h.reached > 0 && e.TimestampNs <= h.reached:
				now = append(now, e)
			default:
				floor = min(floor, e.TimestampNs)
			}
		}
		s.heldBytes -= h.bytes
		h.envs, h.bytes, h.releasing = nil, 0, false
		s.overflows.Add(1)
		if h.proven {
			// A catch-up must release the hold, even when nothing
			// dropped is missing (noFloor: it pages on, or one that
			// finds nothing starts).
			s.dropped(t, floor)
		} else {
			h.floor = min(h.floor, floor)
		}
		s.mu.Unlock()
		s.c.opts.logger.Debug("xmtp subscription hold overflowed; fetching its envelopes again", "topic", t)
		for _, e := range now {
			s.deliver(e)
		}
		return
	}
	h.envs = append(h.envs, env)
	h.bytes += size
	s.heldBytes += size
	s.mu.Unlock()
}

// applied records that the node has applied set n of st's connection, and
// proves the holds waiting for it; s.mu is held.
func (s *Subscription) applied(st *stream, n uint64) {
	st.applied = n
	st.proved(n)
	// The node no longer streams a topic removed by set n or earlier:
	// given again, its envelopes come from a later set.
	for t, gone := range st.gone {
		if gone <= n {
			delete(st.gone, t)
		}
	}
	for t := range st.waiting {
		ts := s.topics[t]
		if ts == nil || ts.stream != st {
			delete(st.waiting, t)
			continue
		}
		if ts.set == 0 || ts.set > n {
			continue
		}
		delete(st.waiting, t)
		if h := s.holds[t]; h != nil && !h.proven && h.epoch == st.epoch {
			s.prove(t, ts, h)
		}
	}
}

// prove marks h proven and starts the topic's catch-up again: the one
// that releases the hold begins now. s.mu is held.
func (s *Subscription) prove(t string, ts *topicState, h *hold) {
	h.proven = true
	from := s.startFor(ts, h)
	h.floor = noFloor
	s.restart(t, from)
	h.chase, h.reached = s.chases[t], 0
	delete(ts.stream.waiting, t)
	signal(s.wake)
}

// startFor is where a catch-up of t starts while it is held by h: no
// later than its last delivered envelope less the clock-skew allowance,
// nor than an envelope h dropped undelivered. s.mu is held.
func (s *Subscription) startFor(ts *topicState, h *hold) uint64 {
	return min(s.startOf(ts), h.floor)
}

// holdTopic starts holding t on st's connection, or holds it again for a
// new connection; s.mu is held. Envelopes already held stay: they are
// older than any the new connection brings.
func (s *Subscription) holdTopic(t string, st *stream) {
	base := s.startOf(s.topics[t])
	h := s.holds[t]
	if h == nil {
		h = &hold{floor: noFloor, base: base}
		s.holds[t] = h
	} else {
		// Held again: what the hold still keeps, or dropped, may be
		// older than the new start.
		h.base = min(h.base, base)
	}
	h.proven, h.epoch, h.releasing, h.chase, h.reached = false, st.epoch, false, nil, 0
	if st.waiting == nil {
		st.waiting = map[string]struct{}{}
	}
	st.waiting[t] = struct{}{}
}

// heldKey identifies a held envelope among those of its topic.
type heldKey struct {
	ts  uint64
	msg string
}

// unhold takes out of t's hold the envelopes a catch-up page just
// delivered, envs: they are not delivered again when the hold is
// released, whatever the seen set has forgotten by then, and do not count
// against the bounds of holds while the hold waits for proof.
func (s *Subscription) unhold(t string, envs []*messagev1.Envelope) {
	if len(envs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.holds[t]
	if h == nil || len(h.envs) == 0 {
		return
	}
	paged := make(map[heldKey]struct{}, len(envs))
	for _, e := range envs {
		paged[heldKey{e.TimestampNs, string(e.Message)}] = struct{}{}
	}
	s.takeHeld(h, func(e *messagev1.Envelope) bool {
		_, ok := paged[heldKey{e.TimestampNs, string(e.Message)}]
		return ok
	})
}

// takeHeld takes out of h the envelopes that take says to, and returns
// them in the order they came; s.mu is held.
func (s *Subscription) takeHeld(h *hold, take func(*messagev1.Envelope) bool) []*messagev1.Envelope {
	var out []*messagev1.Envelope
	kept := h.envs[:0]
	for _, e := range h.envs {
		if !take(e) {
			kept = append(kept, e)
			continue
		}
		size := heldSize(e)
		h.bytes -= size
		s.heldBytes -= size
		out = append(out, e)
	}
	clear(h.envs[len(kept):])
	h.envs = kept
	return out
}

// dropHold forgets the hold and the catch-up of a removed topic; s.mu is
// held.
func (s *Subscription) dropHold(t string) {
	if h := s.holds[t]; h != nil {
		s.heldBytes -= h.bytes
		delete(s.holds, t)
	}
	delete(s.chases, t)
}

// release delivers the held envelopes of t one by one once its catch-up
// is done; envelopes the stream brings meanwhile join the hold and go in
// turn. It stops when the hold is empty (and ends it), or when it is held
// again, overflowed or dropped meanwhile. It runs on the catch-up
// goroutine.
func (s *Subscription) release(t string, h *hold) {
	s.mu.Lock()
	if s.holds[t] != h || !h.proven || s.chases[t] != nil {
		s.mu.Unlock()
		return
	}
	h.releasing = true
	for {
		if s.holds[t] != h || !h.releasing {
			s.mu.Unlock()
			return
		}
		if len(h.envs) == 0 {
			delete(s.holds, t)
			s.mu.Unlock()
			return
		}
		env := h.envs[0]
		h.envs[0] = nil
		h.envs = h.envs[1:]
		size := heldSize(env)
		h.bytes -= size
		s.heldBytes -= size
		s.mu.Unlock()
		s.deliver(env)
		if s.ctx.Err() != nil {
			return
		}
		s.mu.Lock()
	}
}
