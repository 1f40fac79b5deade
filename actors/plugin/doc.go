// Package plugin runs customers' Extism Wasm plug-ins at a bridge's
// extension points.
package plugin

import _ "github.com/extism/go-sdk"
