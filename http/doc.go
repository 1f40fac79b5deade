// Package http is the HTTP front of the bridge runtime, built on Fiber: the
// versioned REST API (/v1), the relaycc-compatible endpoints, health and
// readiness probes, Prometheus metrics and the OpenAPI document.
//
// Callers import it under another name, for example bridgehttp.
//
// # Imports
//
// http sits in the middle row of the layout, beside cluster and actors: it
// may import persistence, xmtp, actors/egress (the save-time check of
// forward URLs uses the policy the webhook dialer enforces) and
// actors/webhook (the headers a forward may not set), and never system, cmd or
// cluster. What it needs of the runtime (sending, instance status, the
// cluster admin calls, bridge events) it declares as interfaces that
// system implements. internal/layout checks these rules.
package http
