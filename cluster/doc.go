// Package cluster is how the nodes of a bridge deployment form one cluster
// and who hosts which identity:
//
//   - membership: the protoactor provider the configuration names (etcd,
//     automanaged with its health endpoint, or Kubernetes), the etcd check
//     at start and for readiness, and the etcd repair, which announces the
//     members and departures protoactor's etcd provider missed;
//   - the node's view of the topology and the placement reconciler, which
//     keeps every enabled bridge active on the member disthash names;
//   - fencing: the node's lease, under which every hosted identity's lease
//     lives, its renewer (one statement per renewal, however many
//     identities), and the takeover and fenced-write counts;
//   - drain, of this node or of another member through its node actor;
//   - the cluster metrics (bridge_cluster_*).
//
// A Node does all of this for one process. It places the identities of a
// Host, the node's actor runtime: activating, stopping and listing them,
// and handing their leases to the renewer, is the runtime's work, which
// the Node asks for through that interface. The runtime in turn talks to
// the Node through a port of its own, actors.Cluster.
//
// # Imports
//
// cluster sits in the middle row of the layout, beside actors and http. It
// may import persistence (the bridges to place, the node lease) and,
// of actors, only actors/actorpb, the wire messages of its node actor.
// actors imports cluster, never the reverse, so the runtime can build its
// Node; cluster never imports http, and only system and actors import
// cluster. internal/layout checks these rules.
package cluster
