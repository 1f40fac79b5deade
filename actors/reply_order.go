package actors

import (
	"sync"
	"time"
)

// replyOrder keeps the replies of one conversation in the order of the
// messages they answer while several attempts of a bridge run at once, as
// in a recovery flush: an attempt enters in the order the forward child
// starts them (oldest delivery first), and before sealing its reply waits
// until no older delivery of the same conversation is still in flight. An
// attempt stops holding the younger ones back once it has handed its
// completion to the node's batcher (pass), which records and queues the
// replies for publishing in the order they were handed over; so the
// completions of one conversation can share a statement. The webhook
// calls themselves still run side by side; only sealing the replies of
// one conversation takes turns. It holds an entry per attempt in flight,
// nothing else, and wakes only the attempts that wait for the one that
// passes or leaves.
type replyOrder struct {
	mu       sync.Mutex
	inflight map[orderKey]map[int64]chan struct{}
}

type orderKey struct{ bridge, topic string }

// maxReplyWait bounds how long a reply waits for older ones: an attempt
// that hangs must not hold the others back for longer.
const maxReplyWait = 30 * time.Second

func newReplyOrder() *replyOrder {
	return &replyOrder{inflight: map[orderKey]map[int64]chan struct{}{}}
}

// enter registers an attempt of delivery id about to start.
func (o *replyOrder) enter(bridge, topic string, id int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := orderKey{bridge, topic}
	if o.inflight[k] == nil {
		o.inflight[k] = map[int64]chan struct{}{}
	}
	o.inflight[k][id] = make(chan struct{})
}

// pass stops the attempt of delivery id holding back younger ones: its
// reply, if it has one, is on its way in order.
func (o *replyOrder) pass(bridge, topic string, id int64) { o.leave(bridge, topic, id) }

// leave removes an attempt that ended, however it ended. Leaving after
// passing does nothing.
func (o *replyOrder) leave(bridge, topic string, id int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := orderKey{bridge, topic}
	m := o.inflight[k]
	if ch, ok := m[id]; ok {
		close(ch)
		delete(m, id)
	}
	if len(m) == 0 {
		delete(o.inflight, k)
	}
}

// wait returns once no delivery of the conversation older than id is in
// flight, or after maxReplyWait.
func (o *replyOrder) wait(bridge, topic string, id int64) {
	var timeout <-chan time.Time
	k := orderKey{bridge, topic}
	for {
		o.mu.Lock()
		var older chan struct{}
		for other, ch := range o.inflight[k] {
			if other < id {
				older = ch
				break
			}
		}
		o.mu.Unlock()
		if older == nil {
			return
		}
		if timeout == nil {
			t := time.NewTimer(maxReplyWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-older:
		case <-timeout:
			return
		}
	}
}
