package api

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
)

// A set that proves itself (WithSetProofs). Without traffic, nothing shows
// that the node has applied a topic set (hold.go), so an idle topic's hold
// would wait for ever, probed by catch-ups at a growing interval: at tens
// of thousands of idle identities those probes were most of the idle cost
// of the node and of Postgres, and their state a good part of its memory.
// So each set the stream sends while it has something to prove (held
// topics, or removals the node has not yet been shown to apply) also
// carries a fresh proof topic, and drops the one of the set before; once
// the set is sent, the subscription publishes one small envelope to it.
// The proof topic is a topic no earlier set of the connection carried, so
// when the stream brings its envelope, the node has applied that set and
// every earlier one of the connection (the rule of hold.go): their holds
// are proven, and the catch-up queued by the proof releases them. A new
// topic's hold ends after one catch-up, and an idle one costs nothing
// after it.
//
// The proof topic is /xmtp/0/mE-bridge-proof-<128 random bits>/proto,
// drawn for each set of each connection: a topic the local node and
// xmtp-node-go take (ParseTopic, no owner), that nobody else can guess,
// and that is never added again, so no envelope of an earlier set can be
// taken for its proof. It is ephemeral (mE-): both nodes relay its
// envelope to the streams subscribed to it and store nothing, so proofs
// cost the node no storage. Its secrecy is not relied on: the local node
// serves SubscribeAll (gRPC, and /message/v1/subscribe-all over HTTP)
// without auth, so anyone who can reach it may see the topic and publish
// to it. What proves the set is that this stream brings an envelope of
// that topic, and the node streams no topic to it before it applies the
// set that carries it, whoever published the envelope: a forged or early
// envelope proves nothing false. A flood on a proof topic costs only
// traffic: the first envelope of a topic in stream.proofs proves its
// set, which forgets it (proved), and every other envelope of a proof
// topic finds no subscription topic and no hold (a proof topic is never
// one of the subscription's topics), so fromStream gives it to deliver,
// which drops it after a map lookup; nothing is kept. The consumer never
// sees a proof envelope, and no catch-up queries a proof topic.
//
// Sets are already coalesced (resendGap): the hundreds of topics added
// within 50 ms share one set and one proof publish, one small envelope
// that the node relays. A reconnection's first set carries a proof topic
// too, and proves all the stream's topics again the same way.
//
// A proof may not come: the publish fails (no token, the node refuses
// it), or reaches the node before it applies the set (the node relays an
// ephemeral envelope only to the streams subscribed to its topic then). Then the probes of hold.go remain the
// safety net: the topics' catch-ups begin at once when the publish fails,
// and in any case the catch-ups of held topics go on at the settle delay,
// four times that and so on, as without proofs, each also publishing the
// stream's last proof again (one envelope for the whole stream). When a
// proof is on its way, the first catch-up of a set's topics waits for the
// settle delay rather than going at once: the proof's catch-up fetches
// the same, so a topic costs one catch-up, not two.
const proofTopicPrefix = "/xmtp/0/mE-bridge-proof-"

// proofTimeout bounds one proof publish.
const proofTimeout = 10 * time.Second

// proofsKept bounds the proof topics a stream still waits for: one
// whose envelope never came (stored before its set was applied) is
// forgotten after that many later sets.
const proofsKept = 8

// proving reports whether the subscription's sets carry proofs: a stream
// must have room for a topic besides the proof topic.
func (s *Subscription) proving() bool { return s.c.opts.proofs && s.c.opts.perStream > 1 }

// Proving reports whether the subscription's topic sets carry proofs
// and it publishes them (WithSetProofs).
func (s *Subscription) Proving() bool { return s.proving() }

// room is how many of the subscription's topics a stream carries.
func (s *Subscription) room() int {
	if s.proving() {
		return s.c.opts.perStream - 1
	}
	return s.c.opts.perStream
}

// nextProof returns the proof topic set n of st's connection carries,
// and whether the set needs its envelope published; s.mu is held. A set
// that gives its number to topics (numbered: new ones, or all of a
// connection's first set) carries a fresh proof topic, to be published.
// A set that numbers none, one that only removes topics, carries the
// proof topic of the set before again while that one is not proven, and
// publishes nothing: that envelope still proves the earlier set (and so
// the holds waiting for it), and the removals are proven by the proof of
// a later set, which a re-added topic's set brings. Otherwise it carries
// none.
func (s *Subscription) nextProof(st *stream, n uint64, numbered bool) (string, bool) {
	if !s.proving() {
		return "", false
	}
	if !numbered {
		if _, ok := st.proofs[st.proof]; ok && st.proof != "" {
			return st.proof, false
		}
		st.proof = ""
		return "", false
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	p := proofTopicPrefix + hex.EncodeToString(b[:]) + "/proto"
	if st.proofs == nil {
		st.proofs = map[string]uint64{}
	}
	if len(st.proofs) >= proofsKept {
		oldest, first := "", n
		for q, m := range st.proofs {
			if m < first {
				oldest, first = q, m
			}
		}
		delete(st.proofs, oldest)
	}
	st.proofs[p] = n
	st.proof = p
	return p, true
}

// proofOf takes an envelope the stream brought on one of its proof topics:
// it proves the set that carried that topic and every earlier one. It
// reports whether env was a proof, which goes no further: that only
// saves fromStream's lookups, since deliver would drop it anyway (a
// proof topic is never one of the subscription's topics). s.mu is held.
func (s *Subscription) proofOf(st *stream, env *messagev1.Envelope) bool {
	n, ok := st.proofs[env.ContentTopic]
	if !ok {
		return false
	}
	s.proofsSeen.Add(1)
	if n > st.applied {
		s.applied(st, n)
		signal(st.proofKick)
	}
	return true
}

// proved forgets the proof topics of sets up to n, which the node has
// applied; s.mu is held.
func (st *stream) proved(n uint64) {
	for p, m := range st.proofs {
		if m <= n {
			delete(st.proofs, p)
		}
	}
}

// ProofCounts are the subscription's set proof publishes that went
// through (Published) and failed (Failed), and the proof envelopes its
// streams brought (Seen), since it started.
type ProofCounts struct {
	Published, Failed, Seen int64
}

// ProofCounts returns the counts of the subscription's set proofs, for
// metrics; all 0 without WithSetProofs.
func (s *Subscription) ProofCounts() ProofCounts {
	return ProofCounts{Published: s.proofsSent.Load(), Failed: s.proofsFailed.Load(), Seen: s.proofsSeen.Load()}
}

// publishProof publishes one envelope to p, the proof topic of set n.
func (s *Subscription) publishProof(p string, n uint64) error {
	ctx, cancel := context.WithTimeout(s.ctx, proofTimeout)
	defer cancel()
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], n)
	env := &messagev1.Envelope{ContentTopic: p, TimestampNs: uint64(time.Now().UnixNano()), Message: msg[:]}
	if err := s.c.Publish(ctx, s.c.opts.proofAuth, env); err != nil {
		s.proofsFailed.Add(1)
		if s.ctx.Err() == nil {
			if s.proofWarned.CompareAndSwap(false, true) {
				s.c.opts.logger.Warn("xmtp subscription cannot publish the proofs of its topic sets; held topics are probed instead", "err", err)
			} else {
				s.c.opts.logger.Debug("xmtp subscription proof publish failed", "err", err)
			}
		}
		return err
	}
	s.proofsSent.Add(1)
	// The node takes proofs again: a later failure warns again.
	s.proofWarned.Store(false)
	return nil
}

// A proofJob is the publish of the proof of set n, p, and the holds of
// the set's topics, probed at once if it fails.
type proofJob struct {
	p     string
	n     uint64
	holds map[string]*hold
}

// sent starts what follows a set sent on st's connection epoch: the
// catch-ups of topics, those the set carries first, and the publish of
// the set's proof, p for set n (none if ""). With a proof on its way the
// first catch-ups wait for the settle delay, and go at once if the
// publish fails.
func (s *Subscription) sent(st *stream, epoch uint64, topics []string, p string, n uint64) {
	holds := make(map[string]*hold, len(topics))
	for _, t := range topics {
		holds[t] = nil
	}
	if p == "" {
		if len(holds) > 0 {
			s.probe(st, holds, epoch, s.c.opts.settle)
		}
		return
	}
	if len(holds) > 0 {
		s.probeLater(st, holds, epoch, s.c.opts.settle)
	}
	s.publishProofs(st, epoch, &proofJob{p: p, n: n, holds: holds})
}

// publishProofs publishes job's proof on st's connection epoch, at most
// one publish at a time for the connection: while one is under way, job
// waits, and takes the place of any job waiting before it, whose holds
// it takes too: the proof of a later set proves the earlier ones, and
// the node no longer streams an earlier set's proof topic once it has
// applied the later set. A job whose set is proven by then is not
// published. A nil job.holds: a publish again (reprove), which probes
// nothing when it fails.
func (s *Subscription) publishProofs(st *stream, epoch uint64, job *proofJob) {
	s.mu.Lock()
	if st.epoch != epoch || s.closed {
		s.mu.Unlock()
		return
	}
	if st.proofBusy == epoch {
		if w := st.proofNext; w != nil && len(w.holds) > 0 {
			if job.holds == nil {
				job.holds = map[string]*hold{}
			}
			for t, h := range w.holds {
				job.holds[t] = h
			}
		}
		st.proofNext = job
		signal(st.proofKick)
		s.mu.Unlock()
		return
	}
	// The publisher's own wake-up: one of an earlier connection's, still
	// waiting to repeat its proof, never takes it.
	kick := make(chan struct{}, 1)
	st.proofKick = kick
	st.proofBusy, st.proofNext = epoch, nil
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		for job != nil {
			if err := s.publishProof(job.p, job.n); err != nil {
				if s.ctx.Err() == nil && len(job.holds) > 0 {
					// No proof: the probes are the safety net, the first now.
					if len(s.probeNow(st, job.holds, epoch)) > 0 {
						signal(s.wake)
					}
				}
			} else if job.holds != nil {
				// (A publish again, reprove's, goes once: its set was
				// sent long before, and the probes go on.)
				s.repeatProof(st, epoch, job, kick)
			}
			s.mu.Lock()
			if st.proofBusy != epoch {
				// A new connection: its publishes are its own.
				s.mu.Unlock()
				return
			}
			job, st.proofNext = st.proofNext, nil
			if job != nil && job.n <= st.applied {
				job = nil
			}
			if job == nil || st.epoch != epoch || s.ctx.Err() != nil {
				job = nil
				st.proofBusy = 0
			}
			s.mu.Unlock()
		}
	}()
}

// proofRepeats are the delays after a proof's publish at which it is
// published again while the stream has not brought it and no later set
// waits for its own proof: an envelope of an ephemeral topic reaches only
// the streams subscribed to it when it is published, and the node may
// relay it before it applies the set, which it gets on another call. The
// repeats cost the node no storage; after the last one, the probes remain.
var proofRepeats = [...]time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 80 * time.Millisecond, 320 * time.Millisecond}

// repeatProof publishes job's proof again at the proofRepeats delays until
// st's connection epoch has applied its set, ends, or has a later set's
// proof to publish (which proves this set too), or a publish fails. kick
// is the publisher's wake-up (stream.proofKick).
func (s *Subscription) repeatProof(st *stream, epoch uint64, job *proofJob, kick <-chan struct{}) {
	done := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return st.epoch != epoch || s.closed || st.applied >= job.n || st.proofNext != nil
	}
	for _, d := range proofRepeats {
		t := time.NewTimer(d)
	wait:
		for {
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-kick:
				if done() {
					t.Stop()
					return
				}
			case <-t.C:
				break wait
			}
		}
		if done() {
			return
		}
		s.proofsRepeated.Add(1)
		if s.publishProof(job.p, job.n) != nil {
			return
		}
	}
}

// reprove publishes st's last proof again while the node has not been
// shown to apply its set, unless a publish is under way: the first
// envelope may have reached the node before the set, or not at all.
func (s *Subscription) reprove(st *stream, epoch uint64) {
	s.mu.Lock()
	p := st.proof
	n, ok := st.proofs[p]
	if st.epoch != epoch || p == "" || !ok || n <= st.applied || st.proofBusy == epoch {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.publishProofs(st, epoch, &proofJob{p: p, n: n})
}
