package cluster

// The etcd repair: protoactor's etcd provider can miss a member's
// registration or departure; a loop on every node compares the provider's
// view with etcd and announces what it missed.

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdRepairInterval is how often the etcd repair loop compares the
// provider's view of the members with etcd.
const etcdRepairInterval = 2 * time.Second

// etcdRepairLoop mends two gaps in protoactor's etcd provider. It lists
// the members, then starts its watch on a goroutine from "now", and it
// starts the watch again the same way whenever the stream breaks; a
// registration or a departure in between is never seen by this node
// (nodes that start together hit the first, an etcd restart the second).
// Every etcdRepairInterval the loop lists the members in etcd itself:
//   - a member that etcd has and this node's view has lacked for two
//     rounds in a row is announced again: its key is written back
//     unchanged, under its own lease, which every watcher receives as an
//     update (if the member dies, its lease still takes the key along);
//   - a member this node's view has kept for two rounds after etcd lost
//     its key is announced gone: its key is written and deleted at once,
//     which every watcher receives as the departure it missed.
func (n *Node) etcdRepairLoop() {
	prefix := n.cfg.EtcdPrefix + "/" + n.cfg.ClusterName + "/"
	var last etcdGaps
	t := time.NewTicker(etcdRepairInterval)
	defer t.Stop()
	for range t.C {
		if n.Leaving() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), etcdRepairInterval)
		last = n.etcdRepairRound(ctx, prefix, last)
		cancel()
	}
}

// etcdGaps are the member ids one repair round found missing from this
// node's view (in etcd, not in the view) and stale in it (in the view,
// not in etcd).
type etcdGaps struct {
	missing, stale map[string]bool
}

// etcdRepairRound runs one round of etcdRepairLoop, acting on the gaps
// that the previous round found too, and returns this round's gaps.
func (n *Node) etcdRepairRound(ctx context.Context, prefix string, before etcdGaps) etcdGaps {
	gaps := etcdGaps{missing: map[string]bool{}, stale: map[string]bool{}}
	resp, err := n.etcd.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return gaps // readiness reports etcd; nothing to compare
	}
	view := map[string]*cluster.Member{}
	for _, m := range n.topo.snapshot() {
		view[m.Id] = m
	}
	registered := map[string]bool{}
	for _, kv := range resp.Kvs {
		member, err := etcd.NewNodeFromBytes(kv.Value)
		if err != nil || !member.Alive {
			continue
		}
		registered[member.ID] = true
		// A blocked member left this view for good (protoactor never
		// takes it back); announcing it again would not help.
		if view[member.ID] != nil || n.cluster.Remote.BlockList().IsBlocked(member.ID) {
			continue
		}
		gaps.missing[member.ID] = true
		if !before.missing[member.ID] {
			continue
		}
		_, err = n.etcd.Put(ctx, string(kv.Key), string(kv.Value), clientv3.WithLease(clientv3.LeaseID(kv.Lease)))
		n.metrics.membershipRepairs.Inc()
		n.log.Warn("member registered in etcd is missing from the cluster view; announced it again",
			"member", member.ID, "address", net.JoinHostPort(member.Host, strconv.Itoa(member.Port)), "error", err)
	}
	for id, m := range view {
		if registered[id] || m.Address() == n.system.Address() {
			continue
		}
		gaps.stale[id] = true
		if !before.stale[id] {
			continue
		}
		gone := etcd.NewNode(id, m.Host, int(m.Port), m.Kinds)
		raw, err := gone.Serialize()
		if err == nil {
			key := prefix + id
			if _, err = n.etcd.Put(ctx, key, string(raw)); err == nil {
				_, err = n.etcd.Delete(ctx, key)
			}
		}
		n.metrics.membershipRepairs.Inc()
		n.log.Warn("member gone from etcd is still in the cluster view; announced its departure",
			"member", id, "address", m.Address(), "error", err)
	}
	return gaps
}
