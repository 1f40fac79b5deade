package api

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"sort"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
)

// deliver hands env to the consumer unless its topic was removed or it was
// delivered before.
func (s *Subscription) deliver(env *messagev1.Envelope) {
	s.mu.Lock()
	st, ok := s.topics[env.ContentTopic]
	if !ok || !s.recent.add(envelopeKey(env)) {
		s.mu.Unlock()
		return
	}
	// A sender sets the timestamp: one far in the future must not move
	// where the topic's catch-ups start past what is stored now.
	if ts := min(env.TimestampNs, uint64(time.Now().UnixNano())+uint64(s.c.opts.skew)); ts > st.lastSeen {
		st.lastSeen = ts
	}
	s.mu.Unlock()
	select {
	case s.out <- env:
	case <-s.ctx.Done():
	}
}

// A chase is a topic's catch-up in progress: a query paged forward one
// page per round, so that every topic with a catch-up gets its page in
// each round and none waits behind another's pages. It has fetched
// everything stored before its first page with a timestamp from start up
// to its cursor, and is done when a page comes back without a cursor.
// Guarded by Subscription.mu.
type chase struct {
	start  uint64
	cursor *messagev1.Cursor // the next page's; nil: from start
	// gen counts restarts: the answer to a page asked before one is
	// delivered, but does not move the chase.
	gen uint64
	// floor is the oldest timestamp of envelopes that the topic's hold
	// dropped undelivered since the chase's page was asked (noFloor:
	// none); a later page must fetch them.
	floor uint64
	// probe: only a probe wants the chase (probe); a round pages the
	// other chases first, and a bounded number of probes.
	probe bool
}

// position is the timestamp the chase's next page starts from.
func (c *chase) position() uint64 {
	if ix := c.cursor.GetIndex(); ix != nil {
		return ix.SenderTimeNs
	}
	return c.start
}

// restart makes t's catch-up fetch, from its next page on, everything
// stored with a timestamp from from, and what the chase in progress had
// still to fetch; s.mu is held.
func (s *Subscription) restart(t string, from uint64) {
	if _, ok := s.topics[t]; !ok {
		return
	}
	c := s.chases[t]
	if c == nil {
		s.chases[t] = &chase{start: from, floor: noFloor}
		return
	}
	c.start, c.cursor = min(from, c.position()), nil
	c.gen++
	c.probe = false
}

// dropped makes t's catch-up fetch the envelopes its hold dropped, the
// oldest at floor: the chase in progress pages on to them, or a new one
// starts there. s.mu is held.
func (s *Subscription) dropped(t string, floor uint64) {
	if c := s.chases[t]; c != nil {
		c.floor = min(c.floor, floor)
		c.probe = false
	} else {
		s.chases[t] = &chase{start: floor, floor: noFloor}
	}
	signal(s.wake)
}

// probe catches up the topics of st's connection epoch whose holds wait
// for proof that the node streams them (hold.go): now, then again after
// wait, four times that and so on up to proofProbeMax, each wait
// jittered down to half, as long as their holds wait. A topic whose
// catch-up is in progress waits for the next. A probe's catch-ups go after
// the others in each round, at most probeRoundPages of them a round, so
// that the probes of a reconnected stream's many idle topics neither
// delay a proven or overflowed topic's catch-up by more than that nor
// come as one burst of pages. With set proofs (proof.go) each probe also
// publishes the stream's last proof again, and a proof that comes ends
// the chain.
func (s *Subscription) probe(st *stream, holds map[string]*hold, epoch uint64, wait time.Duration) {
	left := s.probeNow(st, holds, epoch)
	if len(left) == 0 {
		return
	}
	signal(s.wake)
	// The stream's last proof goes again too (proof.go): one envelope
	// for the whole stream, which may prove these holds by the next.
	s.reprove(st, epoch)
	s.probeLater(st, left, epoch, wait)
}

// probeNow starts the catch-ups of the topics of holds that still wait
// for proof on st's connection epoch, and returns those holds. A nil hold
// in holds stands for whatever hold its topic has.
func (s *Subscription) probeNow(st *stream, holds map[string]*hold, epoch uint64) map[string]*hold {
	left := make(map[string]*hold, len(holds))
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, was := range holds {
		h, ts := s.holds[t], s.topics[t]
		if h == nil || h != was && was != nil || ts == nil || ts.stream != st || h.epoch != epoch || h.proven {
			continue
		}
		if s.chases[t] == nil {
			s.restart(t, s.startFor(ts, h))
			s.chases[t].probe = true
		}
		left[t] = h
	}
	return left
}

// probeLater probes holds after wait, jittered down to half of it, so
// that the chains of sets sent together do not probe together for ever;
// the probe after that waits four times as long, up to proofProbeMax.
func (s *Subscription) probeLater(st *stream, holds map[string]*hold, epoch uint64, wait time.Duration) {
	half := wait / 2
	time.AfterFunc(half+time.Duration(rand.Int64N(int64(half)+1)), func() {
		if s.ctx.Err() == nil {
			s.probe(st, holds, epoch, min(4*wait, proofProbeMax))
		}
	})
}

// catchUpLoop runs rounds of catch-up pages while there are catch-ups in
// progress. While they fail it waits out its backoff before the next
// round, whatever asks for one sooner; held topics deliver nothing
// meanwhile, so each failure is logged as a warning.
func (s *Subscription) catchUpLoop() {
	attempt := 0
	var failing time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		}
		err := s.round()
		if err == nil {
			if attempt > 0 {
				s.c.opts.logger.Info("xmtp catch-up recovered", "failed_for", time.Since(failing).Round(time.Millisecond))
			}
			attempt = 0
			s.failingSince.Store(0)
			s.mu.Lock()
			more := len(s.chases) > 0
			s.mu.Unlock()
			if more {
				signal(s.wake)
			}
			continue
		}
		if s.ctx.Err() != nil {
			return
		}
		if attempt == 0 {
			failing = time.Now()
			s.failingSince.Store(failing.UnixNano())
		}
		wait := s.backoff(attempt)
		attempt++
		s.mu.Lock()
		topics, held, heldBytes := len(s.chases), len(s.holds), s.heldBytes
		s.mu.Unlock()
		s.c.opts.logger.Warn("xmtp catch-up failing; held topics deliver nothing until it succeeds",
			"err", err, "failing_for", time.Since(failing).Round(time.Millisecond), "topics", topics,
			"held_topics", held, "held_bytes", heldBytes, "retry_in", wait)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(wait):
		}
		signal(s.wake)
	}
}

// page is one catch-up query of a round.
type page struct {
	topic string
	// chase and gen are the chase the page was asked for and its
	// restarts then: a chase of a topic removed and added again is
	// another one, though its gen starts at 0 as well.
	chase *chase
	gen   uint64
	req   *messagev1.QueryRequest
}

// pageOf returns the next page of c, t's chase; s.mu is held.
func (s *Subscription) pageOf(t string, c *chase) page {
	return page{topic: t, chase: c, gen: c.gen, req: &messagev1.QueryRequest{
		ContentTopics: []string{t},
		StartTimeNs:   c.start,
		PagingInfo:    &messagev1.PagingInfo{Limit: pageSize, Direction: messagev1.SortDirection_SORT_DIRECTION_ASCENDING, Cursor: c.cursor},
	}}
}

// round asks every catch-up in progress for its next page, delivers the
// pages, and releases the holds of the catch-ups that are done.
func (s *Subscription) round() error {
	s.mu.Lock()
	if len(s.chases) == 0 {
		s.mu.Unlock()
		return nil
	}
	s.catchSeq++
	pages := make([]page, 0, min(len(s.chases), 4*probeRoundPages))
	var probes []page
	for t, c := range s.chases {
		if c.probe {
			// Probes wait behind every other chase, the proven and
			// overflowed ones, and a round asks at most
			// probeRoundPages of them, those the map gives first.
			if len(probes) < probeRoundPages {
				probes = append(probes, s.pageOf(t, c))
			}
			continue
		}
		if c.floor != noFloor {
			// Envelopes dropped before this page is asked: it fetches
			// them if it starts before them, else the chase starts
			// again at them.
			if c.cursor != nil && c.position() >= c.floor || c.cursor == nil && c.start > c.floor {
				c.start, c.cursor = c.floor, nil
			}
			c.floor = noFloor
		}
		pages = append(pages, s.pageOf(t, c))
	}
	s.mu.Unlock()
	sort.Slice(pages, func(i, j int) bool { return pages[i].topic < pages[j].topic })
	sort.Slice(probes, func(i, j int) bool { return probes[i].topic < probes[j].topic })
	pages = append(pages, probes...)
	// A batch that fails is asked again page by page, so that a page
	// failing on every try fails alone: the others of its batch, and
	// the batches after it, still move on. The round reports the first
	// failure, and the loop backs off.
	var failed error
	for len(pages) > 0 && s.ctx.Err() == nil {
		chunk := pages[:min(len(pages), maxBatch)]
		pages = pages[len(chunk):]
		err := s.ask(chunk)
		if err != nil && len(chunk) > 1 {
			err = nil
			for i := range chunk {
				if e := s.ask(chunk[i : i+1]); e != nil && err == nil {
					err = e
				}
			}
		}
		if err != nil && failed == nil {
			failed = err
		}
	}
	if failed == nil {
		failed = s.ctx.Err()
	}
	return failed
}

// ask sends the pages of chunk in one batch, delivers their answers, and
// releases the holds of the catch-ups that are done.
func (s *Subscription) ask(chunk []page) error {
	reqs := make([]*messagev1.QueryRequest, len(chunk))
	for i, p := range chunk {
		reqs[i] = p.req
	}
	resps, err := s.c.BatchQuery(s.ctx, reqs)
	if err != nil {
		return err
	}
	for i, resp := range resps {
		s.pages.Add(1)
		s.queried.Add(int64(len(resp.Envelopes)))
		for _, env := range s.passedHeld(chunk[i].topic) {
			s.deliver(env)
		}
		envs := s.unfetched(chunk[i], resp.Envelopes)
		for _, env := range envs {
			s.deliver(env)
		}
		s.unhold(chunk[i].topic, envs)
		if h := s.advance(chunk[i], resp); h != nil {
			s.release(chunk[i].topic, h)
		}
	}
	return nil
}

// passedHeld takes out of t's hold, in the order they came, the envelopes
// stamped no later than where the catch-up of its proof has got to
// (hold.reached): no page fetches them (they were stored after the pages
// passed their stamps), and every envelope the hold dropped undelivered
// is stamped past them, so they go now, before the page's envelopes,
// which may be a sender's later ones. Left for the release, they would go
// after them.
func (s *Subscription) passedHeld(t string) []*messagev1.Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.holds[t]
	if h == nil || !h.proven || h.reached == 0 || len(h.envs) == 0 {
		return nil
	}
	return s.takeHeld(h, func(e *messagev1.Envelope) bool { return e.TimestampNs <= h.reached })
}

// unfetched returns the envelopes of p's answer, envs, that go to the
// consumer now: those stamped below what the topic's catch-up has still
// to fetch. An envelope a hold dropped undelivered while the page was
// asked (the chase's floor), stamped below the page's start, or the start
// of a chase started again since, may lie below envelopes of the page:
// delivered now, a sender's later envelope would overtake its earlier
// one. The catch-up fetches those
// left out again, from there, in order. envs are in ascending order of
// timestamp.
func (s *Subscription) unfetched(p page, envs []*messagev1.Envelope) []*messagev1.Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.chases[p.topic]
	if c == nil {
		return envs
	}
	// A dropped envelope stamped within the page's range was fetched by
	// it if it was stored before the page was asked, and goes in its
	// place; stored after, it follows everything of its sender the page
	// brings. Only one stamped below where the page started can be
	// overtaken.
	limit := uint64(noFloor)
	if c.floor < pageStart(p.req) {
		limit = c.floor
	}
	if c != p.chase || c.gen != p.gen {
		limit = min(limit, c.position())
	}
	for i, env := range envs {
		if env.TimestampNs >= limit {
			return envs[:i]
		}
	}
	return envs
}

// pageStart is the timestamp the page of q starts from.
func pageStart(q *messagev1.QueryRequest) uint64 {
	if ix := q.GetPagingInfo().GetCursor().GetIndex(); ix != nil {
		return ix.SenderTimeNs
	}
	return q.StartTimeNs
}

// advance moves p's chase past its answer resp. It returns the hold to
// release when the chase is done and its topic's hold proven.
func (s *Subscription) advance(p page, resp *messagev1.QueryResponse) *hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.chases[p.topic]
	if c == nil || c != p.chase || c.gen != p.gen {
		return nil
	}
	// A page ends before its limit once it holds the node's budget of
	// bytes, with a cursor to the rest: the chase goes on while a cursor
	// comes.
	if cur := resp.GetPagingInfo().GetCursor(); cur != nil && len(resp.Envelopes) > 0 {
		c.cursor = cur
		// While a dropped envelope waits to be fetched (c.floor), the
		// page moves how far the catch-up has got no further than its
		// stamp: asked before the drop, it may have passed the stamp
		// without it (another sender's, stamped later, stored first),
		// and held envelopes stamped past it would then go at once,
		// ahead of it (hold.go). Every envelope dropped undelivered
		// stays stamped at or past h.reached until a page fetches it.
		// (Holding h.reached where it was instead made a sender that
		// stamps many envelopes alike restart the catch-up over them.)
		if h := s.holds[p.topic]; h != nil && h.proven && h.chase == c {
			h.reached = max(h.reached, min(resp.Envelopes[len(resp.Envelopes)-1].TimestampNs, c.floor))
		}
		return nil
	}
	if c.floor != noFloor {
		// The hold dropped envelopes while the page was asked.
		c.start, c.cursor, c.floor = c.floor, nil, noFloor
		return nil
	}
	delete(s.chases, p.topic)
	if h := s.holds[p.topic]; h != nil && h.proven {
		return h
	}
	return nil
}

// envKey identifies an envelope for de-duplication: the SHA-256 of its
// topic, a zero byte, its timestamp and the SHA-256 of its message. The
// part after the topic has a fixed length, so that no two envelopes
// hash the same bytes.
type envKey [sha256.Size]byte

// envelopeKey is env's envKey. It allocates nothing for a topic of a
// usual length.
func envelopeKey(env *messagev1.Envelope) envKey {
	msg := sha256.Sum256(env.Message)
	var b [256]byte
	p := append(b[:0], env.ContentTopic...)
	p = append(p, 0)
	p = binary.BigEndian.AppendUint64(p, env.TimestampNs)
	p = append(p, msg[:]...)
	return sha256.Sum256(p)
}

// recentSet remembers the last cap keys added. Its keys are arrays, not
// strings: the set of a busy subscription holds tens of thousands, and
// a map and a ring without pointers are not scanned by the garbage
// collector, nor is each key an object of its own.
type recentSet struct {
	keys map[envKey]struct{}
	ring []envKey
	next int
	full bool // every slot of ring holds a key
}

func newRecentSet(capacity int) recentSet {
	return recentSet{keys: make(map[envKey]struct{}, capacity), ring: make([]envKey, capacity)}
}

// add records key and reports whether it was new.
func (r *recentSet) add(key envKey) bool {
	if _, ok := r.keys[key]; ok {
		return false
	}
	if r.full {
		delete(r.keys, r.ring[r.next])
	}
	r.ring[r.next] = key
	if r.next++; r.next == len(r.ring) {
		r.next, r.full = 0, true
	}
	r.keys[key] = struct{}{}
	return true
}

// has reports whether key was added and is still remembered.
func (r *recentSet) has(key envKey) bool {
	_, ok := r.keys[key]
	return ok
}
