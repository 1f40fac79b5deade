// Package supervision holds the supervisor strategy of an identity actor:
// OneForOne restarts of its handler children (forward, reverse, canary)
// after a capped, jittered exponential backoff, and quarantine of poison
// messages.
//
// protoactor drops the message a child failed on. This strategy instead
// hands a failed message that carries a stable key (Keyed) back to the
// restarted child, so a transient failure costs a delay, not a message.
// When the same key has failed Config.PoisonThreshold times, the message
// is given to Config.Quarantine instead and skipped, so the identity keeps
// working. A redelivered message goes to the back of the child's mailbox,
// behind messages that arrived while the child was down: order is not
// kept across a failure. Messages without a key are dropped after the
// failure, as protoactor does, and logged.
//
// The strategy never escalates: a child's failures stay with that child,
// and siblings, the identity actor and other identities carry on. The
// backoff grows to its cap and stays there while failures continue; after
// a quiet period of Config.ResetAfter without failures it starts again
// from the initial delay.
//
// The strategy does its waiting on timers, never in the supervisor's
// mailbox. Restart and redelivery happen on the timer's goroutine, which
// only sends system and user messages to the child.
package supervision

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Keyed is a message with a stable key: the same message delivered again
// has the same key (an envelope hash, a delivery id). The strategy counts
// failures per key to find poison messages.
type Keyed interface {
	Key() string
}

// maxTrackedKeys bounds the failure counts kept per child; when it is
// exceeded the counts start over.
const maxTrackedKeys = 1024

// Config configures a Strategy. Zero values take the documented defaults.
type Config struct {
	// Identity names the identity whose children this strategy supervises,
	// for logs.
	Identity string
	// Backoff spaces consecutive restarts of a child; the zero value means
	// DefaultBackoff.
	Backoff Backoff
	// ResetAfter is the quiet period after which a child's consecutive
	// failure count, its backoff and its per-message failure counts start
	// over. Default: twice Backoff.Max, at least one minute.
	ResetAfter time.Duration
	// PoisonThreshold is how many times the same keyed message may make a
	// child fail before it is quarantined. Default 3.
	PoisonThreshold int
	// Quarantine receives each quarantined message, on a timer goroutine,
	// before the child is restarted. It may block (for example to write a
	// dead letter); the child stays down until it returns.
	Quarantine func(Quarantined)
	// Observe, when set, sees every restart the strategy schedules, on the
	// supervisor's goroutine. It must not block.
	Observe func(Restart)
	// Metrics counts restarts and quarantines; nil counts nothing.
	Metrics *Metrics
	// Logger receives one record per failure; nil means slog.Default().
	Logger *slog.Logger
	// Rand returns uniform numbers in [0, 1) for the jitter; nil means
	// math/rand/v2.
	Rand func() float64
	// Now is the clock for the quiet period; nil means time.Now.
	Now func() time.Time
	// HandlerOf names the handler of a child for metrics and logs; nil
	// means the last segment of the child's id ("…/forward" → "forward").
	HandlerOf func(*actor.PID) string
}

// Restart describes one restart the strategy scheduled.
type Restart struct {
	Handler string
	Child   *actor.PID
	// Attempt counts consecutive failures of the child since the last quiet
	// period, from 1.
	Attempt int
	// Delay is the jittered backoff before the restart.
	Delay time.Duration
	// Key is the failed message's key, or "" when it had none.
	Key string
	// Redeliver says whether the failed message goes back to the child.
	Redeliver bool
	// Quarantine says whether the failed message is quarantined.
	Quarantine bool
}

// Quarantined is a poison message taken out of a child's stream.
type Quarantined struct {
	Identity string
	Handler  string
	Child    *actor.PID
	Key      string
	// Message is the message the child failed on, without its envelope.
	Message interface{}
	// Sender is the sender of the message, if it had one.
	Sender *actor.PID
	// Reason is the last failure, as text.
	Reason string
	// Failures is how many times the message made the child fail.
	Failures int
}

// Strategy is a OneForOne actor.SupervisorStrategy with exponential
// backoff and poison-message quarantine. Use one Strategy per identity
// actor: the identity actor can implement actor.SupervisorStrategy by
// calling it, and call Close when it stops. It is safe for concurrent use.
type Strategy struct {
	cfg      Config
	log      *slog.Logger
	mu       sync.Mutex
	children map[string]*childState
	timers   map[*time.Timer]struct{}
	closed   bool
}

var _ actor.SupervisorStrategy = (*Strategy)(nil)

type childState struct {
	failures int
	last     time.Time
	keys     map[string]int
}

// New returns a Strategy for cfg.
func New(cfg Config) *Strategy {
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.ResetAfter <= 0 {
		cfg.ResetAfter = 2 * cfg.Backoff.Nominal(1<<20)
		if cfg.ResetAfter < time.Minute {
			cfg.ResetAfter = time.Minute
		}
	}
	if cfg.PoisonThreshold <= 0 {
		cfg.PoisonThreshold = 3
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HandlerOf == nil {
		cfg.HandlerOf = lastSegment
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Strategy{
		cfg:      cfg,
		log:      log.With("identity", cfg.Identity),
		children: map[string]*childState{},
		timers:   map[*time.Timer]struct{}{},
	}
}

func lastSegment(pid *actor.PID) string {
	if pid == nil {
		return ""
	}
	id := pid.Id
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		id = id[i+1:]
	}
	return id
}

// HandleFailure implements actor.SupervisorStrategy. It records the
// failure and schedules the child's restart after the backoff delay; it
// returns at once.
func (s *Strategy) HandleFailure(system *actor.ActorSystem, supervisor actor.Supervisor, child *actor.PID,
	_ *actor.RestartStatistics, reason interface{}, message interface{}) {
	handler := s.cfg.HandlerOf(child)
	inner := actor.UnwrapEnvelopeMessage(message)
	var key string
	if k, ok := inner.(Keyed); ok {
		key = k.Key()
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		supervisor.StopChildren(child)
		return
	}
	now := s.cfg.Now()
	st := s.children[child.Id]
	if st == nil {
		st = &childState{keys: map[string]int{}}
		s.children[child.Id] = st
	}
	if st.failures > 0 && now.Sub(st.last) >= s.cfg.ResetAfter {
		st.failures = 0
		clear(st.keys)
	}
	st.failures++
	st.last = now
	r := Restart{Handler: handler, Child: child, Attempt: st.failures, Key: key}
	var keyFailures int
	if key != "" {
		if len(st.keys) >= maxTrackedKeys {
			clear(st.keys)
		}
		st.keys[key]++
		keyFailures = st.keys[key]
		if keyFailures >= s.cfg.PoisonThreshold {
			r.Quarantine = true
			delete(st.keys, key)
		} else {
			r.Redeliver = true
		}
	}
	r.Delay = s.cfg.Backoff.Delay(r.Attempt, s.cfg.Rand())
	s.mu.Unlock()

	reasonText := fmt.Sprint(reason)
	s.log.Warn("handler actor failed",
		"handler", handler, "child", child.Id, "attempt", r.Attempt, "delay", r.Delay,
		"key", key, "redeliver", r.Redeliver, "quarantine", r.Quarantine, "reason", reasonText)
	if s.cfg.Observe != nil {
		s.cfg.Observe(r)
	}

	var q *Quarantined
	if r.Quarantine {
		q = &Quarantined{Identity: s.cfg.Identity, Handler: handler, Child: child, Key: key,
			Message: inner, Sender: actor.UnwrapEnvelopeSender(message), Reason: reasonText, Failures: keyFailures}
	}
	s.schedule(r.Delay, func() {
		if q != nil {
			if s.cfg.Quarantine != nil {
				s.cfg.Quarantine(*q)
			}
			s.cfg.Metrics.quarantine(handler)
			s.log.Warn("poison message quarantined",
				"handler", handler, "child", child.Id, "key", key, "failures", keyFailures, "reason", reasonText)
		}
		system.EventStream.Publish(&actor.SupervisorEvent{Child: child, Reason: reason, Directive: actor.RestartDirective})
		supervisor.RestartChildren(child)
		s.cfg.Metrics.restarted(handler)
		if r.Redeliver {
			// The envelope keeps the original sender, so a request still
			// gets its answer from the restarted child.
			system.Root.Send(child, message)
		}
	})
}

// schedule runs f after d on a timer that Close can cancel.
func (s *Strategy) schedule(d time.Duration, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		_, live := s.timers[t]
		delete(s.timers, t)
		s.mu.Unlock()
		if live {
			f()
		}
	})
	s.timers[t] = struct{}{}
}

// Forget drops what the strategy knows about a child, for a child that
// stopped for good.
func (s *Strategy) Forget(child *actor.PID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.children, child.Id)
}

// Pending returns how many restarts are waiting for their delay.
func (s *Strategy) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.timers)
}

// Close cancels pending restarts; later failures stop the failing child
// instead of restarting it. The identity actor calls it when it stops.
func (s *Strategy) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for t := range s.timers {
		t.Stop()
		delete(s.timers, t)
	}
	clear(s.children)
}
