package actors

import (
	"sync"
	"time"
)

// replyOrder keeps the replies of one conversation in the order of the
// messages they answer while several attempts of a bridge run at once, as
// in a recovery flush: an attempt enters in the order the forward child
// starts them (oldest delivery first), and before sealing its reply waits
// until no older delivery of the same conversation is still in flight.
// The webhook calls themselves still run side by side; only sealing and
// publishing the replies of one conversation take turns. It holds an entry
// per attempt in flight, nothing else.
type replyOrder struct {
	mu       sync.Mutex
	cond     *sync.Cond
	inflight map[orderKey]map[int64]bool
}

type orderKey struct{ bridge, topic string }

// maxReplyWait bounds how long a reply waits for older ones: an attempt
// that hangs must not hold the others back for longer.
const maxReplyWait = 30 * time.Second

func newReplyOrder() *replyOrder {
	o := &replyOrder{inflight: map[orderKey]map[int64]bool{}}
	o.cond = sync.NewCond(&o.mu)
	return o
}

// enter registers an attempt of delivery id about to start.
func (o *replyOrder) enter(bridge, topic string, id int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := orderKey{bridge, topic}
	if o.inflight[k] == nil {
		o.inflight[k] = map[int64]bool{}
	}
	o.inflight[k][id] = true
}

// leave removes an attempt that ended, however it ended.
func (o *replyOrder) leave(bridge, topic string, id int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := orderKey{bridge, topic}
	delete(o.inflight[k], id)
	if len(o.inflight[k]) == 0 {
		delete(o.inflight, k)
	}
	o.cond.Broadcast()
}

// wait returns once no delivery of the conversation older than id is in
// flight, or after maxReplyWait.
func (o *replyOrder) wait(bridge, topic string, id int64) {
	deadline := time.Now().Add(maxReplyWait)
	timer := time.AfterFunc(maxReplyWait, func() {
		o.mu.Lock()
		o.cond.Broadcast()
		o.mu.Unlock()
	})
	defer timer.Stop()
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.olderInFlight(orderKey{bridge, topic}, id) && time.Now().Before(deadline) {
		o.cond.Wait()
	}
}

func (o *replyOrder) olderInFlight(k orderKey, id int64) bool {
	for other := range o.inflight[k] {
		if other < id {
			return true
		}
	}
	return false
}
