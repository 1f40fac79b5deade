package actors

// Group commit of inbound messages.
//
// An identity does not wait for Postgres between two messages: it hands
// each delivery to the node's committer and goes on decrypting. The
// committer writes whatever has queued up as one statement
// (Store.RecordDeliveries, each row fenced by its own identity's lease),
// so a busy node makes one round trip per batch instead of one per
// message, and an idle node runs nothing. Up to commitDepth statements
// are in flight at once: a message that comes while a small one is under
// way does not wait for its round trip (batcher.go), and the messages that
// come meanwhile share the next statement. Each result comes back to its
// identity as a *deliveryRecorded message, those of a conversation in the
// order the identity sent them (recordState orders the cursors by topic).
//
// A delivery row is still written before its cursor moves: a cursor marked
// while deliveries of the identity are in flight is written only once they
// have all been recorded (recordState).

import (
	"context"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
)

// maxCommitBatch bounds the deliveries of one statement.
const maxCommitBatch = 256

// commitDepth is how many statements of deliveries may be in flight at
// once: a message that comes while a small one is under way is written at
// once beside it, instead of waiting for its round trip (batcher.depth). The
// messages of one conversation are never in two statements at once, so
// their delivery ids still follow their order.
const commitDepth = 2

// committer batches RecordDelivery across the identities of a node. It
// runs a goroutine only while it has work.
type committer struct {
	b *batcher[commitRequest, persistence.Recorded]
}

type commitRequest struct {
	nd   persistence.NewDelivery
	done func(persistence.Recorded)
}

// newCommitter returns a committer that writes to store; spawn runs its
// drains (nil: goroutines of their own). observe, if not nil, is given
// each statement's round trip.
func newCommitter(store Store, spawn func(func()), observe func(time.Duration)) *committer {
	return &committer{b: &batcher[commitRequest, persistence.Recorded]{max: maxCommitBatch, depth: commitDepth, spawn: spawn,
		key: func(r commitRequest) string { return r.nd.BridgeID + " " + r.nd.Topic },
		run: func(reqs []commitRequest) []persistence.Recorded {
			nds := make([]persistence.NewDelivery, len(reqs))
			for i, r := range reqs {
				nds[i] = r.nd
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			began := time.Now()
			res := store.RecordDeliveries(ctx, nds)
			if observe != nil {
				observe(time.Since(began))
			}
			return res
		},
		// The answers of a conversation go in the order it sent them,
		// but an identity's conversations not always (a call whose
		// conversation is in a batch in flight waits, and a later call of
		// another goes first; each batch is handed back as it returns), so
		// an identity orders its cursors by topic (recordState).
		deliver: func(r commitRequest, res persistence.Recorded) { r.done(res) },
		fail:    func(err error) persistence.Recorded { return persistence.Recorded{Err: err} }}}
}

// record queues nd; done gets its outcome, on the committer's goroutine.
func (c *committer) record(nd persistence.NewDelivery, done func(persistence.Recorded)) {
	c.b.enqueue(commitRequest{nd: nd, done: done})
}

// deliveryRecorded is the committer's answer to an identity.
type deliveryRecorded struct {
	a   *activation
	env *messagev1.Envelope
	msg *conversation.Message
	// topic is the delivery's conversation.
	topic string
	res   persistence.Recorded
	// at is when the batch that recorded it returned.
	at time.Time
	// clock times the message's stages (stages.go).
	clock *stageClock
	// early is the message's early attempt, if one was asked for
	// (early.go).
	early *earlyAttempt
}

// recordState orders an identity's cursor writes after its deliveries.
// sent and answered count, by topic, the deliveries handed to the
// committer and answered; a topic with nothing in flight has neither. The
// answers of one topic come in the order it handed them over, as the
// committer never has two batches of one conversation in flight, but those
// of two topics may not. after holds, per dirty topic, the topic's sent
// count when it was marked.
type recordState struct {
	owner          *activation
	sent, answered map[string]uint64
	after          map[string]uint64
	// failed holds, by message id, the topics of deliveries whose record
	// failed and is being tried again: their topic's cursor stays where it
	// is until it succeeds, or a crash in between would lose them.
	failed map[string]string
}

// rec returns the record state of the current activation; a new
// activation starts from nothing in flight.
func (id *identity) rec() *recordState {
	if id.recording.owner != id.a {
		id.recording = recordState{owner: id.a}
	}
	return &id.recording
}

// inFlight reports whether deliveries of the identity are being recorded.
func (r *recordState) inFlight() bool { return len(r.sent) > 0 }

// submit notes a delivery of topic handed to the committer.
func (r *recordState) submit(topic string) {
	if r.sent == nil {
		r.sent, r.answered = map[string]uint64{}, map[string]uint64{}
	}
	r.sent[topic]++
}

// answer notes the committer's answer for a delivery of topic. A topic
// with nothing in flight forgets its counts, and its mark, which is ready.
func (r *recordState) answer(topic string) {
	r.answered[topic]++
	if r.answered[topic] >= r.sent[topic] {
		delete(r.sent, topic)
		delete(r.answered, topic)
		if _, dirty := r.after[topic]; dirty {
			r.after[topic] = 0
		}
	}
}

// mark notes that topic's cursor was marked now.
func (r *recordState) mark(topic string) {
	if r.sent[topic] == r.answered[topic] {
		delete(r.after, topic)
		return
	}
	if r.after == nil {
		r.after = map[string]uint64{}
	}
	r.after[topic] = r.sent[topic]
}

// ready reports whether topic's marked cursor may be written: every
// delivery of the topic handed over before it was marked has been
// answered, and none of the topic's failed to record and waits to be tried
// again.
func (r *recordState) ready(topic string) bool {
	if r.after[topic] > r.answered[topic] {
		return false
	}
	for _, t := range r.failed {
		if t == topic {
			return false
		}
	}
	return true
}

// recordDelivery hands nd to the committer; the answer arrives as a
// *deliveryRecorded, and goes first to early, the message's early attempt
// if not nil. The secrets a created row's statement read are kept for the
// bridge's next early attempts (early.go).
func (id *identity) recordDelivery(ctx actor.Context, env *messagev1.Envelope, msg *conversation.Message, clock *stageClock,
	early *earlyAttempt, nd persistence.NewDelivery) {
	a := id.a
	self, rt := ctx.Self(), id.rt
	id.rec().submit(nd.Topic)
	sent, gen := time.Now(), rt.earlySecrets.generation()
	rt.commits.record(nd, func(res persistence.Recorded) {
		at := time.Now()
		if res.Err == nil && res.Created && len(res.Secrets) > 0 {
			// Stamped when it was handed over, before the statement read
			// them: an early call trusts them no longer than that allows.
			rt.earlySecrets.put(nd.BridgeID, res.Secrets, sent, gen)
		}
		if early != nil {
			early.recorded(res)
		}
		rt.root.Send(self, &deliveryRecorded{a: a, env: env, msg: msg, topic: nd.Topic, res: res, at: at, clock: clock, early: early})
	})
}

// delivered moves the cursor past a recorded delivery and hands it to the
// forward child.
func (id *identity) delivered(ctx actor.Context, m *deliveryRecorded) {
	if m.a != id.a || id.a == nil {
		return // an answer for an activation that has ended
	}
	id.rec().answer(m.topic)
	a := id.a
	defer func() {
		if !id.rec().inFlight() && len(id.dirty) > 0 && !id.flushPending {
			id.flushPending = true
			id.rt.root.Send(a.self, &flushCursors{})
		}
	}()
	if id.stale {
		return
	}
	err := m.res.Err
	if errors.Is(err, persistence.ErrFenced) {
		// The current activation, elsewhere, reads this message itself.
		a.noteFenced(err)
		return
	}
	if err != nil {
		// The cursor stays behind the message, so the next activation
		// reads it again; this one tries again in a second. Later
		// messages of the topic do not move it past this one meanwhile.
		a.log.Error("record delivery", "topic", m.msg.Topic, "message", m.msg.ID, "error", err)
		if id.rec().failed == nil {
			id.rec().failed = map[string]string{}
		}
		id.rec().failed[m.msg.ID] = m.env.ContentTopic
		id.seen.forget(m.msg.ID)
		self, root, env := ctx.Self(), id.rt.root, m.env
		time.AfterFunc(time.Second, func() { root.Send(self, &inboundEnvelope{env: env}) })
		return
	}
	delete(id.rec().failed, m.msg.ID) // recorded at last, if it had failed
	id.saveCursor(m.env.ContentTopic, m.env.TimestampNs, m.env.Message)
	d := m.res.Delivery
	if m.res.Created && m.early.started() {
		return // its early attempt has it (early.go)
	}
	if m.res.Created || d.Status == persistence.DeliveryPending || d.Status == persistence.DeliveryFailed {
		task := &deliveryTask{delivery: d}
		if m.res.Created && len(m.res.Secrets) > 0 {
			// The row was created under a live lease in the round trip
			// that read its bridge's secrets, at m.at.
			task.start, task.startAt = &persistence.AttemptStart{Delivery: d, Secrets: m.res.Secrets}, m.at
			task.clock = m.clock
			task.clock.markAt(stageRecord, m.at)
		}
		ctx.Send(id.forwardChild(ctx), task)
	}
}
