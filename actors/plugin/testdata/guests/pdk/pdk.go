//go:build wasip1

// Package pdk is the smallest Extism guest shim the test plug-ins need. The
// Extism Go PDK is not served by the module proxy, so this declares the
// Extism kernel functions of the "extism:host/env" module itself (see the
// Extism runtime-kernel proposal, EIP-007) and wraps the few a plug-in
// uses:
//
//	input_length() i64          length of the call's input
//	input_load_u8(i64) i32      one input byte at an offset
//	input_load_u64(i64) i64     eight input bytes at an offset
//	alloc(i64) i64              a block of kernel memory, 0 when full
//	free(i64)                   give a block back
//	length(i64) i64             length of a block
//	load_u8 / load_u64          read kernel memory
//	store_u8 / store_u64        write kernel memory
//	output_set(i64, i64)        the call's output is that block
//	error_set(i64)              the call's error is that block's text
//	config_get(i64) i64         the binding's config value for a key, 0 if unset
//	http_request(i64, i64) i64  Extism's HTTP call: a JSON request and a body block
//
// A plug-in exports its extension points with //go:wasmexport and is built
// with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
//
// # Few host calls
//
// The guest cannot see the kernel's memory: every 8 bytes of input or
// output cross the Wasm boundary in one host call, and in the Go SDK
// (v1.7.1) the calls differ a lot in price. input_load_u64, load_u64 and
// store_u64 are Go functions reading or writing the kernel's memory (about
// 0.2 µs each); every other kernel function (input_length, input_load_u8,
// alloc, store_u8, length, free, output_set, ...) is a Go function that
// calls the kernel module's export, which costs a new wazero call engine
// with a 10 KB stack and, with the sandbox's context cancellation on, a
// goroutine (several µs each). So by default this shim uses the fewest
// host calls the ABI allows:
//
//   - input: input_length, then one input_load_u64 per 8 bytes; the last,
//     partial word is read as the 8 bytes ending at the input's end (they
//     overlap bytes already read), never byte by byte;
//   - output: one alloc rounded up to 8 bytes, one store_u64 per 8 bytes,
//     then output_set with the exact length (output_set takes a length, so
//     the block may be longer than the output);
//   - blocks passed by offset alone (a config key, an error, an HTTP
//     request) keep their exact length, and their last word overlaps too;
//   - a config value is read once per instance and kept: the bridge never
//     changes a live instance's config (a new binding config makes new
//     instances).
//
// Built with -ldflags "-X guests/pdk.Style=pdk", the shim does what the
// official PDKs do instead: byte-wise tails with input_load_u8, store_u8
// and load_u8, and config_get on every Config call. The benchmarks build
// both, because any Extism plug-in must keep working and most are built
// with a PDK.
package pdk

import "encoding/binary"

// Style is "pdk" to behave like the official PDKs; see the package
// documentation.
var Style = ""

func pdkStyle() bool { return Style == "pdk" }

//go:wasmimport extism:host/env input_length
func inputLength() uint64

//go:wasmimport extism:host/env input_load_u8
func inputLoadU8(offset uint64) uint32

//go:wasmimport extism:host/env input_load_u64
func inputLoadU64(offset uint64) uint64

//go:wasmimport extism:host/env alloc
func alloc(n uint64) uint64

//go:wasmimport extism:host/env free
func free(offset uint64)

//go:wasmimport extism:host/env length
func length(offset uint64) uint64

//go:wasmimport extism:host/env load_u8
func loadU8(offset uint64) uint32

//go:wasmimport extism:host/env load_u64
func loadU64(offset uint64) uint64

//go:wasmimport extism:host/env store_u8
func storeU8(offset uint64, v uint32)

//go:wasmimport extism:host/env store_u64
func storeU64(offset uint64, v uint64)

//go:wasmimport extism:host/env output_set
func outputSet(offset, n uint64)

//go:wasmimport extism:host/env error_set
func errorSet(offset uint64)

//go:wasmimport extism:host/env config_get
func configGet(offset uint64) uint64

//go:wasmimport extism:host/env http_request
func httpRequest(req, body uint64) uint64

// HTTPGet asks the host to GET url with Extism's HTTP function and returns
// the body; the host refuses hosts it does not allow.
func HTTPGet(url string) []byte {
	req := store([]byte(`{"url":"` + url + `","method":"GET"}`))
	off := httpRequest(req, 0)
	if off == 0 {
		return nil
	}
	return load(off)
}

// Input returns the call's input.
func Input() []byte {
	n := inputLength()
	buf := make([]byte, n)
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], inputLoadU64(i))
	}
	if i < n && n >= 8 && !pdkStyle() {
		binary.LittleEndian.PutUint64(buf[n-8:], inputLoadU64(n-8))
		return buf
	}
	for ; i < n; i++ {
		buf[i] = byte(inputLoadU8(i))
	}
	return buf
}

// store copies b into a new kernel block of exactly len(b) bytes and
// returns its offset, or 0 when the kernel has no room.
func store(b []byte) uint64 {
	n := uint64(len(b))
	off := alloc(n)
	if off == 0 && n > 0 {
		return 0
	}
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		storeU64(off+i, binary.LittleEndian.Uint64(b[i:]))
	}
	if i < n && n >= 8 && !pdkStyle() {
		storeU64(off+n-8, binary.LittleEndian.Uint64(b[n-8:]))
		return off
	}
	for ; i < n; i++ {
		storeU8(off+i, uint32(b[i]))
	}
	return off
}

// load copies a kernel block out.
func load(off uint64) []byte {
	n := length(off)
	buf := make([]byte, n)
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], loadU64(off+i))
	}
	if i < n && n >= 8 && !pdkStyle() {
		binary.LittleEndian.PutUint64(buf[n-8:], loadU64(off+n-8))
		return buf
	}
	for ; i < n; i++ {
		buf[i] = byte(loadU8(off + i))
	}
	return buf
}

// Output sets the call's output.
func Output(b []byte) {
	if pdkStyle() {
		outputSet(store(b), uint64(len(b)))
		return
	}
	n := uint64(len(b))
	words := (n + 7) / 8
	off := alloc(words * 8)
	if off == 0 && n > 0 {
		outputSet(0, 0)
		return
	}
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		storeU64(off+i, binary.LittleEndian.Uint64(b[i:]))
	}
	if i < n {
		var last [8]byte
		copy(last[:], b[i:])
		storeU64(off+i, binary.LittleEndian.Uint64(last[:]))
	}
	outputSet(off, n)
}

// OutputRaw sets the call's output to n bytes at a kernel offset, for
// plug-ins that lie about their output.
func OutputRaw(off, n uint64) { outputSet(off, n) }

// Alloc reserves n bytes of kernel memory, 0 when it is full.
func Alloc(n uint64) uint64 { return alloc(n) }

// SetError makes the call fail with msg.
func SetError(msg string) { errorSet(store([]byte(msg))) }

type configValue struct {
	v  string
	ok bool
}

// configs holds the config values read so far by this instance.
var configs = map[string]configValue{}

// Config returns the binding's config value for key.
func Config(key string) (string, bool) {
	if c, seen := configs[key]; seen && !pdkStyle() {
		return c.v, c.ok
	}
	var c configValue
	k := store([]byte(key))
	off := configGet(k)
	free(k)
	if off != 0 {
		c = configValue{v: string(load(off)), ok: true}
		free(off)
	}
	configs[key] = c
	return c.v, c.ok
}
