package cluster

// The placement reconciler. Every registered, enabled bridge is active on
// exactly one member: the one disthash's rendezvous hash names. Each node
// activates the bridges it owns, whether or not anyone messaged them, and
// stops those it hosts but no longer owns or that were disabled or deleted.
// It runs every ReconcileInterval, at once after a topology change, and
// every second while a change is not fully placed.
//
// When a member leaves, the survivors own its identities and activate them
// as soon as their leases are free: released by a clean stop, or expired
// after a crash. When a member joins, protoactor's placement actor stops
// the grains that now belong to it (each releases its lease on the way
// out) and the newcomer's reconciler takes them. Two members that briefly
// disagree are kept apart by the lease: the second activation is refused,
// and a stale one is fenced.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/xmtpbridge/bridge/persistence"
)

// onTopology takes a topology event of protoactor's event stream.
func (n *Node) onTopology(topo *cluster.ClusterTopology) {
	if !n.topo.update(topo.Members, time.Now()) {
		return
	}
	n.metrics.topologyChanges.Inc()
	n.log.Info("cluster topology changed", "members", len(topo.Members), "joined", len(topo.Joined), "left", len(topo.Left))
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// reconcileLoop runs reconcile every ReconcileInterval, at once when kicked
// by a topology change, and every second while placement is incomplete.
func (n *Node) reconcileLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	fast := min(time.Second, n.cfg.ReconcileInterval)
	t := time.NewTimer(n.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-n.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(n.cfg.ReconcileInterval, 10*time.Second))
		complete, err := n.reconcile(ctx)
		cancel()
		if err != nil {
			n.log.Warn("reconcile placement", "error", err)
		}
		next := n.cfg.ReconcileInterval
		if !complete || err != nil {
			next = fast
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}

// passBudget bounds how long one reconcile pass starts activations.
const passBudget = 5 * time.Second

// waitForMember waits until the cluster topology holds this member, so
// requests to grains can be placed.
func (n *Node) waitForMember(ctx context.Context, joined <-chan struct{}) error {
	select {
	case <-joined:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for cluster membership (provider %s): %w", n.cfg.Provider, ctx.Err())
	}
}

// reconcile activates the bridges this node owns and does not host, stops
// hosted identities it does not own or whose bridge is disabled or gone,
// and reports whether every owned identity is now active. It reads only
// the ids of the enabled bridges, in one query, before it activates any;
// one pass starts activations for at most passBudget (or until ctx ends),
// and reports the rest as not placed, for the next pass: a node that owns
// more identities than one pass can activate keeps going instead of
// failing.
func (n *Node) reconcile(ctx context.Context) (bool, error) {
	start := time.Now()
	self := n.system.Address()
	ids, err := n.cfg.Store.EnabledBridgeIDs(ctx)
	if err != nil {
		return false, fmt.Errorf("list bridges: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, passBudget)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	want := make(map[string]bool, len(ids))
	var mu sync.Mutex
	unplaced := 0
	cut := false
	for _, id := range ids {
		owner := n.topo.owner(id)
		if owner != self {
			continue
		}
		want[id] = true
		if n.host.Hosts(id) || n.Leaving() {
			continue
		}
		if pctx.Err() != nil {
			unplaced++ // the next pass
			cut = true
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(id string) {
			defer wg.Done()
			defer func() { <-sem }()
			actx, cancel := context.WithTimeout(ctx, min(n.cfg.ActivationTimeout, 20*time.Second))
			defer cancel()
			if err := n.host.Activate(actx, id); err != nil {
				mu.Lock()
				unplaced++
				mu.Unlock()
				if !errors.Is(err, persistence.ErrLeaseHeld) && !errors.Is(err, ErrStopped) {
					n.log.Warn("activate bridge", "bridge", id, "error", err)
				}
			}
		}(id)
	}
	wg.Wait()
	if cut {
		// The next pass goes on at once.
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
	for _, id := range n.host.Hosted() {
		if !want[id] {
			if err := n.host.DeactivateLocal(ctx, id); err != nil {
				n.log.Warn("deactivate bridge", "bridge", id, "error", err)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	n.metrics.unplaced.Set(float64(unplaced))
	if unplaced > 0 {
		return false, nil
	}
	if took, ok := n.topo.placed(start, time.Now()); ok {
		n.metrics.rehome.Observe(took.Seconds())
		n.log.Info("placement complete", "hosted", len(want), "took", took.Round(time.Millisecond))
	}
	return true, nil
}
