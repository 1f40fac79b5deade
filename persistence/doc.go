// Package persistence is the Postgres store of the bridge runtime: the
// embedded schema and its migrations, the sealing of secrets at rest, and
// the queries the HTTP API and the actors run.
//
// # Imports
//
// persistence is a bottom row of the layout: it imports neither actors nor
// cluster (nor http, system or cmd), only the standard library, pgx and
// its own subpackages; the ports it fills (actors.Store, cluster.Store) are
// declared by the code that uses them. Its test helper persistence/pgtest
// may be imported by any package's tests. internal/layout checks these
// rules.
package persistence
