package actors

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Logging of quarantined input. Anyone with an XMTP wallet can publish
// junk on a bridge's invite topic, so one line per rejected envelope would
// let a stranger fill the node's logs. Every rejected envelope is counted
// in bridge_actor_envelopes_rejected_total{reason} and quarantined (the
// store keeps a bounded number of rows per bridge); the log gets at most
// one line per bridge and reason per window, which carries how many lines
// were held back since the previous one.

// quarantineLogWindow is the sampler's window: one line per bridge and
// reason per minute.
const quarantineLogWindow = time.Minute

// quarantineLogKeys bounds the sampler's memory: the (bridge, reason)
// pairs it remembers. Beyond it, bridges share one key per reason.
const quarantineLogKeys = 4096

// sharedBridge is the bridge of the keys that bridges share once the
// sampler is full.
const sharedBridge = "*"

type sampleKey struct{ bridge, reason string }

type sample struct {
	// logged is when the window's line was written.
	logged time.Time
	// suppressed counts the lines held back since then.
	suppressed int
}

// logSampler lets through one log line per key and window. It is safe for
// concurrent use and holds at most maxKeys keys, plus one shared key per
// reason.
type logSampler struct {
	window  time.Duration
	maxKeys int

	mu        sync.Mutex
	samples   map[sampleKey]*sample
	nextPrune time.Time
}

func newLogSampler(window time.Duration, maxKeys int) *logSampler {
	return &logSampler{window: window, maxKeys: maxKeys, samples: map[sampleKey]*sample{}}
}

// allow reports whether a line for (bridge, reason) may be written at now,
// and how many lines for its key were held back before it.
func (s *logSampler) allow(bridge, reason string, now time.Time) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sampleKey{bridge, reason}
	e, ok := s.samples[k]
	if !ok && len(s.samples) >= s.maxKeys {
		s.prune(now)
		if len(s.samples) >= s.maxKeys {
			k = sampleKey{sharedBridge, reason}
			e, ok = s.samples[k]
		}
	}
	if ok && now.Sub(e.logged) < s.window {
		e.suppressed++
		return false, 0
	}
	held := 0
	if ok {
		held = e.suppressed
	}
	s.samples[k] = &sample{logged: now}
	return true, held
}

// prune forgets the keys whose window has passed, at most once per tenth
// of a window, so a full sampler does not scan itself on every line. The
// held-back count of a forgotten key is lost to the log; the metric keeps
// it.
func (s *logSampler) prune(now time.Time) {
	if now.Before(s.nextPrune) {
		return
	}
	s.nextPrune = now.Add(s.window / 10)
	for k, e := range s.samples {
		if now.Sub(e.logged) >= s.window {
			delete(s.samples, k)
		}
	}
}

// log writes msg at level through l when the sampler allows a line for
// (bridge, reason), with the number of lines held back as "suppressed".
func (s *logSampler) log(l *slog.Logger, level slog.Level, bridge, reason, msg string, attrs ...any) {
	ok, held := s.allow(bridge, reason, time.Now())
	if !ok {
		return
	}
	l.Log(context.Background(), level, msg, append(attrs, "suppressed", held)...)
}
