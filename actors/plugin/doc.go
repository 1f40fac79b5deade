// Package plugin runs customers' Extism Wasm plug-ins at a bridge's
// extension points: on_message (before a message is forwarded),
// on_response (after the endpoint answered) and on_send (before the
// reverse proxy sends). docs/plugins.md documents the JSON each point
// gets and answers.
//
// A Host holds, in memory, the bindings of every bridge that has one; it
// loads them once and then learns of changes as events (BindingChanged,
// fed by Postgres LISTEN/NOTIFY), so a call never queries Postgres. Each
// binding has a pool of instances of one plug-in version, compiled through
// wazero's on-disk compilation cache and kept resident for KeepResident
// after a call. A binding re-validates its plug-in's ETag (its SHA-256)
// after RefetchAfter, off the call path; a new version replaces the pool
// while calls on the old one finish.
//
// Every call is sandboxed: a memory limit, a wall-time limit enforced by
// wazero's context cancellation, an output limit, WASI without any
// filesystem or socket, and Extism's HTTP host function only for the
// operator's allowed hosts.
package plugin
