// Package smoke checks a running deployment from outside, the way a new
// user would meet it: the node answers its health and readiness probes, a
// throwaway account signs up, it creates a bridge whose forward target is
// the deployment's own /canary endpoint, an XMTP client messages that
// bridge and gets the reply the forward path produced, and everything the
// check created is deleted again.
//
// Run executes the steps in order, writes one line per step and stops at
// the first failure; cleanup always runs, and its own failure is reported
// without hiding an earlier one. `bridge smoke` is the command line front.
//
// # Imports
//
// smoke is a client of a deployment, in the middle row of the layout: it
// imports xmtp (and the standard library) and nothing of the node itself;
// cmd imports it for `bridge smoke`. Its tests may import system to smoke a
// node started in-process. internal/layout checks these rules.
package smoke
