// Package actors is the actor runtime of a bridge node: one virtual actor
// (grain) of kind "bridge" per bridge identity in a protoactor cluster, its
// forward, reverse and canary children, the node's single multiplexed XMTP
// subscription (the ingress) and the durable forward pipeline from XMTP to
// the owner's HTTP endpoint and back.
//
// # Flow of one inbound message
//
//  1. The ingress receives the envelope on the node subscription and sends
//     it to the identity actor that registered its topic.
//  2. The identity actor opens it with the conversation's keys. A message
//     from the canary identity goes to the canary child, one from the API
//     identity to the reverse child. Any other sender, if the bridge's
//     allow-list and deny-list let it through, becomes a delivery row
//     (idempotent on the message id); only then does the topic's cursor move
//     past it. The delivery goes to the forward child.
//  3. The forward child calls the endpoint through the Deliverer, within the
//     bridge's concurrency limit and timeout. Success records the attempt
//     and puts the reply, sealed once at a fixed timestamp, into the outbox
//     in one transaction under the fencing lease; then the reply is
//     published. Failures retry on the webhook.RetryPolicy and end as dead
//     letters; a 410 sets the bridge endpoint_gone.
//  4. One scheduler per node (due.go) finds the work due later: retries,
//     replayed dead letters, unsent replies, broadcast copies, deliveries
//     the breaker releases, including those of an earlier activation or
//     node. It arms one timer for the retries this node schedules and runs
//     one query over the due work of the cluster every SweepInterval, and
//     wakes the forward child of each hosted bridge with work due, whose
//     sweep then loads that bridge's due deliveries and replies.
//
// # Cold identities
//
// An identity nobody messages costs no timer, goroutine or query: its
// children are spawned on first use (children.go), and its configuration,
// read once, is kept until Postgres announces a change of it on
// bridge_changed (events.go) on the node's one listening connection.
//
// # Activation
//
// An identity activates on the first request to its grain (Runtime.Activate,
// Runtime.Send, or the runtime's reconcile loop): it takes the fencing lease
// under the node's lease (cluster.Node.NodeLease), decrypts its key bundle,
// restores its conversations, publishes its contact bundle if none is on
// the network, registers its invite and conversation topics with the
// ingress, then reads its invite topic and every conversation topic from
// its cursor so that nothing published while it was down is lost. An activation that loses its lease stops.
//
// The runtime depends on small ports declared in ports.go: the store
// (persistence.Store), the XMTP transport (api.Client), the webhook
// deliverer (webhook.Deliverer) and the cluster (cluster.Node). Which
// member hosts an identity, its lease renewal and the drain of a node are
// package cluster's: the runtime builds the node's cluster.Node, reaches it
// through its Cluster port, and is the node's cluster.Host in return
// (host.go).
//
// # Imports
//
// actors sits in the middle row of the layout, beside cluster and http.
// It may import persistence, xmtp and cluster (the runtime builds its
// cluster member), never http, system or cmd; actors/egress, the policy
// of the webhook dialer, is imported by http's save-time check, and
// actors/actorpb by cluster. internal/layout checks these rules.
package actors
