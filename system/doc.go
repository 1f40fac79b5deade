// Package system assembles a bridge node from its configuration: it opens
// and migrates Postgres, starts the local XMTP node in dev mode or checks
// the remote one, serves the HTTP API with the node's metrics registry,
// and stops everything in reverse order on shutdown.
//
// Start order: metrics registry, the API's listener (a busy port fails at
// once), Postgres (migrate, then open the store, and start the node's
// retention sweep), XMTP node (local in-process, or reachability of
// BRIDGE_XMTP_NODE), the actor runtime (the system identities, the node's
// cluster member, which hosts the bridge identities placement gives it,
// and the canary prober), and the HTTP API last, so that nothing
// is served before the parts behind it work. Stop runs the same list
// backwards: the API stops taking requests, the prober and the runtime stop
// (intake first, then running deliveries finish or stay pending in the
// store), then the XMTP node, the retention sweep and the store.
//
// # Imports
//
// system is the wiring: it may import every row below it (http, cluster,
// actors, persistence, xmtp) and implements the interfaces http declares
// with the actor runtime. Only cmd imports system (and the tests of
// deploy, e2e and smoke, which start a node in-process). internal/layout
// checks these rules.
package system
