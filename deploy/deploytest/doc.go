// Package deploytest holds the tests of deploy/: the Dockerfile (two
// stages, a static binary, a non-root user), the compose file, the nginx
// site (checked with `nginx -t`, then serving real requests to a running
// bridge node over TLS), the ACME script (certbot against Debian's pebble
// with real http-01 validation), the Kubernetes manifests, and that every
// variable the deployments set is one `bridge env` documents, with every
// variable a node requires set in each deployment.
//
// The package has no code of its own; everything is in its tests.
package deploytest
