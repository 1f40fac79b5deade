package cluster

// Membership: the protoactor cluster provider chosen by configuration, the
// node actor every member runs, and the node's view of the topology.
//
// Membership itself is protoactor's (automanaged, etcd or Kubernetes);
// identity lookup is its disthash (rendezvous hashing over the members).
// What this file adds is what those lack: a node actor that answers who a
// member is (its node id) and drains it on request.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmtpbridge/bridge/actors/actorpb"
)

// NodeActorName is the name of the actor every member runs to answer
// NodeInfoRequest and DrainRequest.
const NodeActorName = "bridge-node"

// newProvider builds the configured cluster provider. The automanaged
// provider's health listener is bound here and handed to its server, so the
// port it advertises is the port it holds.
func (rt *Runtime) newProvider() (cluster.ClusterProvider, error) {
	cfg := rt.cfg
	switch cfg.Provider {
	case ProviderEtcd:
		p, err := etcd.NewWithConfig(cfg.EtcdPrefix, clientv3.Config{
			Endpoints:   cfg.EtcdEndpoints,
			DialTimeout: 5 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("etcd provider for %s: %w", strings.Join(cfg.EtcdEndpoints, ","), err)
		}
		return p, nil
	case ProviderKubernetes:
		p, err := k8s.New()
		if err != nil {
			return nil, fmt.Errorf("kubernetes provider (it must run in a pod with a service account): %w", err)
		}
		return p, nil
	default:
		health, err := net.Listen("tcp", net.JoinHostPort(cfg.RemoteHost, strconv.Itoa(cfg.ProviderPort)))
		if err != nil {
			return nil, fmt.Errorf("listen for cluster health checks: %w", err)
		}
		port := health.Addr().(*net.TCPAddr).Port
		peers := cfg.Peers
		if len(peers) == 0 {
			host := cfg.RemoteHost
			if cfg.AdvertisedHost != "" {
				host = cfg.AdvertisedHost
			}
			peers = []string{net.JoinHostPort(host, strconv.Itoa(port))}
		}
		return automanaged.NewWithTesting(2*time.Second, port, rt.healthServer(health, port), peers...), nil
	}
}

// etcdReachable checks that etcd answers before the member starts: the etcd
// provider otherwise retries forever in the background and the node would
// only show a member that never joins.
func (rt *Runtime) etcdReachable(ctx context.Context) error {
	if rt.cfg.Provider != ProviderEtcd {
		return nil
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: rt.cfg.EtcdEndpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("etcd %s: %w", strings.Join(rt.cfg.EtcdEndpoints, ","), err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := etcdStatus(sctx, c, rt.cfg.EtcdEndpoints); err != nil {
		c.Close()
		return err
	}
	// The client stays open for readiness checks.
	rt.etcd = c
	return nil
}

// etcdStatus asks each endpoint for its status until one answers.
func etcdStatus(ctx context.Context, c *clientv3.Client, endpoints []string) error {
	var errs []error
	for _, ep := range endpoints {
		_, err := c.Status(ctx, ep)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("etcd %s is not reachable: %w", strings.Join(endpoints, ","), errors.Join(errs...))
}

// MembershipReady reports whether the membership engine answers: with the
// etcd provider, whether an etcd endpoint answers within two seconds. A
// node that lost etcd keeps its identities while its leases hold, but
// cannot see members come and go, so it is not ready. The other providers
// have nothing to check.
func (rt *Runtime) MembershipReady(ctx context.Context) error {
	if rt.etcd == nil || rt.Draining() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return etcdStatus(ctx, rt.etcd, rt.cfg.EtcdEndpoints)
}

// topology is the node's view of the cluster: the members and the
// rendezvous hash over them that disthash places identities with.
type topology struct {
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
	return rdv.GetByClusterIdentity(&cluster.ClusterIdentity{Identity: bridgeID, Kind: Kind})
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

// nodeActor is the actor every member runs under NodeActorName.
//
// Accepts: *actorpb.NodeInfoRequest (answers who this member is),
// *actorpb.DrainRequest (drains the node on a goroutine and answers when
// done, so the actor stays responsive).
type nodeActor struct{ rt *Runtime }

func (n *nodeActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actorpb.NodeInfoRequest:
		ctx.Respond(n.rt.nodeInfo())
	case *actorpb.DrainRequest:
		sender := ctx.Sender()
		rt := n.rt
		go func() {
			// The answer goes out before the node leaves the cluster,
			// which closes its remote connections; the caller then
			// waits until the member is gone from its topology.
			count, started := rt.beginDrain(context.Background())
			if sender != nil {
				rt.root.Send(sender, &actorpb.DrainResponse{NodeId: rt.cfg.NodeID, Identities: int32(count)})
			}
			if started {
				time.Sleep(drainAnswerGrace)
				if err := rt.finishDrain(); err != nil {
					rt.log.Warn("leave cluster after drain", "error", err)
				}
			}
		}()
	}
}

func (rt *Runtime) nodeInfo() *actorpb.NodeInfoResponse {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return &actorpb.NodeInfoResponse{NodeId: rt.cfg.NodeID, MemberId: rt.system.ID, Hosted: int32(len(rt.active)), Draining: rt.draining}
}

// Member is a member of the cluster as this node sees it.
type Member struct {
	// ID is the member id protoactor gives the process; a restarted node
	// comes back with a new one.
	ID string
	// Node is the member's node id (BRIDGE_NODE_ID), empty when the member
	// did not answer.
	Node string
	// Address is the member's cluster host:port.
	Address string
	// Self marks this node.
	Self bool
	// Hosted is how many identities the member hosts.
	Hosted int
	// Draining marks a member that is moving its identities away.
	Draining bool
}

// Members returns the members of the cluster as this node sees them, each
// asked for its node id through the cluster.
func (rt *Runtime) Members(ctx context.Context) []Member {
	if rt.topo == nil {
		return nil
	}
	members := rt.topo.snapshot()
	out := make([]Member, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i] = Member{ID: m.Id, Address: m.Address(), Self: m.Address() == rt.system.Address()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if info := rt.askNode(ctx, m.Address()); info != nil {
				out[i].Node, out[i].Hosted, out[i].Draining = info.NodeId, int(info.Hosted), info.Draining
			}
		}()
	}
	wg.Wait()
	return out
}

// askNode asks the node actor at address who it is; nil when it does not
// answer within two seconds.
func (rt *Runtime) askNode(ctx context.Context, address string) *actorpb.NodeInfoResponse {
	timeout := 2 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if address == rt.system.Address() {
		return rt.nodeInfo()
	}
	res, err := rt.root.RequestFuture(actor.NewPID(address, NodeActorName), &actorpb.NodeInfoRequest{}, timeout).Result()
	if err != nil {
		return nil
	}
	info, _ := res.(*actorpb.NodeInfoResponse)
	return info
}

// DrainNode drains the member whose node id is nodeID, through the cluster
// when it is another member, and returns how many identities it stopped.
func (rt *Runtime) DrainNode(ctx context.Context, nodeID string) (int, error) {
	if nodeID == rt.cfg.NodeID {
		return rt.Drain(ctx)
	}
	if rt.topo == nil {
		return 0, fmt.Errorf("drain %s: %w", nodeID, ErrStopped)
	}
	for _, m := range rt.topo.snapshot() {
		info := rt.askNode(ctx, m.Address())
		if info == nil || info.NodeId != nodeID {
			continue
		}
		timeout := rt.cfg.DrainTimeout + rt.cfg.ActivationTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		res, err := rt.root.RequestFuture(actor.NewPID(m.Address(), NodeActorName), &actorpb.DrainRequest{}, timeout).Result()
		if err != nil {
			return 0, fmt.Errorf("drain %s: %w", nodeID, err)
		}
		r, ok := res.(*actorpb.DrainResponse)
		if !ok {
			return 0, fmt.Errorf("drain %s: unexpected answer %T", nodeID, res)
		}
		if err := errorFromWire(r.Error); err != nil {
			return int(r.Identities), fmt.Errorf("drain %s: %w", nodeID, err)
		}
		return int(r.Identities), rt.waitMemberGone(ctx, m.Address())
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
func (rt *Runtime) Drain(ctx context.Context) (int, error) {
	n, started := rt.beginDrain(ctx)
	if !started {
		rt.waitDrained(ctx)
		return 0, nil
	}
	return n, rt.finishDrain()
}

// beginDrain is the first half of Drain, up to the identities stopped. It
// reports false when the node is already draining or stopping.
func (rt *Runtime) beginDrain(ctx context.Context) (int, bool) {
	rt.mu.Lock()
	if rt.draining || rt.stopping {
		rt.mu.Unlock()
		return 0, false
	}
	rt.draining = true
	rt.mu.Unlock()
	rt.metrics.draining.Set(1)
	rt.log.Info("draining node: moving identities to the other members")
	rt.haltReconciler()
	return rt.stopAll(ctx), true
}

// finishDrain is the second half of Drain: the node leaves the cluster.
func (rt *Runtime) finishDrain() error {
	defer close(rt.drained)
	err := rt.leaveCluster()
	rt.log.Info("node drained and left the cluster")
	return err
}

func (rt *Runtime) waitDrained(ctx context.Context) {
	rt.mu.Lock()
	stopping := rt.stopping
	rt.mu.Unlock()
	if stopping {
		return
	}
	select {
	case <-rt.drained:
	case <-ctx.Done():
	}
}

// Draining reports whether the node drained (or is draining) its
// identities away; such a node is not ready.
func (rt *Runtime) Draining() bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.draining
}

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

// leaveCluster shuts the cluster member down once. protoactor panics on
// some half-started states; that becomes an error.
func (rt *Runtime) leaveCluster() (err error) {
	rt.mu.Lock()
	if rt.left || rt.cluster == nil {
		rt.mu.Unlock()
		return nil
	}
	rt.left = true
	rt.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("leave cluster: %v", p)
		}
	}()
	rt.cluster.Shutdown(true)
	return nil
}

// drainAnswerGrace is how long a drained node waits after sending its
// answer before it leaves the cluster and closes its connections.
const drainAnswerGrace = 300 * time.Millisecond

// waitMemberGone waits until the member at address left this node's view
// of the topology, so the caller of a drain sees the identities move.
func (rt *Runtime) waitMemberGone(ctx context.Context, address string) error {
	for {
		gone := true
		for _, m := range rt.topo.snapshot() {
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

// errNoOwner means the cluster has no member for the identity yet.
var errNoOwner = errors.New("no cluster member can host the identity yet")

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
func (rt *Runtime) etcdRepairLoop() {
	prefix := rt.cfg.EtcdPrefix + "/" + rt.cfg.ClusterName + "/"
	var last etcdGaps
	t := time.NewTicker(etcdRepairInterval)
	defer t.Stop()
	for range t.C {
		if rt.isStopping() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), etcdRepairInterval)
		last = rt.etcdRepairRound(ctx, prefix, last)
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
func (rt *Runtime) etcdRepairRound(ctx context.Context, prefix string, before etcdGaps) etcdGaps {
	gaps := etcdGaps{missing: map[string]bool{}, stale: map[string]bool{}}
	resp, err := rt.etcd.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return gaps // readiness reports etcd; nothing to compare
	}
	view := map[string]*cluster.Member{}
	for _, m := range rt.topo.snapshot() {
		view[m.Id] = m
	}
	registered := map[string]bool{}
	for _, kv := range resp.Kvs {
		n, err := etcd.NewNodeFromBytes(kv.Value)
		if err != nil || !n.Alive {
			continue
		}
		registered[n.ID] = true
		// A blocked member left this view for good (protoactor never
		// takes it back); announcing it again would not help.
		if view[n.ID] != nil || rt.cluster.Remote.BlockList().IsBlocked(n.ID) {
			continue
		}
		gaps.missing[n.ID] = true
		if !before.missing[n.ID] {
			continue
		}
		_, err = rt.etcd.Put(ctx, string(kv.Key), string(kv.Value), clientv3.WithLease(clientv3.LeaseID(kv.Lease)))
		rt.metrics.membershipRepairs.Inc()
		rt.log.Warn("member registered in etcd is missing from the cluster view; announced it again",
			"member", n.ID, "address", net.JoinHostPort(n.Host, strconv.Itoa(n.Port)), "error", err)
	}
	for id, m := range view {
		if registered[id] || m.Address() == rt.system.Address() {
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
			if _, err = rt.etcd.Put(ctx, key, string(raw)); err == nil {
				_, err = rt.etcd.Delete(ctx, key)
			}
		}
		rt.metrics.membershipRepairs.Inc()
		rt.log.Warn("member gone from etcd is still in the cluster view; announced its departure",
			"member", id, "address", m.Address(), "error", err)
	}
	return gaps
}
