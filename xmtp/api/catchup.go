package api

import (
	"crypto/sha256"
	"encoding/binary"
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

// scheduleTwice queues catch-up queries now and once more after the
// settle delay, which covers envelopes stored while the node was applying
// a new topic set; from then on the node streams the topics, and the holds
// of stream connection epoch that still wait are armed (hold.go).
func (s *Subscription) scheduleTwice(from map[string]uint64, epoch uint64) {
	s.mu.Lock()
	holds := s.holdsOf(from)
	s.mu.Unlock()
	s.schedule(from)
	time.AfterFunc(s.c.opts.settle, func() {
		s.mu.Lock()
		s.armHolds(holds, epoch)
		s.mu.Unlock()
		s.schedule(from)
	})
}

func (s *Subscription) schedule(from map[string]uint64) {
	s.mu.Lock()
	s.queue(from)
	s.mu.Unlock()
	signal(s.wake)
}

// queue adds from to the pending catch-up; s.mu is held.
func (s *Subscription) queue(from map[string]uint64) {
	for t, ns := range from {
		if _, ok := s.topics[t]; !ok {
			continue
		}
		if cur, ok := s.pending[t]; !ok || ns < cur {
			s.pending[t] = ns
		}
	}
}

// catchUpLoop runs the queued catch-up queries, retrying with backoff
// while they fail.
func (s *Subscription) catchUpLoop() {
	attempt := 0
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		}
		s.mu.Lock()
		work := s.pending
		s.pending = map[string]uint64{}
		if len(work) > 0 {
			s.catchSeq++
		}
		seq := s.catchSeq
		s.mu.Unlock()
		if len(work) == 0 {
			continue
		}
		if err := s.catchUp(work); err != nil {
			if s.ctx.Err() != nil {
				return
			}
			wait := s.backoff(attempt)
			attempt++
			s.c.opts.logger.Info("retry xmtp catch-up", "err", err, "topics", len(work), "retry_in", wait)
			time.AfterFunc(wait, func() { s.schedule(work) })
			continue
		}
		attempt = 0
		s.releaseHolds(seq, work)
	}
}

// catchUp queries each topic from its start and delivers what it finds.
func (s *Subscription) catchUp(work map[string]uint64) error {
	topics := make([]string, 0, len(work))
	for t := range work {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	reqs := make([]*messagev1.QueryRequest, len(topics))
	for i, t := range topics {
		reqs[i] = &messagev1.QueryRequest{
			ContentTopics: []string{t},
			StartTimeNs:   work[t],
			PagingInfo:    &messagev1.PagingInfo{Limit: pageSize, Direction: messagev1.SortDirection_SORT_DIRECTION_ASCENDING},
		}
	}
	resps, err := s.c.BatchQuery(s.ctx, reqs)
	if err != nil {
		return err
	}
	for i, resp := range resps {
		for _, env := range resp.Envelopes {
			s.deliver(env)
		}
		cursor := resp.GetPagingInfo().GetCursor()
		if cursor == nil || len(resp.Envelopes) < pageSize {
			continue
		}
		// A full first page: walk the rest of this topic.
		req := reqs[i]
		for cursor != nil {
			req.PagingInfo.Cursor = cursor
			page, err := s.c.Query(s.ctx, req)
			if err != nil {
				return err
			}
			for _, env := range page.Envelopes {
				s.deliver(env)
			}
			if len(page.Envelopes) == 0 {
				break
			}
			cursor = page.GetPagingInfo().GetCursor()
		}
	}
	return nil
}

// envelopeKey identifies an envelope for de-duplication.
func envelopeKey(env *messagev1.Envelope) string {
	h := sha256.New()
	h.Write([]byte(env.ContentTopic))
	h.Write([]byte{0})
	h.Write(env.Message)
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], env.TimestampNs)
	h.Write(ts[:])
	return string(h.Sum(nil))
}

// recentSet remembers the last cap keys added.
type recentSet struct {
	keys map[string]struct{}
	ring []string
	next int
}

func newRecentSet(capacity int) recentSet {
	return recentSet{keys: make(map[string]struct{}, capacity), ring: make([]string, capacity)}
}

// add records key and reports whether it was new.
func (r *recentSet) add(key string) bool {
	if _, ok := r.keys[key]; ok {
		return false
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.keys, old)
	}
	r.ring[r.next] = key
	r.next = (r.next + 1) % len(r.ring)
	r.keys[key] = struct{}{}
	return true
}
