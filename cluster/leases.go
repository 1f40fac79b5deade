package cluster

// The node's lease renewer. Every identity the node hosts holds a fencing
// lease. One goroutine per node renews all of them every third of LeaseTTL
// with a few statements (persistence.Store.RenewLeases), not one round trip
// per identity, so a node can host tens of thousands of identities without
// its renewals falling behind their expiry. An identity whose lease was not
// renewed (it expired, was released, or another member took it over) is
// told so through its LeaseHolder, with that lease's epoch, and stops itself
// as stale.

import (
	"context"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

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

// renewLeases renews the lease of every identity active on this node and
// reports whether the round reached the store.
func (n *Node) renewLeases() bool {
	holders := n.host.Leases()
	if len(holders) == 0 {
		return true
	}
	leases := make([]persistence.Lease, len(holders))
	for i, h := range holders {
		leases[i] = h.Lease()
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL/3)
	defer cancel()
	renewed, err := n.cfg.Store.RenewLeases(ctx, leases, n.cfg.LeaseTTL)
	if err != nil {
		n.metrics.renewErrors.Inc()
		n.log.Error("renew leases", "identities", len(leases), "error", err)
		return false
	}
	for i, h := range holders {
		held := leases[i]
		if l, ok := renewed[held.Identity]; ok && l.Owner == held.Owner && l.Epoch == held.Epoch {
			h.Renewed(l)
			continue
		}
		// The renewal is a write the lease refused, like any other.
		n.metrics.fencedWrites.Inc()
		h.Fenced(held.Epoch)
	}
	return true
}
