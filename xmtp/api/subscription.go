package api

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
)

// Subscription is a live feed of envelopes whose topic set changes with
// Add and Remove. Its topics travel on one Subscribe2 stream (one more per
// WithMaxTopicsPerStream topics); each topic change is a new request on
// the stream that carries it, carrying the whole set, so changes that come
// within resendGap of the last request go together in the next. Streams
// reconnect with exponential backoff and jitter when they break. After
// each (re)connection, and once the set carrying an added topic is sent,
// the subscription queries every affected topic from its last seen
// timestamp (or from when it was added), less the clock-skew allowance, so
// nothing published while a stream was down or not yet in place is
// missed; envelopes seen twice are delivered once. Meanwhile the stream's
// envelopes of those topics are held, until the stream shows that the
// node streams them and a query begun after that is done, so that each
// topic's envelopes are delivered in order (hold.go).
//
// Goroutines: one per stream (plus its sender), and catchUpLoop for the
// catch-up queries, which pages every topic's catch-up forward in turn. All deliver into out, which is closed after they have
// ended. Lock order: Subscription.mu, then Subscription.stateMu.
type Subscription struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	out    chan *messagev1.Envelope
	done   chan struct{}
	wake   chan struct{} // catch-up work is pending
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool // no more stream goroutines may start
	topics  map[string]*topicState
	streams []*stream
	chases  map[string]*chase // catch-ups in progress (catchup.go)
	recent  recentSet
	// holds are the topics whose stream envelopes wait for a catch-up,
	// and heldBytes the size of all they hold (hold.go).
	holds     map[string]*hold
	heldBytes int
	// catchSeq numbers the rounds of catch-up pages: the last one begun.
	catchSeq uint64
	// For tests: holds dropped for size, and catch-up pages and the
	// envelopes they brought.
	overflows, pages, queried atomic.Int64
	// failingSince is when the catch-up queries began to fail, in Unix
	// nanoseconds; 0 while the last round succeeded (CatchUpFailingFor).
	failingSince atomic.Int64
	// Proof publishes that went through and failed, and proof
	// envelopes the streams brought (proof.go; ProofCounts, for
	// metrics); proofWarned: a failed publish was logged as a warning
	// since the last that went through, so each outage warns once;
	// proofsRepeated counts the publishes of a proof again
	// (repeatProof), which proofsSent includes.
	proofsSent, proofsFailed, proofsSeen, proofsRepeated atomic.Int64
	proofWarned                                          atomic.Bool

	stateMu   sync.Mutex
	reported  bool // the last connection state given to the callback
	connected atomic.Bool
}

type topicState struct {
	added    uint64 // ns
	lastSeen uint64 // ns; 0 until an envelope is seen
	stream   *stream
	// set is the number of the first set of its stream's connection
	// that carried the topic; 0 until one is sent. goneAt: the topic
	// was removed from the stream during the connection, by set goneAt,
	// and given to it again, so its envelopes prove nothing while the
	// node has not applied that set (hold.go); 0: not removed.
	set    uint64
	goneAt uint64
}

// stream is one Subscribe2 stream and the topics it carries.
type stream struct {
	topics map[string]struct{} // guarded by Subscription.mu
	// fresh are the topics added since the stream last sent its set:
	// their catch-up is queued once the set that carries them is sent.
	// Guarded by Subscription.mu.
	fresh map[string]struct{}
	// epoch counts the stream's connections; sets counts the sets sent
	// on the connection, and applied is the last of them the stream has
	// shown the node applied (hold.go). waiting are the topics whose
	// holds wait for that proof, and gone those removed from the stream
	// during the connection, each with the number of the set that
	// removes it, until the stream shows the node applied that set.
	// Guarded by Subscription.mu.
	epoch, sets, applied uint64
	waiting              map[string]struct{}
	gone                 map[string]uint64
	// proofs are the proof topics of the connection's sets whose
	// envelopes may still come, each with its set's number, proof the
	// one the last set carried ("" if none); proofBusy is the epoch of
	// the connection whose proof publish is under way (0: none), and
	// proofNext the publish waiting for it (proof.go). Guarded by
	// Subscription.mu.
	proofs    map[string]uint64
	proof     string
	proofBusy uint64
	proofNext *proofJob
	// proofKick wakes the publisher waiting to repeat a proof
	// (repeatProof): its set is proven, or a later set's proof waits.
	proofKick chan struct{}
	changed   chan struct{} // the topic set changed; resend it
	connected atomic.Bool
}

// resendGap is the shortest time between two topic sets sent on one
// stream. A set replaces the last one whole, up to WithMaxTopicsPerStream
// topics, so while identities activate one after another a stream that
// sent its whole set again for every topic added made the node decode and
// index n(n+1)/2 topics to learn of n. The first change after a quiet gap
// goes at once; changes within the gap go together at its end.
const resendGap = 50 * time.Millisecond

// Subscribe starts a subscription with no topics. It lives until Close, or
// until ctx ends.
func (c *Client) Subscribe(ctx context.Context) *Subscription {
	sctx, cancel := context.WithCancel(ctx)
	s := &Subscription{
		c:      c,
		ctx:    sctx,
		cancel: cancel,
		out:    make(chan *messagev1.Envelope, c.opts.buffer),
		done:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
		topics: map[string]*topicState{},
		chases: map[string]*chase{},
		recent: newRecentSet(1 << 16),
		holds:  map[string]*hold{},
	}
	s.mu.Lock()
	s.addStream()
	s.mu.Unlock()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.catchUpLoop() }()
	go func() {
		<-sctx.Done()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.wg.Wait()
		close(s.out)
		close(s.done)
	}()
	return s
}

// addStream starts one more stream; s.mu is held. After the subscription
// ends nothing starts.
func (s *Subscription) addStream() *stream {
	st := &stream{topics: map[string]struct{}{}, changed: make(chan struct{}, 1)}
	s.streams = append(s.streams, st)
	if !s.closed {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.run(st) }()
	}
	return st
}

// Envelopes returns the channel of received envelopes. It is closed when
// the subscription ends.
func (s *Subscription) Envelopes() <-chan *messagev1.Envelope { return s.out }

// Connected reports whether every stream of the subscription is currently
// established. Readiness checks and the "XMTP subscription disconnected"
// alert use it.
func (s *Subscription) Connected() bool { return s.connected.Load() }

// CatchUpFailingFor returns how long the catch-up queries have failed
// without a round succeeding since, or 0 while they work. Held topics
// deliver nothing while they fail, nor does anything stored while a
// stream was down reach the consumer, though every stream may be
// connected.
func (s *Subscription) CatchUpFailingFor() time.Duration {
	since := s.failingSince.Load()
	if since == 0 {
		return 0
	}
	return max(time.Since(time.Unix(0, since)), time.Nanosecond)
}

// Close ends the subscription and waits for its goroutines.
func (s *Subscription) Close() {
	s.cancel()
	<-s.done
}

// Add subscribes to topics. Envelopes of a new topic are delivered from
// the moment it is added, including those published while the node learns
// of the change, in order: once the stream has sent the set that carries
// the topic, the topic is queried from its addition (less the clock-skew
// allowance), and the stream's envelopes of the topic wait until the
// stream shows that the node streams it and a query begun after that is
// done (hold.go).
func (s *Subscription) Add(topics ...string) {
	now := uint64(time.Now().UnixNano())
	var changed []*stream
	s.mu.Lock()
	for _, t := range topics {
		if _, ok := s.topics[t]; ok {
			continue
		}
		st := s.streamWithRoom()
		st.topics[t] = struct{}{}
		ts := &topicState{added: now, stream: st, goneAt: st.gone[t]}
		s.topics[t] = ts
		s.holdTopic(t, st)
		if st.fresh == nil {
			st.fresh = map[string]struct{}{}
			changed = append(changed, st)
		}
		// A stream that is down catches up on all its topics when it
		// reconnects, and drops this.
		st.fresh[t] = struct{}{}
	}
	s.mu.Unlock()
	for _, st := range changed {
		signal(st.changed)
	}
}

// streamWithRoom returns a stream that can carry one more topic; s.mu is
// held.
func (s *Subscription) streamWithRoom() *stream {
	for _, st := range s.streams {
		if len(st.topics) < s.room() {
			return st
		}
	}
	return s.addStream()
}

// Remove unsubscribes from topics.
func (s *Subscription) Remove(topics ...string) {
	changed := map[*stream]bool{}
	s.mu.Lock()
	for _, t := range topics {
		ts, ok := s.topics[t]
		if !ok {
			continue
		}
		st := ts.stream
		delete(st.topics, t)
		delete(st.fresh, t)
		delete(st.waiting, t)
		if ts.set != 0 {
			// A set of the connection carried it: given again before
			// the node applied the next set, which removes it, its
			// envelopes may come from the one that carried it.
			if st.gone == nil {
				st.gone = map[string]uint64{}
			}
			st.gone[t] = st.sets + 1
		}
		delete(s.topics, t)
		s.dropHold(t)
		changed[ts.stream] = true
	}
	s.mu.Unlock()
	for st := range changed {
		signal(st.changed)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// startOf returns where a catch-up of t starts; s.mu is held.
func (s *Subscription) startOf(t *topicState) uint64 {
	from := t.added
	if t.lastSeen > 0 {
		from = t.lastSeen
	}
	skew := uint64(s.c.opts.skew)
	if from <= skew {
		return 1
	}
	return from - skew
}

// topicList returns the topics of st, sorted, to be sent as the next set
// of connection epoch, and the topics added since the last list. It
// numbers the set, n, and gives its number to the topics no earlier set
// of the connection carried. carry is the proof topic the set carries
// besides the list, "" if none, and p the one to publish for it, "" if
// none (proof.go). It returns false, and nothing, once the stream is on
// another connection.
func (s *Subscription) topicList(st *stream, epoch uint64) (list []string, fresh map[string]struct{}, carry, p string, n uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.epoch != epoch {
		return nil, nil, "", "", 0, false
	}
	st.sets++
	out := make([]string, 0, len(st.topics)+1)
	numbered := false
	for t := range st.topics {
		out = append(out, t)
		if ts := s.topics[t]; ts.set == 0 {
			ts.set = st.sets
			numbered = true
		}
	}
	sort.Strings(out)
	fresh = st.fresh
	st.fresh = nil
	p, publish := s.nextProof(st, st.sets, numbered)
	carry = p
	if !publish {
		p = ""
	}
	return out, fresh, carry, p, st.sets, true
}

// request is the set list with its proof topic p, if any.
func request(list []string, p string) *messagev1.SubscribeRequest {
	if p != "" {
		list = append(list, p)
	}
	return &messagev1.SubscribeRequest{ContentTopics: list}
}

// setSent reports whether a set carrying t has been numbered for sending;
// s.mu is held. For tests.
func (s *Subscription) setSent(t string) bool {
	ts := s.topics[t]
	return ts != nil && ts.set != 0
}

// unsent gives back to st the fresh topics of a set it could not send,
// those still its own, and signals a change: the connection that follows
// sends them, and queues their catch-up, if its own first set did not
// carry them already (a second catch-up only finds what was delivered).
func (s *Subscription) unsent(st *stream, fresh map[string]struct{}) {
	if len(fresh) == 0 {
		return
	}
	defer signal(st.changed)
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range fresh {
		if _, ok := st.topics[t]; !ok {
			continue
		}
		if st.fresh == nil {
			st.fresh = map[string]struct{}{}
		}
		st.fresh[t] = struct{}{}
	}
}

// setConnected records the state of one stream and tells the callback
// when the state of the whole subscription changes.
func (s *Subscription) setConnected(st *stream, v bool) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	st.connected.Store(v)
	s.mu.Lock()
	all := len(s.streams) > 0
	for _, x := range s.streams {
		all = all && x.connected.Load()
	}
	s.mu.Unlock()
	s.connected.Store(all)
	if all != s.reported {
		s.reported = all
		if fn := s.c.opts.onConnected; fn != nil {
			fn(all)
		}
	}
}
