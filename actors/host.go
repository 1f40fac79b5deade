package actors

// The runtime as the cluster sees it. cluster.Node places identities,
// renews their leases and drains the node; what it needs of the identities
// (activate one, stop one or all, list them and their leases) it asks of
// the runtime through cluster.Host, implemented here. The membership and
// drain calls of the API pass through the runtime to the node.

import (
	"context"
	"sync"

	"github.com/xmtpbridge/bridge/cluster"
	"github.com/xmtpbridge/bridge/persistence"
)

// host is the runtime as a cluster.Host.
type host struct{ rt *Runtime }

var (
	_ cluster.Host        = host{}
	_ cluster.LeaseHolder = (*activation)(nil)
)

// Activate activates the identity once: a lease held by the previous
// activation is an error, and the next placement round tries again.
func (h host) Activate(ctx context.Context, bridgeID string) error {
	return h.rt.activate(ctx, bridgeID, false)
}

func (h host) Hosts(bridgeID string) bool {
	// The placement pass asks this of every identity: no Status built.
	return h.rt.activation(bridgeID) != nil
}

func (h host) Hosted() []string { return h.rt.Hosted() }

func (h host) DeactivateLocal(ctx context.Context, bridgeID string) error {
	return h.rt.deactivateLocal(ctx, bridgeID)
}

func (h host) StopAll(ctx context.Context) int { return h.rt.stopAll(ctx) }

func (h host) Leases() []cluster.LeaseHolder {
	h.rt.mu.Lock()
	defer h.rt.mu.Unlock()
	out := make([]cluster.LeaseHolder, 0, len(h.rt.active))
	for _, a := range h.rt.active {
		out = append(out, a)
	}
	return out
}

// Lease implements cluster.LeaseHolder: the lease the activation holds.
func (a *activation) Lease() persistence.Lease { return a.currentLease() }

// Renewed implements cluster.LeaseHolder.
func (a *activation) Renewed(l persistence.Lease) { a.lease.Store(&l) }

// Fenced implements cluster.LeaseHolder: the identity actor stops as
// stale unless it holds a newer lease than epoch's.
func (a *activation) Fenced(epoch int64) { a.rt.root.Send(a.self, &fenced{epoch: epoch}) }

// stopAll stops every hosted identity in parallel and returns how many.
func (rt *Runtime) stopAll(ctx context.Context) int {
	rt.mu.Lock()
	acts := make([]*activation, 0, len(rt.active))
	for _, a := range rt.active {
		acts = append(acts, a)
	}
	rt.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range acts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rt.stopGrain(ctx, a); err != nil {
				rt.log.Warn("stop identity", "bridge", a.bridgeID, "error", err)
			}
		}()
	}
	wg.Wait()
	return len(acts)
}

// Members returns the members of the cluster as this node sees them, each
// asked for its node id through the cluster.
func (rt *Runtime) Members(ctx context.Context) []cluster.Member { return rt.cluster.Members(ctx) }

// DrainNode drains the member whose node id is nodeID, through the cluster
// when it is another member, and returns how many identities it stopped.
func (rt *Runtime) DrainNode(ctx context.Context, nodeID string) (int, error) {
	return rt.cluster.DrainNode(ctx, nodeID)
}

// Drain moves this node's identities to the other members and leaves the
// cluster (cluster.Node.Drain); it returns how many identities it stopped.
func (rt *Runtime) Drain(ctx context.Context) (int, error) { return rt.cluster.Drain(ctx) }

// Draining reports whether the node drained (or is draining) its
// identities away; such a node is not ready.
func (rt *Runtime) Draining() bool { return rt.cluster.Draining() }

// MembershipReady reports whether the membership engine answers (with
// etcd, whether an etcd endpoint answers within two seconds).
func (rt *Runtime) MembershipReady(ctx context.Context) error { return rt.cluster.MembershipReady(ctx) }

// NodeLeaseReady reports an error while the node's lease is not being
// renewed (cluster.Node.NodeLeaseReady).
func (rt *Runtime) NodeLeaseReady() error { return rt.cluster.NodeLeaseReady() }
