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
package pdk

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
		v := inputLoadU64(i)
		for j := uint64(0); j < 8; j++ {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	for ; i < n; i++ {
		buf[i] = byte(inputLoadU8(i))
	}
	return buf
}

// store copies b into a new kernel block and returns its offset, or 0 when
// the kernel has no room.
func store(b []byte) uint64 {
	n := uint64(len(b))
	off := alloc(n)
	if off == 0 && n > 0 {
		return 0
	}
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		var v uint64
		for j := uint64(0); j < 8; j++ {
			v |= uint64(b[i+j]) << (8 * j)
		}
		storeU64(off+i, v)
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
		v := loadU64(off + i)
		for j := uint64(0); j < 8; j++ {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	for ; i < n; i++ {
		buf[i] = byte(loadU8(off + i))
	}
	return buf
}

// Output sets the call's output.
func Output(b []byte) {
	off := store(b)
	outputSet(off, uint64(len(b)))
}

// OutputRaw sets the call's output to n bytes at a kernel offset, for
// plug-ins that lie about their output.
func OutputRaw(off, n uint64) { outputSet(off, n) }

// Alloc reserves n bytes of kernel memory, 0 when it is full.
func Alloc(n uint64) uint64 { return alloc(n) }

// SetError makes the call fail with msg.
func SetError(msg string) { errorSet(store([]byte(msg))) }

// Config returns the binding's config value for key.
func Config(key string) (string, bool) {
	k := store([]byte(key))
	off := configGet(k)
	free(k)
	if off == 0 {
		return "", false
	}
	v := string(load(off))
	free(off)
	return v, true
}
