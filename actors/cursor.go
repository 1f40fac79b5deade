package actors

import (
	"context"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// saveCursor marks a topic's cursor to move to an envelope whose handling
// is durable. Cursors are written by flushCursors, which the actor sends
// itself: it runs after the envelopes already in the mailbox, so a burst
// costs one write per topic instead of one per message.
func (id *identity) saveCursor(topic string, ts uint64, message []byte) {
	a := id.a
	if a == nil {
		return
	}
	if cur, ok := id.dirty[topic]; ok && cur.LastTimestampNs >= int64(ts) {
		return
	}
	if id.dirty == nil {
		id.dirty = map[string]persistence.Cursor{}
	}
	id.dirty[topic] = persistence.Cursor{Topic: topic, LastTimestampNs: int64(ts), LastDigest: keys.Sha256(message)}
	id.rec().mark(topic)
	if !id.flushPending {
		id.flushPending = true
		id.rt.root.Send(a.self, &flushCursors{})
	}
}

// flushCursors writes the cursors saveCursor marked.
func (id *identity) flushCursors() {
	id.flushPending = false
	a := id.a
	if a == nil || id.stale || len(id.dirty) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for topic, c := range id.dirty {
		if !id.rec().ready(topic) {
			// A delivery marked before it is still being recorded:
			// delivered flushes again once it is.
			continue
		}
		err := id.rt.cfg.Store.SaveCursor(ctx, a.currentLease(), a.bridgeID, topic, c.LastTimestampNs, c.LastDigest)
		if err != nil {
			a.log.Error("save cursor", "topic", topic, "error", err)
			a.noteFenced(err)
			return
		}
		delete(id.dirty, topic)
		delete(id.rec().after, topic)
	}
}
