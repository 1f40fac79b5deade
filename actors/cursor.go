package actors

import (
	"context"
	"errors"
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

// flushCursors hands the cursors saveCursor marked to the node's cursor
// writer, which writes them with the other identities' in one statement
// while the actor goes on. A move that fails (other than by a lost lease)
// only leaves the cursor behind: the next one moves it further, and an
// activation that starts from an older cursor reads messages again that
// it finds recorded.
//
// It returns where each move's outcome will be: an activation that stops
// waits for its last moves before it releases its lease.
func (id *identity) flushCursors() []<-chan error {
	id.flushPending = false
	a := id.a
	if a == nil || id.stale || len(id.dirty) == 0 {
		return nil
	}
	var written []<-chan error
	for topic, c := range id.dirty {
		if !id.rec().ready(topic) {
			// A delivery marked before it is still being recorded:
			// delivered flushes again once it is.
			continue
		}
		moved := id.rt.cursors.enqueue(cursorMove{a: a, move: persistence.CursorMove{Lease: a.currentLease(),
			BridgeID: a.bridgeID, Topic: topic, TimestampNs: c.LastTimestampNs, Digest: c.LastDigest}})
		written = append(written, moved)
		id.lastMove = moved
		delete(id.dirty, topic)
		delete(id.rec().after, topic)
	}
	return written
}

// maxCursorBatch bounds the cursor moves of one statement.
const maxCursorBatch = 256

// cursorLinger is how long a batch of cursor moves waits for more moves
// to join it (batcher.linger). A move is off the critical path of every
// reply, and one written late, or lost with a crash, only makes the next
// activation read a few messages again that it finds recorded; a stopping
// activation hurries its last moves. Under a steady load it makes one
// statement of the moves of 50 ms, where each message or two had its own,
// and the CPU saved is taken off the statements replies wait for.
const cursorLinger = 50 * time.Millisecond

// cursorMove is a cursor move of an activation.
type cursorMove struct {
	a    *activation
	move persistence.CursorMove
}

// saveCursors writes a batch of cursor moves; a move refused for its lease
// tells its activation.
func saveCursors(store Store) func([]cursorMove) []error {
	return func(reqs []cursorMove) []error {
		moves := make([]persistence.CursorMove, len(reqs))
		for i, r := range reqs {
			moves[i] = r.move
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		errs := store.SaveCursors(ctx, moves)
		told := map[*activation]bool{} // once per activation and batch
		for i, err := range errs {
			r := reqs[i]
			if err == nil || told[r.a] {
				continue
			}
			told[r.a] = true
			if r.a.ctx.Err() != nil {
				continue // the activation has ended; the next one reads again
			}
			if errors.Is(err, persistence.ErrFenced) {
				r.a.noteFenced(err)
			} else {
				r.a.log.Error("save cursor", "topic", r.move.Topic, "error", err)
			}
		}
		return errs
	}
}
