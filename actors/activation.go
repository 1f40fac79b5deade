package actors

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// activation is what one activation of an identity shares with its
// children: the keys, the conversations, the current lease and a context
// that ends when the activation stops. Children are restarted by the
// supervisor, the activation outlives them.
type activation struct {
	rt       *Runtime
	bridgeID string
	address  string
	bundle   *keys.PrivateKeyBundle
	auth     *keys.Authorizer
	convs    *conversations
	log      *slog.Logger
	started  time.Time

	ctx    context.Context
	cancel context.CancelFunc

	self *actor.PID // the identity actor

	lease atomic.Pointer[persistence.Lease]

	// running holds the ids of deliveries with an attempt running, across
	// restarts of the forward child.
	running idSet
	// attempts tracks running attempt goroutines, so a stop can wait for
	// them.
	attempts sync.WaitGroup
	// replies are the outbox replies waiting for a batch (replies.go).
	replies replyBatch
	// own are the envelopes it sealed, passed over when they come back.
	own conversation.OwnSent
	// early is when it may start webhook calls early, and earlyMessages
	// the messages whose early attempts run (early.go).
	early         earlyGate
	earlyMessages msgSet
}

// currentLease returns the lease the activation holds.
func (a *activation) currentLease() persistence.Lease {
	if l := a.lease.Load(); l != nil {
		return *l
	}
	return persistence.Lease{}
}

// checkLease returns an error wrapping persistence.ErrFenced unless the
// activation still holds its lease, and tells the identity actor when it
// does not.
func (a *activation) checkLease(ctx context.Context) error {
	err := a.rt.cfg.Store.CheckLease(ctx, a.currentLease())
	a.noteFenced(err)
	return err
}

// noteFenced counts a write refused for a lost lease and tells the
// identity actor, which stops as stale.
func (a *activation) noteFenced(err error) {
	if errors.Is(err, persistence.ErrFenced) {
		a.rt.cluster.CountFencedWrite()
		a.log.Warn("write refused: lease lost", "epoch", a.currentLease().Epoch, "error", err)
		a.rt.root.Send(a.self, &fenced{})
	}
}

// Status is what a node knows about an identity it hosts.
type Status struct {
	BridgeID string
	Address  string
	// Node is the node id of the runtime hosting the identity.
	Node string
	// Epoch is the fencing epoch of the activation's lease.
	Epoch int64
	// Since is when the activation went live.
	Since time.Time
	// Topics is how many XMTP topics the identity listens on.
	Topics int
}

func (a *activation) status() Status {
	return Status{BridgeID: a.bridgeID, Address: a.address, Node: a.rt.cfg.NodeID, Epoch: a.currentLease().Epoch,
		Since: a.started, Topics: len(a.convs.topics()) + 1}
}

// keySet is a set safe for concurrent use. The zero value is empty and
// holds no map until a key is added. Unlike a sync.Map, it allocates
// nothing to add a key once its map has room: the forward path adds and
// removes one for every attempt.
type keySet[K comparable] struct {
	mu  sync.Mutex
	ids map[K]struct{}
}

// idSet is a set of delivery ids; msgSet one of message ids.
type (
	idSet  = keySet[int64]
	msgSet = keySet[string]
)

func (s *keySet[K]) add(id K) {
	s.mu.Lock()
	if s.ids == nil {
		s.ids = make(map[K]struct{})
	}
	s.ids[id] = struct{}{}
	s.mu.Unlock()
}

func (s *keySet[K]) remove(id K) {
	s.mu.Lock()
	delete(s.ids, id)
	s.mu.Unlock()
}

func (s *keySet[K]) has(id K) bool {
	s.mu.Lock()
	_, ok := s.ids[id]
	s.mu.Unlock()
	return ok
}

// len returns how many keys the set holds.
func (s *keySet[K]) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}
