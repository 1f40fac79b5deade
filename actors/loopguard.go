package actors

import (
	"sync"
	"time"

	"github.com/xmtpbridge/bridge/xmtp/content"
)

// loopGuard limits the automatic replies each bridge sends per
// conversation to messages that were themselves automatic replies: at most
// limit within any window, estimated with a sliding window of two buckets.
// Every reply a bridge sends carries the autoReplyParameter (see
// autoReply), so two reply-mode bridges that answer each other, on one
// node or on two, see each other's replies as such and would otherwise
// bounce them forever. A message without the mark (a person, a REST send,
// any other client) is always answered and starts the count of its
// conversation afresh: the limit is N replies a window without a message
// from anything but a bridge. A reply over the limit is not sent, and its
// delivery still completes: nothing the endpoint answered is retried.
//
// One guard serves the whole node, keyed by bridge and topic, with at most
// loopGuardEntries conversations; an entry idle for two windows is evicted
// when room is needed. It keeps no timers. It is safe for concurrent use.
type loopGuard struct {
	limit  int
	window time.Duration

	mu      sync.Mutex
	entries map[loopKey]*loopWindow
}

type loopKey struct{ bridge, topic string }

// loopWindow counts replies in the current bucket, which started at start,
// and in the one before it.
type loopWindow struct {
	start     time.Time
	prev, cur int
}

// loopGuardEntries bounds the conversations a node's guard remembers.
const loopGuardEntries = 1 << 16

func newLoopGuard(limit int, window time.Duration) *loopGuard {
	return &loopGuard{limit: limit, window: window, entries: map[loopKey]*loopWindow{}}
}

// allow reports whether bridge may send a reply on topic at now, and if so
// counts it.
func (g *loopGuard) allow(bridge, topic string, now time.Time) bool {
	if g == nil || g.limit <= 0 {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	k := loopKey{bridge, topic}
	w, ok := g.entries[k]
	if !ok {
		if len(g.entries) >= loopGuardEntries {
			g.evict(now)
		}
		w = &loopWindow{start: now}
		g.entries[k] = w
	}
	w.roll(now, g.window)
	// The previous bucket counts for the part of it the sliding window
	// still covers.
	elapsed := now.Sub(w.start)
	estimate := float64(w.prev)*float64(g.window-elapsed)/float64(g.window) + float64(w.cur)
	if estimate >= float64(g.limit) {
		return false
	}
	w.cur++
	return true
}

// reset forgets the count of bridge's conversation on topic: a message
// that was not an automatic reply arrived in it.
func (g *loopGuard) reset(bridge, topic string) {
	if g == nil || g.limit <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.entries, loopKey{bridge, topic})
}

// autoReplyParameter marks the content of a reply a bridge sends on its
// own, from its endpoint's answer or a plug-in's. Clients that do not know
// it ignore it: a text stays a text.
const autoReplyParameter = "xmtpbridge-auto-reply"

// autoReply is the content of an automatic reply with text.
func autoReply(text string) *content.Content {
	c := content.Text(text)
	c.Parameters[autoReplyParameter] = "1"
	return c
}

// isAutoReply reports whether an inbound payload is another bridge's
// automatic reply.
func isAutoReply(payload []byte) bool {
	c, err := content.Decode(payload)
	return err == nil && c.Parameters[autoReplyParameter] != ""
}

// roll moves the buckets on to the one now falls in.
func (w *loopWindow) roll(now time.Time, window time.Duration) {
	elapsed := now.Sub(w.start)
	switch {
	case elapsed < window:
	case elapsed < 2*window:
		w.prev, w.cur = w.cur, 0
		w.start = w.start.Add(window)
	default:
		w.prev, w.cur = 0, 0
		w.start = now
	}
}

// evict drops the entries with no reply in the last two windows, and if
// none is that old, an arbitrary half: the guard forgets rather than grows.
// g.mu is held.
func (g *loopGuard) evict(now time.Time) {
	for k, w := range g.entries {
		if now.Sub(w.start) >= 2*g.window {
			delete(g.entries, k)
		}
	}
	for k := range g.entries {
		if len(g.entries) < loopGuardEntries/2 {
			break
		}
		delete(g.entries, k)
	}
}

// size is how many conversations the guard remembers.
func (g *loopGuard) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
}
