package cluster

// The placement reconciler. Every registered, enabled bridge is active on
// exactly one member: the one disthash's rendezvous hash names. Each node
// activates the bridges it owns, whether or not anyone messaged them, and
// stops those it hosts but no longer owns or that were disabled or deleted.
//
// A full pass reads the id of every enabled bridge and hashes each: it
// runs at the start, at once after a topology change, every second while
// a pass left identities unplaced, and otherwise every fullPassEvery
// intervals as a safety net. Between full passes the reconciler looks only
// at the bridges named since the last pass: by a bridge_changed event
// (BridgeChanged, from the runtime's LISTEN connection: a bridge created,
// disabled, enabled or deleted anywhere in the cluster) or by an identity
// of this node that stopped. While the runtime does not listen
// (EventsLive false, and before it first says otherwise) every pass is a
// full one, every ReconcileInterval. An idle node with all its identities
// placed reads nothing.
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
	"sync/atomic"
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
	n.wantFullPass()
}

// fullPassEvery is how many ReconcileIntervals may pass between two full
// passes while the runtime listens for bridge changes.
const fullPassEvery = 20

// BridgeChanged names a bridge whose row or configuration changed (or
// whose identity stopped on this node), for the next pass, which runs
// soon.
func (n *Node) BridgeChanged(bridgeID string) {
	n.noteChanged(bridgeID)
	n.kickReconcile()
}

// IdentityStopped names a bridge whose identity stopped on this node, for
// the next pass, which runs within ReconcileInterval: if the node still
// owns it, it is activated again.
func (n *Node) IdentityStopped(bridgeID string) { n.noteChanged(bridgeID) }

func (n *Node) noteChanged(bridgeID string) {
	n.placeMu.Lock()
	if n.changed == nil {
		n.changed = map[string]struct{}{}
	}
	n.changed[bridgeID] = struct{}{}
	n.placeMu.Unlock()
}

// EventsLive tells the node whether bridge_changed events reach it now
// (BridgeChanged). Going live asks for a full pass: changes made while
// nobody listened were not announced.
func (n *Node) EventsLive(live bool) {
	n.eventsLive.Store(live)
	if live {
		n.wantFullPass()
	}
}

// wantFullPass makes the next pass a full one and runs it soon.
func (n *Node) wantFullPass() {
	n.placeMu.Lock()
	n.fullDue = true
	n.placeMu.Unlock()
	n.kickReconcile()
}

func (n *Node) kickReconcile() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// nextPass returns whether the next pass is a full one and, if not, the
// bridges it looks at and what a full pass cut short left (rest); either
// way the named bridges and the rest are taken.
func (n *Node) nextPass(now time.Time) (full bool, ids, rest []string) {
	n.placeMu.Lock()
	defer n.placeMu.Unlock()
	full = n.fullDue || !n.eventsLive.Load() || now.Sub(n.lastFull) >= fullPassEvery*n.cfg.ReconcileInterval
	if !full {
		ids = make([]string, 0, len(n.changed))
		for id := range n.changed {
			ids = append(ids, id)
		}
		rest = n.rest
	}
	n.changed, n.rest = nil, nil
	n.fullDue = false
	return full, ids, rest
}

// passDone records the end of a pass: a failed one makes the next a full
// one. An incomplete one leaves what it did not place to the next pass,
// which runs within a second: the bridges whose activation failed, named
// for it (activateOne), and the rest of the owned identities a pass cut
// short by its budget did not get to (leaveRest). So one bridge that keeps
// failing to activate costs a retry of that bridge, not a full pass over
// every bridge, each second.
func (n *Node) passDone(full bool, start time.Time, complete bool, err error) {
	n.placeMu.Lock()
	defer n.placeMu.Unlock()
	switch {
	case err != nil:
		n.fullDue, n.rest, n.restPending = true, nil, false
	case full && (complete || n.rest == nil):
		// A full pass whose only misses are failed activations looked at
		// every bridge: it counts as one, and the failures are retried
		// on their own.
		n.lastFull, n.restPending = start, false
	case full:
		// A full pass cut short counts as one once its rest is placed,
		// at the end of the last pass: nothing was left out of it, and
		// the bridges named meanwhile were looked at by the passes that
		// went on with it.
		n.restPending = true
	}
	if complete && !full && n.restPending {
		n.lastFull, n.restPending = start, false
	}
}

// leaveRest keeps what a pass cut short left, for the next pass, which
// goes on at once.
func (n *Node) leaveRest(rest []string) {
	n.placeMu.Lock()
	n.rest = rest
	n.placeMu.Unlock()
	n.kickReconcile()
}

// reconcileLoop runs a pass every ReconcileInterval, at once when kicked
// by a topology or bridge change, and every second while placement is
// incomplete.
func (n *Node) reconcileLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	fast := min(time.Second, n.cfg.ReconcileInterval)
	t := time.NewTimer(n.cfg.ReconcileInterval)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-n.kick:
			// Kicks that come faster than minKickGap (bridges changed
			// in quick succession, by one client or many) share a pass:
			// what they named waits in n.changed.
			if wait := minKickGap - time.Since(last); wait > 0 {
				gap := time.NewTimer(wait)
				select {
				case <-stop:
					gap.Stop()
					return
				case <-gap.C:
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(n.cfg.ReconcileInterval, 10*time.Second))
		start := time.Now()
		last = start
		full, ids, rest := n.nextPass(start)
		var complete bool
		var err error
		if full {
			n.metrics.passes.WithLabelValues("full").Inc()
			complete, err = n.reconcile(ctx)
		} else {
			n.metrics.passes.WithLabelValues("changed").Inc()
			complete, err = n.reconcileSome(ctx, ids)
			if err == nil && rest != nil {
				restDone := n.activateOwned(ctx, rest)
				complete = complete && restDone
			}
		}
		cancel()
		n.passDone(full, start, complete, err)
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

// minKickGap is the least time between the starts of two passes kicked by
// changes, so that a stream of bridge changes costs each node a few small
// queries a second, not one per change.
const minKickGap = 100 * time.Millisecond

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
// and leaves the rest of the owned identities, unplaced, to the next
// pass, which goes on with them without reading and hashing every bridge
// again (activateOwned): a node that owns more identities than one pass
// can activate keeps going instead of failing.
func (n *Node) reconcile(ctx context.Context) (bool, error) {
	start := time.Now()
	self := n.system.Address()
	ids, err := n.cfg.Store.EnabledBridgeIDs(ctx)
	if err != nil {
		return false, fmt.Errorf("list bridges: %w", err)
	}
	want := make(map[string]bool, len(ids))
	owned := make([]string, 0, len(ids))
	for _, id := range ids {
		if n.topo.owner(id) == self {
			want[id] = true
			owned = append(owned, id)
		}
	}
	placed := n.activateOwned(ctx, owned)
	for _, id := range n.host.Hosted() {
		if !want[id] {
			if err := n.host.DeactivateLocal(ctx, id); err != nil {
				n.log.Warn("deactivate bridge", "bridge", id, "error", err)
			}
		}
	}
	if !placed {
		return false, nil
	}
	if took, ok := n.topo.placed(start, time.Now()); ok {
		n.metrics.rehome.Observe(took.Seconds())
		n.log.Info("placement complete", "hosted", len(want), "took", took.Round(time.Millisecond))
	}
	return true, nil
}

// reconcileSome is reconcile for the named bridges only: it activates
// those this node owns, enabled, and does not host, and stops those it
// hosts but no longer owns or that were disabled or deleted. It reads the
// named bridges' status in one query.
func (n *Node) reconcileSome(ctx context.Context, ids []string) (bool, error) {
	if len(ids) == 0 {
		return true, nil
	}
	enabled, err := n.cfg.Store.EnabledBridgeIDsAmong(ctx, ids)
	if err != nil {
		return false, fmt.Errorf("list bridges: %w", err)
	}
	on := make(map[string]bool, len(enabled))
	for _, id := range enabled {
		on[id] = true
	}
	self := n.system.Address()
	var wg sync.WaitGroup
	sem := make(chan struct{}, activations)
	var failed atomic.Int64
	for _, id := range ids {
		own := on[id] && n.topo.owner(id) == self
		hosted := n.host.Hosts(id)
		switch {
		case !own && hosted:
			if err := n.host.DeactivateLocal(ctx, id); err != nil {
				n.log.Warn("deactivate bridge", "bridge", id, "error", err)
			}
		case own && !hosted && !n.Leaving():
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if !n.activateOne(ctx, id) {
					failed.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	return failed.Load() == 0, nil
}

// activations is how many activations a pass runs at once. An activation
// mostly waits (for Postgres, for the XMTP node), so a node that owns
// many identities keeps more of them in flight than it has cores.
const activations = 32

// activateOne activates the bridge's identity and reports whether it is
// active; a failure other than a lease still held elsewhere is logged, and
// the bridge is named for the next pass, which tries it again.
func (n *Node) activateOne(ctx context.Context, id string) bool {
	actx, cancel := context.WithTimeout(ctx, min(n.cfg.ActivationTimeout, 20*time.Second))
	defer cancel()
	if err := n.host.Activate(actx, id); err != nil {
		n.noteChanged(id)
		if !errors.Is(err, persistence.ErrLeaseHeld) && !errors.Is(err, ErrStopped) {
			n.log.Warn("activate bridge", "bridge", id, "error", err)
		}
		return false
	}
	return true
}

// activateOwned activates those of owned (identities this node owns) it
// does not host, for at most passBudget (or until ctx ends), and reports
// whether all of them are now active. What the budget cut off it leaves
// for the next pass (leaveRest), as it does the bridges whose activation
// failed (activateOne).
func (n *Node) activateOwned(ctx context.Context, owned []string) bool {
	pctx, cancel := context.WithTimeout(ctx, passBudget)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, activations)
	var failed atomic.Int64
	var rest []string
	for i, id := range owned {
		if n.host.Hosts(id) || n.Leaving() {
			continue
		}
		if pctx.Err() != nil {
			rest = owned[i:]
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !n.activateOne(ctx, id) {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	unplaced := int(failed.Load())
	for _, id := range rest {
		if !n.host.Hosts(id) {
			unplaced++
		}
	}
	n.metrics.unplaced.Set(float64(unplaced))
	if rest != nil {
		n.leaveRest(rest)
	}
	return unplaced == 0
}
