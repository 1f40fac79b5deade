// Package e2e holds the end-to-end tests of the bridge: they build the real
// bridge binary once per test run, start it as a separate process on free
// loopback ports with a database of its own, and drive it the way its users
// do: REST over HTTP, XMTP from xmtp-js (the Node scripts under
// xmtp/interop/js) and from Go clients, and webhook targets served by
// httptest that check every Standard Webhooks signature. They also kill the
// process with SIGKILL and stop it with SIGTERM in the middle of a burst,
// and check that nothing was lost.
//
// The package has no code of its own besides this comment.
//
// # Imports
//
// e2e, like deploy's test packages, tests the whole: its tests may import
// any folder of the module (system, to start a node in-process) except
// cmd, whose binary they build and run instead, and nothing imports e2e.
// internal/layout checks these rules.
package e2e
