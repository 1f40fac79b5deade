package cluster

// Drain: a node moves its identities to the other members, on its own
// request (SIGTERM, `bridge drain`) or on another member's through the node
// actor, and leaves the cluster.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/xmtpbridge/bridge/actors/actorpb"
)

// ErrUnknownNode reports a node id that no member of the cluster has.
var ErrUnknownNode = errors.New("no cluster member has this node id")

// ErrStopped reports a call on a node that is stopping or stopped.
var ErrStopped = errors.New("runtime stopped")

// DrainNode drains the member whose node id is nodeID, through the cluster
// when it is another member, and returns how many identities it stopped.
func (n *Node) DrainNode(ctx context.Context, nodeID string) (int, error) {
	if nodeID == n.cfg.NodeID {
		return n.Drain(ctx)
	}
	if n.topo == nil {
		return 0, fmt.Errorf("drain %s: %w", nodeID, ErrStopped)
	}
	for _, m := range n.topo.snapshot() {
		info := n.askNode(ctx, m.Address())
		if info == nil || info.NodeId != nodeID {
			continue
		}
		timeout := n.cfg.DrainTimeout + n.cfg.ActivationTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		res, err := n.root.RequestFuture(actor.NewPID(m.Address(), NodeActorName), &actorpb.DrainRequest{}, timeout).Result()
		if err != nil {
			return 0, fmt.Errorf("drain %s: %w", nodeID, err)
		}
		r, ok := res.(*actorpb.DrainResponse)
		if !ok {
			return 0, fmt.Errorf("drain %s: unexpected answer %T", nodeID, res)
		}
		if e := r.Error; e != nil && e.Code != actorpb.ErrorCode_ERROR_CODE_NONE {
			// The node actor sets no error today; a member of a later
			// version may.
			msg := e.Message
			if msg == "" {
				msg = e.Code.String()
			}
			return int(r.Identities), fmt.Errorf("drain %s: %s", nodeID, msg)
		}
		return int(r.Identities), n.waitMemberGone(ctx, m.Address())
	}
	return 0, fmt.Errorf("drain %s: %w", nodeID, ErrUnknownNode)
}

// Drain moves this node's identities to the other members: it refuses new
// activations, stops the placement reconciler, stops every hosted identity
// (each releases its lease after its running attempts), and leaves the
// cluster, so the other members' reconcilers take the identities over. The
// node keeps serving HTTP, with readiness red, until it is stopped. It
// returns how many identities it stopped; draining twice does nothing the
// second time.
func (n *Node) Drain(ctx context.Context) (int, error) {
	count, started := n.beginDrain(ctx)
	if !started {
		n.waitDrained(ctx)
		return 0, nil
	}
	return count, n.finishDrain()
}

// beginDrain is the first half of Drain, up to the identities stopped. It
// reports false when the node is already draining or stopping.
func (n *Node) beginDrain(ctx context.Context) (int, bool) {
	n.mu.Lock()
	if n.draining || n.stopping {
		n.mu.Unlock()
		return 0, false
	}
	n.draining = true
	n.mu.Unlock()
	n.metrics.draining.Set(1)
	n.log.Info("draining node: moving identities to the other members")
	n.haltReconciler()
	return n.host.StopAll(ctx), true
}

// finishDrain is the second half of Drain: the node leaves the cluster.
func (n *Node) finishDrain() error {
	defer close(n.drained)
	err := n.leaveCluster()
	n.log.Info("node drained and left the cluster")
	return err
}

func (n *Node) waitDrained(ctx context.Context) {
	n.mu.Lock()
	stopping := n.stopping
	n.mu.Unlock()
	if stopping {
		return
	}
	select {
	case <-n.drained:
	case <-ctx.Done():
	}
}

// Draining reports whether the node drained (or is draining) its
// identities away; such a node is not ready.
func (n *Node) Draining() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.draining
}

// leaveCluster shuts the cluster member down once. protoactor panics on
// some half-started states; that becomes an error.
func (n *Node) leaveCluster() (err error) {
	n.mu.Lock()
	if n.left || n.cluster == nil {
		n.mu.Unlock()
		return nil
	}
	n.left = true
	n.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("leave cluster: %v", p)
		}
	}()
	n.cluster.Shutdown(true)
	return nil
}

// drainAnswerGrace is how long a drained node waits after sending its
// answer before it leaves the cluster and closes its connections.
const drainAnswerGrace = 300 * time.Millisecond

// waitMemberGone waits until the member at address left this node's view
// of the topology, so the caller of a drain sees the identities move.
func (n *Node) waitMemberGone(ctx context.Context, address string) error {
	for {
		gone := true
		for _, m := range n.topo.snapshot() {
			if m.Address() == address {
				gone = false
			}
		}
		if gone {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for drained member %s to leave: %w", address, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
