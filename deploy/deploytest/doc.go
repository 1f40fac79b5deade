// Package deploytest holds the tests of deploy/: the Dockerfile (two
// stages, a static binary, a non-root user), the compose file, the nginx
// site (checked with `nginx -t`, then serving real requests to a running
// bridge node over TLS), the ACME script (certbot against Debian's pebble
// with real http-01 validation), the Kubernetes manifests, and that every
// variable the deployments set is one `bridge env` documents, with every
// variable a node requires set in each deployment.
//
// The package has no code of its own; everything is in its tests.
//
// # Imports
//
// deploy's test packages, like e2e, test the whole: their tests may import
// any folder of the module (system, to start a node in-process) except
// cmd, and nothing imports them. internal/layout checks these rules.
package deploytest
