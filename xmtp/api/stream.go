package api

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/connectivity"
)

// run keeps st open until the subscription ends.
func (s *Subscription) run(st *stream) {
	attempt := 0
	for {
		established, err := s.serve(st)
		if s.ctx.Err() != nil {
			return
		}
		if s.c.conn.GetState() == connectivity.Shutdown {
			s.c.opts.logger.Info("xmtp subscription ends: client closed")
			s.cancel()
			return
		}
		if established {
			attempt = 0
		}
		wait := s.backoff(attempt)
		attempt++
		s.c.opts.logger.Warn("xmtp subscription disconnected", "err", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-s.ctx.Done():
			return
		}
	}
}

// backoff returns the wait before retry n: an exponential step, capped,
// with jitter between half and all of it.
func (s *Subscription) backoff(n int) time.Duration {
	step := s.c.opts.minBackoff
	for i := 0; i < n && step < s.c.opts.maxBackoff; i++ {
		step *= 2
	}
	step = min(step, s.c.opts.maxBackoff)
	half := step / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// serve runs one Subscribe2 call for st until it breaks. It reports
// whether the stream was established.
func (s *Subscription) serve(st *stream) (bool, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	call, err := s.c.api.Subscribe2(ctx)
	if err != nil {
		return false, err
	}
	// The node sends a header once the subscription is live.
	if _, err := call.Header(); err != nil {
		return false, err
	}
	// Drop a stale change signal: the full set goes out now, and every
	// topic is held and caught up below, the fresh ones included.
	select {
	case <-st.changed:
	default:
	}
	// The connection's sets are numbered from 1, and none is known to
	// be applied: every topic is held until the stream proves it.
	s.mu.Lock()
	st.epoch++
	epoch := st.epoch
	st.sets, st.applied, st.gone = 0, 0, nil
	st.proofs, st.proof, st.proofNext = nil, "", nil
	for t := range st.topics {
		ts := s.topics[t]
		ts.set, ts.goneAt = 0, 0
		s.holdTopic(t, st)
	}
	s.mu.Unlock()
	list, _, carry, proof, n, _ := s.topicList(st, epoch)
	if err := call.Send(request(list, carry)); err != nil {
		return false, err
	}

	// Everything since each topic's last seen envelope is fetched again,
	// once the set's proof comes or the probes of hold.go find it.
	s.setConnected(st, true)
	defer s.setConnected(st, false)
	s.sent(st, epoch, list, proof, n)

	sendErr := make(chan error, 1)
	go func() {
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-st.changed:
			}
			// Changes that come within resendGap of the last set wait
			// for its end and go together.
			if wait := resendGap - time.Since(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				select {
				case <-st.changed:
				default:
				}
			}
			if ctx.Err() != nil {
				return
			}
			list, fresh, carry, proof, n, ok := s.topicList(st, epoch)
			if !ok {
				return
			}
			if err := call.Send(request(list, carry)); err != nil {
				// The next connection sends them, and catches them up,
				// with all the stream's topics.
				s.unsent(st, fresh)
				sendErr <- err
				cancel()
				return
			}
			last = time.Now()
			// The node has the new topics once it applied this set,
			// which the stream will show (its proof, proof.go): until
			// then their catch-ups fetch what was published, and their
			// holds keep what the stream brings in order.
			topics := make([]string, 0, len(fresh))
			for t := range fresh {
				topics = append(topics, t)
			}
			s.sent(st, epoch, topics, proof, n)
		}
	}()
	for {
		env, err := call.Recv()
		if err != nil {
			select {
			case serr := <-sendErr:
				return true, serr
			default:
			}
			return true, err
		}
		s.fromStream(st, env)
	}
}
