package node

import (
	"sync"
	"sync/atomic"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
)

// fanout delivers newly stored envelopes to the open subscriptions of this
// process. Each subscriber has a buffer bounded in envelopes and in bytes;
// a publisher never waits for a subscriber. A subscriber whose buffer is
// full is cut off: its cut channel closes, the envelopes waiting for it
// are dropped at once (they are shared with other subscribers, so
// dropping them frees memory only once nobody else holds them), and its
// stream ends with ResourceExhausted, while every other subscriber keeps
// receiving. A client that was cut off subscribes again and catches up
// with Query.
//
// Lock order: fanout.mu, then subscriber.mu.
type fanout struct {
	mu      sync.RWMutex
	byTopic map[string]map[*subscriber]struct{}
	all     map[*subscriber]struct{}
	onCut   func()
	// onDrop counts an ephemeral envelope a subscriber had no room for.
	onDrop func()
}

// subscriber is one subscription stream.
type subscriber struct {
	ch      chan *messagev1.Envelope
	cut     chan struct{}
	cutOnce sync.Once
	all     bool
	// budget bounds pending, the bytes of the envelopes in ch.
	budget  int64
	pending atomic.Int64

	mu     sync.Mutex
	topics map[string]struct{}
	gone   bool // unsubscribed; later topic changes are ignored
}

func newFanout(onCut func()) *fanout {
	return &fanout{
		byTopic: map[string]map[*subscriber]struct{}{},
		all:     map[*subscriber]struct{}{},
		onCut:   onCut,
	}
}

// subscribe registers a subscriber whose buffer holds at most buffer
// envelopes and budget bytes of them. A subscriber made with all set
// receives every envelope; the others receive the topics set by setTopics.
func (f *fanout) subscribe(all bool, buffer int, budget int64) *subscriber {
	s := &subscriber{
		ch:     make(chan *messagev1.Envelope, buffer),
		cut:    make(chan struct{}),
		all:    all,
		budget: budget,
		topics: map[string]struct{}{},
	}
	if all {
		f.mu.Lock()
		f.all[s] = struct{}{}
		f.mu.Unlock()
	}
	return s
}

// setTopics replaces the subscriber's topic set.
func (f *fanout) setTopics(s *subscriber, topics []string) {
	next := make(map[string]struct{}, len(topics))
	for _, t := range topics {
		next[t] = struct{}{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return
	}
	for t := range s.topics {
		if _, keep := next[t]; keep {
			continue
		}
		if subs := f.byTopic[t]; subs != nil {
			delete(subs, s)
			if len(subs) == 0 {
				delete(f.byTopic, t)
			}
		}
	}
	for t := range next {
		subs := f.byTopic[t]
		if subs == nil {
			subs = map[*subscriber]struct{}{}
			f.byTopic[t] = subs
		}
		subs[s] = struct{}{}
	}
	s.topics = next
}

// unsubscribe removes the subscriber from every topic.
func (f *fanout) unsubscribe(s *subscriber) {
	f.setTopics(s, nil)
	f.mu.Lock()
	delete(f.all, s)
	s.mu.Lock()
	s.gone = true
	s.mu.Unlock()
	f.mu.Unlock()
}

// publish hands each envelope to the subscribers of its topic without
// blocking.
func (f *fanout) publish(envs []*messagev1.Envelope) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, env := range envs {
		for s := range f.byTopic[env.ContentTopic] {
			f.offer(s, env)
		}
		for s := range f.all {
			f.offer(s, env)
		}
	}
}

func (f *fanout) offer(s *subscriber, env *messagev1.Envelope) {
	select {
	case <-s.cut:
		return
	default:
	}
	size := envelopeCost(env)
	if IsEphemeral(env.ContentTopic) && (s.pending.Load()+size > s.budget/2 || len(s.ch) >= cap(s.ch)/2) {
		// An ephemeral envelope is relayed at best: it costs the
		// publisher nothing to send again, and anyone may publish to
		// the topic, so it never cuts a subscriber off. It takes at most
		// half of a subscriber's room, and is dropped beyond that,
		// leaving the rest to the stored envelopes.
		if f.onDrop != nil {
			f.onDrop()
		}
		return
	}
	if s.pending.Add(size) > s.budget {
		s.pending.Add(-size)
		f.cutOff(s)
		return
	}
	select {
	case s.ch <- env:
	default:
		s.pending.Add(-size)
		f.cutOff(s)
	}
}

// cutOff ends a subscriber that fell behind and drops what waits for it.
func (f *fanout) cutOff(s *subscriber) {
	s.cutOnce.Do(func() {
		close(s.cut)
		if f.onCut != nil {
			f.onCut()
		}
		for {
			select {
			case env := <-s.ch:
				s.taken(env)
			default:
				return
			}
		}
	})
}

// envelopeCost is what an envelope counts against a subscriber's byte
// budget: its message and topic and a fixed overhead for the rest.
func envelopeCost(env *messagev1.Envelope) int64 {
	return int64(len(env.Message)+len(env.ContentTopic)) + 64
}

// taken records that env left the subscriber's buffer; whoever receives
// from ch calls it.
func (s *subscriber) taken(env *messagev1.Envelope) { s.pending.Add(-envelopeCost(env)) }

// wants reports whether the subscriber still listens to topic; an
// envelope buffered before a Subscribe2 update may no longer be wanted.
func (s *subscriber) wants(topic string) bool {
	if s.all {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.topics[topic]
	return ok
}

// subscriberCount returns how many subscribers listen to topic.
func (f *fanout) subscriberCount(topic string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.byTopic[topic])
}
