// Package interop holds the tests that converse with xmtp-js 12.1.0 through
// the local XMTP node. The Node scripts live in js/; `npm ci --prefix
// xmtp/interop/js` installs their dependencies.
package interop
