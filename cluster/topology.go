package cluster

// The node's view of the topology: the members and the rendezvous hash
// over them that disthash places identities with, and whether the last
// change is fully placed.

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
)

// topology is the node's view of the cluster: the members and the
// rendezvous hash over them that disthash places identities with.
type topology struct {
	// kind is the cluster kind of the identity grains.
	kind      string
	mu        sync.Mutex
	members   []*cluster.Member
	rdv       *cluster.Rendezvous
	changedAt time.Time
	// pending is true from a change until every identity this node owns
	// is active again.
	pending bool
}

// update takes a new topology and reports whether its member set changed.
func (t *topology) update(members []*cluster.Member, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sameMembers(t.members, members) {
		return false
	}
	rdv := cluster.NewRendezvous()
	rdv.UpdateMembers(members)
	t.members = append([]*cluster.Member(nil), members...)
	t.rdv = rdv
	t.changedAt = now
	t.pending = true
	return true
}

func sameMembers(a, b []*cluster.Member) bool {
	if len(a) != len(b) {
		return false
	}
	ids := make(map[string]bool, len(a))
	for _, m := range a {
		ids[m.Id] = true
	}
	for _, m := range b {
		if !ids[m.Id] {
			return false
		}
	}
	return true
}

// owner returns the address of the member disthash places bridgeID on, or
// "" before the first topology.
func (t *topology) owner(bridgeID string) string {
	t.mu.Lock()
	rdv := t.rdv
	t.mu.Unlock()
	if rdv == nil {
		return ""
	}
	return rdv.GetByClusterIdentity(&cluster.ClusterIdentity{Identity: bridgeID, Kind: t.kind})
}

func (t *topology) snapshot() []*cluster.Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*cluster.Member(nil), t.members...)
}

func (t *topology) size() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return float64(len(t.members))
}

// lag is how long the current change has waited for placement to
// complete; zero when it is complete.
func (t *topology) lag(now time.Time) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.pending {
		return 0
	}
	return now.Sub(t.changedAt).Seconds()
}

// placed marks the placement complete, if the topology did not change
// since start, and returns how long the change took to place.
func (t *topology) placed(start, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.pending || t.changedAt.After(start) {
		return 0, false
	}
	t.pending = false
	return now.Sub(t.changedAt), true
}
