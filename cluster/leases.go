package cluster

// The node's lease renewer. Every identity the node hosts holds a fencing
// lease. One goroutine per node renews all of them every third of LeaseTTL
// with a few statements (persistence.Store.RenewLeases), not one round trip
// per identity, so a node can host tens of thousands of identities without
// its renewals falling behind their expiry. An identity whose lease was not
// renewed (it expired, was released, or another member took it over) is
// sent *fenced with that lease's epoch and stops itself as stale.

import (
	"context"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

// renewLoop renews every third of LeaseTTL; after a failed round it tries
// again after a tenth, so one slow round does not use up a lease's margin.
func (rt *Runtime) renewLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTimer(rt.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			next := rt.cfg.LeaseTTL / 3
			if !rt.renewLeases() {
				next = rt.cfg.LeaseTTL / 10
			}
			t.Reset(next)
		}
	}
}

// renewLeases renews the lease of every identity active on this node and
// reports whether the round reached the store.
func (rt *Runtime) renewLeases() bool {
	rt.mu.Lock()
	acts := make([]*activation, 0, len(rt.active))
	for _, a := range rt.active {
		acts = append(acts, a)
	}
	rt.mu.Unlock()
	if len(acts) == 0 {
		return true
	}
	leases := make([]persistence.Lease, len(acts))
	for i, a := range acts {
		leases[i] = a.currentLease()
	}
	ctx, cancel := context.WithTimeout(context.Background(), rt.cfg.LeaseTTL/3)
	defer cancel()
	renewed, err := rt.cfg.Store.RenewLeases(ctx, leases, rt.cfg.LeaseTTL)
	if err != nil {
		rt.metrics.renewErrors.Inc()
		rt.log.Error("renew leases", "identities", len(leases), "error", err)
		return false
	}
	for i, a := range acts {
		held := leases[i]
		if l, ok := renewed[held.Identity]; ok && l.Owner == held.Owner && l.Epoch == held.Epoch {
			a.lease.Store(&l)
			continue
		}
		// The renewal is a write the lease refused, like any other.
		rt.metrics.fencedWrites.Inc()
		rt.root.Send(a.self, &fenced{epoch: held.Epoch})
	}
	return true
}
