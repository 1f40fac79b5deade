package http

// The admin view of the cluster: its members, where each identity is
// active, and draining a node.

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// ClusterMember is a member of the cluster as the answering node sees it.
type ClusterMember struct {
	// ID is the member id of the node's process; a restarted node comes
	// back with a new one.
	ID string
	// Node is the member's node id; empty when it did not answer.
	Node string
	// Address is the member's cluster host:port.
	Address string
	// Self marks the answering node.
	Self bool
	// Hosted is how many identities the member hosts.
	Hosted int
	// Draining marks a member that is moving its identities away.
	Draining bool
}

// Cluster is what the admin endpoints need of the cluster.
type Cluster interface {
	// Provider names the membership engine.
	Provider() string
	// Members lists the members this node sees.
	Members(ctx context.Context) []ClusterMember
	// DrainNode moves the identities of the node nodeID to the other
	// members and makes it leave the cluster; it returns how many it
	// moved. An unknown node is ErrUnknownNode.
	DrainNode(ctx context.Context, nodeID string) (int, error)
}

// ErrUnknownNode is returned by Cluster.DrainNode for a node id that no
// member has.
var ErrUnknownNode = errors.New("unknown node")

// Errors a Sender wraps so the API answers with the right status.
var (
	// ErrRecipientNotOnNetwork: the recipient has no XMTP identity (422).
	ErrRecipientNotOnNetwork = errors.New("the recipient is not on the XMTP network")
	// ErrSendRefused: the bridge's on_send plug-in refused the content
	// (422).
	ErrSendRefused = errors.New("the bridge's on_send plug-in refused the content")
	// ErrSendUnavailable: the identity could not take the message before
	// the deadline, for example while it moves between nodes (503).
	ErrSendUnavailable = errors.New("the bridge identity is not available now")
	// ErrSendOutcomeUnknown: no answer in time; the message may have been
	// sent (504).
	ErrSendOutcomeUnknown = errors.New("no answer in time; the message may have been sent")
)

// drainTimeout bounds a drain request.
const drainTimeout = 2 * time.Minute

func (s *Server) clusterOrError() (Cluster, error) {
	if s.opts.Cluster == nil {
		return nil, errorf(fiber.StatusServiceUnavailable, CodeUnavailable, "this node runs no actor runtime")
	}
	return s.opts.Cluster, nil
}

// adminClusterMembers lists the members of the cluster.
func (s *Server) adminClusterMembers(c *fiber.Ctx) error {
	cl, err := s.clusterOrError()
	if err != nil {
		return err
	}
	members := cl.Members(c.UserContext())
	out := make([]fiber.Map, 0, len(members))
	for _, m := range members {
		out = append(out, fiber.Map{"id": m.ID, "node": m.Node, "address": m.Address, "self": m.Self,
			"hosted": m.Hosted, "draining": m.Draining})
	}
	return c.JSON(fiber.Map{"ok": true, "provider": cl.Provider(), "self": s.opts.NodeID, "members": out})
}

// adminClusterPlacement lists every identity with a live lease: the node
// hosting it and the lease's epoch.
func (s *Server) adminClusterPlacement(c *fiber.Ctx) error {
	ps, err := s.opts.Store.LivePlacements(c.UserContext())
	if err != nil {
		return storeError(err, "placement")
	}
	node := c.Query("node")
	out := make([]fiber.Map, 0, len(ps))
	for _, p := range ps {
		n := LeaseNode(p.Lease.Owner)
		if node != "" && n != node {
			continue
		}
		out = append(out, fiber.Map{"bridgeId": p.BridgeID, "address": p.Address, "node": n, "owner": p.Lease.Owner,
			"epoch": p.Lease.Epoch, "expiresAt": p.Lease.ExpiresAt.UTC().Format(time.RFC3339Nano)})
	}
	return c.JSON(fiber.Map{"ok": true, "identities": out})
}

// adminDrainNode drains a node, through whichever node received the call.
func (s *Server) adminDrainNode(c *fiber.Ctx) error {
	cl, err := s.clusterOrError()
	if err != nil {
		return err
	}
	id := c.Params("id")
	if id == "" || len(id) > 63 {
		return badRequest("node id must be 1 to 63 characters")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), drainTimeout)
	defer cancel()
	n, err := cl.DrainNode(ctx, id)
	if errors.Is(err, ErrUnknownNode) {
		return errorf(fiber.StatusNotFound, CodeNotFound, "no cluster member has node id %q", id)
	}
	if err != nil {
		return &Error{Status: fiber.StatusBadGateway, Code: CodeUnavailable, Message: "the node could not be drained", Err: err}
	}
	return c.JSON(fiber.Map{"ok": true, "node": id, "status": "drained", "identities": n})
}

// LeaseNode returns the node id in a lease owner, which the runtime writes
// as "<node id>.<member id>/<activation>".
func LeaseNode(owner string) string {
	member, _, _ := strings.Cut(owner, "/")
	if i := strings.LastIndexByte(member, '.'); i > 0 {
		return member[:i]
	}
	return member
}
