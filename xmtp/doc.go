// Package xmtp holds the bridge's own implementation of XMTP V2, in its
// subpackages; this package has no code of its own:
//
//   - xmtp/keys, xmtp/conversation and xmtp/content: identity key bundles
//     and contact topics, sealed invitations and conversation messages,
//     and the encoded content types;
//   - xmtp/api: the message API v1 client (publish, query, the node's one
//     multiplexed subscription);
//   - xmtp/client: a Go XMTP client on top of it (the system identities,
//     the canary, tests);
//   - xmtp/node and xmtp/node/nodetest: the local XMTP node, storing
//     envelopes in Postgres, and its test starter;
//   - xmtp/interop: the interoperability tests against xmtp-js.
//
// # Imports
//
// xmtp is a bottom row of the layout, beside persistence: it imports
// neither actors nor cluster (nor http, system or cmd). The local node
// imports persistence/migration for its schema, and the tests may use
// persistence/pgtest. The actors declare the transport they need
// (actors.Transport); xmtp/api implements it. internal/layout checks these
// rules.
package xmtp
