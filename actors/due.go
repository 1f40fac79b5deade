package actors

// The node's due-work scheduler.
//
// Not an actor: one goroutine per runtime, whatever the number of
// identities it hosts. Work that is due later than it was created (a
// webhook retry, a replayed dead letter, a reply that failed to publish,
// broadcast copies to queue, deliveries the breaker releases, deliveries
// left by an earlier activation) is found in two ways:
//   - a timer armed when the work is created on this node: finish arms
//     one wake of its bridge at the retry's time. The wakes of all
//     bridges share one timer, at the earliest;
//   - one query per SweepInterval over the due work of the bridges whose
//     identity leases live under this node's lease (persistence.DueWorkOn):
//     the bridges it hosts; it runs soon after an activation too, so a
//     rehomed identity resumes at once.
//
// Either way the bridge's forward child is woken with a *sweepTick
// through its identity actor, which spawns the child on first use; the
// child's sweep loads that one bridge's due deliveries (the breaker's gate
// applies there), publishes its due replies (leaving those on their way
// out in a batch) and queues broadcast copies when the bridge's hint is
// up. An idle identity costs no timer, no goroutine and no query.

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// dueLimit bounds the bridges one pass of the scheduler wakes.
const dueLimit = 50000

// maxWakes bounds the wakes armed at once (about 50 bytes each). A wake
// past the bound is not armed: the periodic pass over the due work finds
// that retry too, at most a SweepInterval late. Retries in flight are
// durable rows a sender can multiply (messages to a bridge whose endpoint
// fails), so their timers must not grow the node's memory without end.
const maxWakes = 100000

// passSoon is how soon after an activation the scheduler looks for due
// work; activations that come together share one pass.
const passSoon = 100 * time.Millisecond

type scheduler struct {
	rt *Runtime

	mu sync.Mutex
	// queue holds the wakes armed, earliest first: one per retry in
	// flight on this node, as the timers of the retries were, but with
	// one timer for all of them.
	queue wakeQueue
	// pass is when the next pass over the due work runs.
	pass time.Time
	kick chan struct{}

	started bool
	stop    chan struct{}
	done    chan struct{}
}

func newScheduler(rt *Runtime) *scheduler {
	return &scheduler{rt: rt, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// wake arms a wake of the bridge at t.
func (s *scheduler) wake(bridgeID string, t time.Time) {
	s.mu.Lock()
	if len(s.queue) >= maxWakes {
		s.mu.Unlock()
		return
	}
	heap.Push(&s.queue, wakeAt{bridgeID: bridgeID, at: t})
	first := s.queue[0].bridgeID == bridgeID && s.queue[0].at.Equal(t)
	s.mu.Unlock()
	if first {
		s.poke()
	}
}

// soon asks for a pass over the due work within passSoon.
func (s *scheduler) soon() {
	s.mu.Lock()
	if at := time.Now().Add(passSoon); s.pass.After(at) {
		s.pass = at
	}
	s.mu.Unlock()
	s.poke()
}

func (s *scheduler) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *scheduler) start() {
	s.mu.Lock()
	s.pass = time.Now()
	s.started = true
	s.mu.Unlock()
	go s.loop()
}

func (s *scheduler) close() {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return
	}
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *scheduler) loop() {
	defer close(s.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		var wake []string
		seen := map[string]bool{}
		s.mu.Lock()
		for s.queue.Len() > 0 && !s.queue[0].at.After(now) {
			w := heap.Pop(&s.queue).(wakeAt)
			if !seen[w.bridgeID] {
				seen[w.bridgeID] = true
				wake = append(wake, w.bridgeID)
			}
		}
		doPass := !s.pass.After(now)
		if doPass {
			s.pass = now.Add(s.rt.cfg.SweepInterval)
		}
		s.mu.Unlock()
		for _, id := range wake {
			s.rt.sweepBridge(id)
		}
		if doPass {
			s.runPass()
		}
		s.mu.Lock()
		next := s.pass
		if s.queue.Len() > 0 && s.queue[0].at.Before(next) {
			next = s.queue[0].at
		}
		s.mu.Unlock()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(max(time.Until(next), 0))
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-t.C:
		}
	}
}

// runPass wakes every hosted bridge with due work.
func (s *scheduler) runPass() {
	rt := s.rt
	if rt.hostedCount() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The due work of the bridges whose leases live under this node's
	// lease: the ones it hosts.
	ids, err := rt.cfg.Store.DueWorkOn(ctx, rt.cluster.NodeLease(), dueLimit)
	if err != nil {
		rt.log.Warn("load due work", "error", err)
		return
	}
	for _, id := range ids {
		rt.sweepBridge(id)
	}
}

type wakeAt struct {
	bridgeID string
	at       time.Time
}

// wakeQueue is a min-heap of wakes by time.
type wakeQueue []wakeAt

func (q wakeQueue) Len() int           { return len(q) }
func (q wakeQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q wakeQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *wakeQueue) Push(x any)        { *q = append(*q, x.(wakeAt)) }
func (q *wakeQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	*q = old[:len(old)-1]
	return w
}
