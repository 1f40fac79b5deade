package cluster

// The node's lease renewer. The node process holds one node lease in
// Postgres, taken when it starts, and every identity it hosts holds a
// fencing lease under it (persistence.Store.AcquireLeaseOn). One goroutine
// renews the node lease every third of LeaseTTL with one statement that
// writes one row, however many identities the node hosts; their own lease
// rows are written when they are taken and released, never on renewal.
//
// A node lease that ran out is never renewed again. When the renewal finds
// it gone, or the node could not reach Postgres for a whole LeaseTTL, every
// identity the node hosts is told so through its LeaseHolder and stops
// itself as stale; the node then takes a new node lease (a new
// incarnation) and the placement reconciler activates its identities again
// under it. An identity that another owner took over while the node lease
// lived (its lease was released, or forced) moves the node lease's lost
// count; the renewer then checks the leases of its identities, one read of
// a few thousand per statement, and tells the ones that lost theirs.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

// NodeLease returns the node lease the node holds now: every identity it
// activates takes its lease under this one. Before Start, its ID is 0,
// under which no lease can be taken.
func (n *Node) NodeLease() persistence.NodeLease {
	if nl := n.nodeLease.Load(); nl != nil {
		return *nl
	}
	return persistence.NodeLease{}
}

// NodeLeaseReady reports an error while the node lease is not being
// renewed: no renewal has reached Postgres for two of its rounds (two
// thirds of LeaseTTL). The hosted identities keep working until the lease
// could have run out, a whole LeaseTTL; readiness goes red before that,
// whatever keeps the renewals from Postgres (the lease's own connection
// finds no free slot, a statement is refused), while the node's other
// queries may still be answered.
func (n *Node) NodeLeaseReady() error {
	ns := n.renewedNs.Load()
	if ns == 0 {
		return nil // not started: readiness reports that on its own
	}
	if since := time.Since(time.Unix(0, ns)); since > 2*n.cfg.LeaseTTL/3 {
		return fmt.Errorf("node lease not renewed for %s (lease TTL %s): its identities stop when it runs out", since.Round(time.Second), n.cfg.LeaseTTL)
	}
	return nil
}

// member is this process's member id, which names its node lease and
// begins the owner of every lease it takes.
func (n *Node) member() string { return n.cfg.NodeID + "." + n.system.ID }

// startNodeLease takes a new node lease, a new incarnation.
func (n *Node) startNodeLease(ctx context.Context) error {
	sent := time.Now()
	nl, err := n.cfg.Store.StartNodeLease(ctx, n.cfg.NodeID, n.member(), n.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	n.renewedAt, n.lapseFenced = sent, false
	n.renewedNs.Store(sent.UnixNano())
	n.nodeLease.Store(&nl)
	n.log.Info("node lease taken", "incarnation", nl.ID)
	return nil
}

// renewLoop renews every third of LeaseTTL; after a failed round it tries
// again after a tenth, so one slow round does not use up a lease's margin.
func (n *Node) renewLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTimer(n.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			next := n.cfg.LeaseTTL / 3
			if !n.renewLeases() {
				next = n.cfg.LeaseTTL / 10
			}
			t.Reset(next)
		}
	}
}

// renewLeases renews the node lease and reports whether the round reached
// the store and the node holds a live node lease after it.
func (n *Node) renewLeases() bool {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL/3)
	defer cancel()
	held := n.NodeLease()
	sent := time.Now()
	renewed, err := n.cfg.Store.RenewNodeLease(ctx, held, n.cfg.LeaseTTL)
	if errors.Is(err, persistence.ErrFenced) {
		// The renewal is a write the lease refused, like any other: a
		// lost node lease counts once here. The identities it stops
		// count in bridge_actor_stale_activations_total, not here.
		n.metrics.fencedWrites.Inc()
		n.log.Error("node lease ran out: every hosted identity is fenced", "incarnation", held.ID)
		n.fenceAll(held.ID)
		if err := n.startNodeLease(ctx); err != nil {
			n.metrics.renewErrors.Inc()
			n.log.Error("take a new node lease", "error", err)
			return false
		}
		// The reconciler activates the identities again, under the
		// new node lease, in a full pass.
		n.wantFullPass()
		return true
	}
	if err != nil {
		n.metrics.renewErrors.Inc()
		n.log.Error("renew node lease", "incarnation", held.ID, "error", err)
		if time.Since(n.renewedAt) >= n.cfg.LeaseTTL && !n.lapseFenced {
			// No renewal reached Postgres for a whole LeaseTTL: the
			// node lease may have run out there, and another member
			// may hold the identities by now. They stop rather than
			// count on the next renewal.
			n.lapseFenced = true
			n.fenceAll(held.ID)
		}
		return false
	}
	n.renewedAt = sent
	n.renewedNs.Store(sent.UnixNano())
	n.lapseFenced = false
	if renewed.Lost != held.Lost && !n.checkLeases(ctx) {
		// Check again next round.
		renewed.Lost = held.Lost
	}
	n.nodeLease.Store(&renewed)
	return true
}

// fenceAll tells every hosted identity whose lease lives under the node
// lease incarnation that it is fenced. It counts no fenced write: the
// refused renewal that found the node lease gone counted it once, and each
// identity that stops counts as a stale activation.
func (n *Node) fenceAll(incarnation int64) {
	for _, h := range n.host.Leases() {
		if l := h.Lease(); l.Node == incarnation {
			h.Fenced(l.Epoch)
		}
	}
}

// checkLeases checks the lease of every hosted identity and tells the ones
// that lost theirs; it reports whether the check reached the store.
func (n *Node) checkLeases(ctx context.Context) bool {
	holders := n.host.Leases()
	if len(holders) == 0 {
		return true
	}
	leases := make([]persistence.Lease, len(holders))
	for i, h := range holders {
		leases[i] = h.Lease()
	}
	valid, err := n.cfg.Store.CheckLeases(ctx, leases)
	if err != nil {
		n.metrics.renewErrors.Inc()
		n.log.Error("check leases", "identities", len(leases), "error", err)
		return false
	}
	for i, h := range holders {
		held := leases[i]
		if l, ok := valid[held.Identity]; ok && l.Owner == held.Owner && l.Epoch == held.Epoch {
			h.Renewed(l)
			continue
		}
		// The check stands in for the renewal of this identity's
		// lease, and the lease refused it.
		n.metrics.fencedWrites.Inc()
		h.Fenced(held.Epoch)
	}
	return true
}

// endNodeLease ends the node lease when the node stops, once every
// identity stopped: an identity lease a stop could not release is void at
// once, not only when the node lease would have run out.
func (n *Node) endNodeLease() {
	nl := n.NodeLease()
	if nl.ID == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.cfg.Store.EndNodeLease(ctx, nl); err != nil {
		n.log.Warn("end node lease", "incarnation", nl.ID, "error", err)
	}
}
