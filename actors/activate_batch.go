package actors

// Batched round trips of activations.
//
// A node that starts with tens of thousands of identities activates many
// at once (cluster/placement.go), and each activation first takes its
// identity's lease (a statement and a commit) and then reads its bridge's
// state (five statements); one that publishes its contact records it (a
// statement). The activations' requests go through batchers instead:
// those that queue while a batch is in flight go as the next, the leases
// in one statement and one commit (persistence.Store.AcquireLeasesOn), the
// states in one round trip of four statements
// (persistence.Store.ActivationStates) and the contacts in one statement
// (persistence.Store.SetContactsPublished), each answered as it would be
// alone. A lone activation's requests go at once.

import (
	"context"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

// maxActivationBatch bounds the leases, or the states, of one batch.
const maxActivationBatch = 128

// leaseCall asks for the lease of one identity under a node lease.
type leaseCall struct {
	nl  persistence.NodeLease
	req persistence.LeaseRequest
}

// acquireLeases takes the leases of calls, in one statement for each node
// lease they name (the node's own, unless it changed meanwhile).
func acquireLeases(store Store) func([]leaseCall) []persistence.LeaseResult {
	return func(calls []leaseCall) []persistence.LeaseResult {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out := make([]persistence.LeaseResult, len(calls))
		byNode := map[int64][]int{}
		var order []int64
		for i, c := range calls {
			if _, ok := byNode[c.nl.ID]; !ok {
				order = append(order, c.nl.ID)
			}
			byNode[c.nl.ID] = append(byNode[c.nl.ID], i)
		}
		for _, node := range order {
			idx := byNode[node]
			reqs := make([]persistence.LeaseRequest, len(idx))
			for k, i := range idx {
				reqs[k] = calls[i].req
			}
			for k, r := range store.AcquireLeasesOn(ctx, calls[idx[0]].nl, reqs) {
				out[idx[k]] = r
			}
		}
		return out
	}
}

// readStates reads the activation states of bridges in one round trip.
func readStates(store Store) func([]string) []persistence.ActivationStateResult {
	return func(bridgeIDs []string) []persistence.ActivationStateResult {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return store.ActivationStates(ctx, bridgeIDs)
	}
}

// recordContacts records the contacts of many activations in one
// statement.
func recordContacts(store Store) func([]persistence.ContactPublished) []error {
	return func(ps []persistence.ContactPublished) []error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return store.SetContactsPublished(ctx, ps)
	}
}
