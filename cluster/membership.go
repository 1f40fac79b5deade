package cluster

// Membership: the protoactor cluster provider chosen by configuration (the
// etcd check, the Kubernetes provider, the automanaged provider's health
// endpoint) and the node actor every member runs.
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
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	"github.com/labstack/echo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmtpbridge/bridge/actors/actorpb"
)

// NodeActorName is the name of the actor every member runs to answer
// NodeInfoRequest and DrainRequest.
const NodeActorName = "bridge-node"

// newProvider builds the configured cluster provider. The automanaged
// provider's health listener is bound here and handed to its server, so the
// port it advertises is the port it holds.
func (n *Node) newProvider() (cluster.ClusterProvider, error) {
	cfg := n.cfg
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
		return automanaged.NewWithTesting(2*time.Second, port, n.healthServer(health, port), peers...), nil
	}
}

// etcdReachable checks that etcd answers before the member starts: the etcd
// provider otherwise retries forever in the background and the node would
// only show a member that never joins.
func (n *Node) etcdReachable(ctx context.Context) error {
	if n.cfg.Provider != ProviderEtcd {
		return nil
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: n.cfg.EtcdEndpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("etcd %s: %w", strings.Join(n.cfg.EtcdEndpoints, ","), err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := etcdStatus(sctx, c, n.cfg.EtcdEndpoints); err != nil {
		c.Close()
		return err
	}
	// The client stays open for readiness checks.
	n.etcd = c
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
func (n *Node) MembershipReady(ctx context.Context) error {
	if n.etcd == nil || n.Draining() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return etcdStatus(ctx, n.etcd, n.cfg.EtcdEndpoints)
}

// nodeActor is the actor every member runs under NodeActorName.
//
// Accepts: *actorpb.NodeInfoRequest (answers who this member is),
// *actorpb.DrainRequest (drains the node on a goroutine and answers when
// done, so the actor stays responsive).
type nodeActor struct{ n *Node }

func (a *nodeActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actorpb.NodeInfoRequest:
		ctx.Respond(a.n.nodeInfo())
	case *actorpb.DrainRequest:
		sender := ctx.Sender()
		n := a.n
		go func() {
			// The answer goes out before the node leaves the cluster,
			// which closes its remote connections; the caller then
			// waits until the member is gone from its topology.
			count, started := n.beginDrain(context.Background())
			if sender != nil {
				n.root.Send(sender, &actorpb.DrainResponse{NodeId: n.cfg.NodeID, Identities: int32(count)})
			}
			if started {
				time.Sleep(drainAnswerGrace)
				if err := n.finishDrain(); err != nil {
					n.log.Warn("leave cluster after drain", "error", err)
				}
			}
		}()
	}
}

func (n *Node) nodeInfo() *actorpb.NodeInfoResponse {
	hosted := len(n.host.Hosted())
	n.mu.Lock()
	defer n.mu.Unlock()
	return &actorpb.NodeInfoResponse{NodeId: n.cfg.NodeID, MemberId: n.system.ID, Hosted: int32(hosted), Draining: n.draining}
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
func (n *Node) Members(ctx context.Context) []Member {
	if n.topo == nil {
		return nil
	}
	members := n.topo.snapshot()
	out := make([]Member, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i] = Member{ID: m.Id, Address: m.Address(), Self: m.Address() == n.system.Address()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if info := n.askNode(ctx, m.Address()); info != nil {
				out[i].Node, out[i].Hosted, out[i].Draining = info.NodeId, int(info.Hosted), info.Draining
			}
		}()
	}
	wg.Wait()
	return out
}

// askNode asks the node actor at address who it is; nil when it does not
// answer within two seconds.
func (n *Node) askNode(ctx context.Context, address string) *actorpb.NodeInfoResponse {
	timeout := 2 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if address == n.system.Address() {
		return n.nodeInfo()
	}
	res, err := n.root.RequestFuture(actor.NewPID(address, NodeActorName), &actorpb.NodeInfoRequest{}, timeout).Result()
	if err != nil {
		return nil
	}
	info, _ := res.(*actorpb.NodeInfoResponse)
	return info
}

// healthServer is the automanaged provider's health endpoint, the one it
// would build itself, without the banner it prints on standard output.
func (n *Node) healthServer(ln net.Listener, providerPort int) *echo.Echo {
	e := echo.New()
	e.Listener = ln
	e.HideBanner = true
	e.HidePort = true
	e.GET("/_health", func(c echo.Context) error {
		host, port, err := n.system.GetHostPort()
		if err != nil {
			return c.NoContent(http.StatusServiceUnavailable)
		}
		return c.JSON(http.StatusOK, automanaged.NewNode(n.cfg.ClusterName, n.system.ID, host, port, providerPort, []string{n.cfg.Kind}))
	})
	return e
}
