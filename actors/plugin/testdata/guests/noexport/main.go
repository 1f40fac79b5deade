//go:build wasip1

// Command noexport is a valid Extism module that exports no extension
// point: an upload of it is refused.
package main

import "guests/pdk"

//go:wasmexport greet
func greet() int32 {
	pdk.Output([]byte("hello"))
	return 0
}

func main() {}
