package api

import (
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
// it wait in its hold, in the order they came, until a catch-up that began
// after the first of them arrived has delivered what it found. That
// catch-up saw everything stored before the first held envelope (the node
// stores an envelope before it streams it), so once it is delivered the
// held envelopes follow in order, less those it already delivered. A hold
// with nothing in it ends with the catch-up that the settle delay queues
// after the stream sent the set carrying the topic; from then on the node
// streams every new envelope of the topic.
//
// Holds are bounded per topic (holdEnvelopes, holdBytes) and per
// subscription (holdTotalBytes). On overflow the topic's held envelopes
// are dropped and it is queried again from its last delivered envelope:
// nothing is lost, and the hold goes on until that catch-up is delivered.
//
// Holds are guarded by Subscription.mu. A hold is released by the
// catch-up goroutine, the one that delivers catch-up results, so releases
// and catch-ups of a topic never interleave.
type hold struct {
	envs  []*messagev1.Envelope
	bytes int
	// armed: a catch-up numbered above after (Subscription.catchSeq)
	// releases the hold once it is delivered.
	armed bool
	after uint64
	// epoch is the stream connection the hold belongs to; a settle
	// timer of an earlier connection does not arm it.
	epoch uint64
	// releasing: its catch-up is delivered and the held envelopes are
	// going out; one that comes meanwhile goes in turn, without waiting
	// for another catch-up.
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
)

func heldSize(env *messagev1.Envelope) int {
	return len(env.Message) + len(env.ContentTopic) + envelopeOverhead
}

// fromStream delivers an envelope received on a stream, or holds it while
// its topic is held.
func (s *Subscription) fromStream(env *messagev1.Envelope) {
	s.mu.Lock()
	h := s.holds[env.ContentTopic]
	if h == nil {
		s.mu.Unlock()
		s.deliver(env)
		return
	}
	ts := s.topics[env.ContentTopic]
	if ts == nil {
		// Removed; deliver drops it.
		s.mu.Unlock()
		return
	}
	size := heldSize(env)
	if len(h.envs) >= s.c.opts.holdEnvelopes || h.bytes+size > s.c.opts.holdBytes || s.heldBytes+size > s.c.opts.holdTotalBytes {
		// Too much waits: drop it all and query again from the last
		// envelope delivered, which a catch-up beginning from now on
		// covers, this envelope included.
		// The query starts no later than the oldest envelope dropped:
		// senders set the timestamps, and one far below the last
		// delivered would not be fetched again from there.
		start := min(s.startOf(ts), env.TimestampNs)
		for _, e := range h.envs {
			start = min(start, e.TimestampNs)
		}
		s.heldBytes -= h.bytes
		h.envs, h.bytes = nil, 0
		h.armed, h.after, h.releasing = true, s.catchSeq, false
		s.overflows.Add(1)
		from := map[string]uint64{env.ContentTopic: max(start, 1)}
		s.mu.Unlock()
		s.c.opts.logger.Debug("xmtp subscription hold overflowed; querying the topic again", "topic", env.ContentTopic)
		s.schedule(from)
		return
	}
	first := len(h.envs) == 0
	h.envs = append(h.envs, env)
	h.bytes += size
	s.heldBytes += size
	if !first || h.releasing {
		s.mu.Unlock()
		return
	}
	// The first held envelope: the catch-up that releases the hold must
	// begin after it came.
	h.armed, h.after = true, s.catchSeq
	from := map[string]uint64{env.ContentTopic: s.startOf(ts)}
	s.mu.Unlock()
	s.schedule(from)
}

// holdTopic starts holding t, or holds it again for a new connection of
// its stream; s.mu is held. Envelopes already held stay: they are older
// than any the new connection brings.
func (s *Subscription) holdTopic(t string, epoch uint64) {
	h := s.holds[t]
	if h == nil {
		h = &hold{}
		s.holds[t] = h
	}
	h.armed, h.epoch, h.releasing = false, epoch, false
}

// dropHold forgets the hold of a removed topic; s.mu is held.
func (s *Subscription) dropHold(t string) {
	if h := s.holds[t]; h != nil {
		s.heldBytes -= h.bytes
		delete(s.holds, t)
	}
}

// armHolds arms the holds of from that belong to the stream connection
// epoch and are not armed yet: the settle delay after the set carrying
// them was sent has passed, so the node streams them, and the catch-up
// queued now releases them. s.mu is held.
func (s *Subscription) armHolds(holds map[string]*hold, epoch uint64) {
	for t, was := range holds {
		if h := s.holds[t]; h != nil && h == was && !h.armed && h.epoch == epoch {
			h.armed, h.after = true, s.catchSeq
		}
	}
}

// holdsOf returns the holds of the topics of from as they are now, for
// the settle timer to arm: a topic removed and added again meanwhile has
// a hold of its own, which its own timer arms. s.mu is held.
func (s *Subscription) holdsOf(from map[string]uint64) map[string]*hold {
	holds := make(map[string]*hold, len(from))
	for t := range from {
		if h := s.holds[t]; h != nil {
			holds[t] = h
		}
	}
	return holds
}

// releaseHolds ends, after catch-up seq of the topics in work has been
// delivered, the holds it releases: their envelopes are delivered in the
// order they came (those the catch-up delivered are dropped as seen). It
// runs on the catch-up goroutine.
func (s *Subscription) releaseHolds(seq uint64, work map[string]uint64) {
	var ready []string
	s.mu.Lock()
	for t := range work {
		if h := s.holds[t]; h != nil && h.armed && seq > h.after {
			ready = append(ready, t)
		}
	}
	s.mu.Unlock()
	for _, t := range ready {
		s.release(t, seq)
	}
}

// release delivers the held envelopes of t one by one; envelopes the
// stream brings meanwhile join the hold and go in turn. It stops when the
// hold is empty (and ends it), or when the hold is held again, re-armed
// or dropped meanwhile. Only catch-up seq, delivered, releases: a hold
// overflowed or re-armed since releaseHolds looked waits for a later one.
func (s *Subscription) release(t string, seq uint64) {
	s.mu.Lock()
	h := s.holds[t]
	if h == nil || !h.armed || seq <= h.after {
		s.mu.Unlock()
		return
	}
	after := h.after
	h.releasing = true
	for {
		if s.holds[t] != h || !h.armed || h.after != after {
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
