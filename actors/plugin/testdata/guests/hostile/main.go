//go:build wasip1

// Command hostile is the test plug-in that misbehaves. Its on_message does
// what the binding's config key "mode" says:
//
//	loop    spins forever
//	bomb    allocates until memory runs out
//	trap    panics (a Wasm trap)
//	bigout  claims an output of "size" bytes (default 100 MB)
//	badjson answers bytes that are not JSON
//	file    tries to open /etc/passwd and answers what it read
//	socket  tries to dial 127.0.0.1:"port" and answers what it got
//	http    asks Extism's HTTP function for http://127.0.0.1:"port"/
//	ok      forwards, like a good plug-in
package main

import (
	"net"
	"os"
	"strconv"

	"guests/pdk"
)

var sink [][]byte

//go:wasmexport on_message
func onMessage() int32 {
	mode, _ := pdk.Config("mode")
	switch mode {
	case "loop":
		n := 0
		for {
			n++
		}
	case "bomb":
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	case "trap":
		var p *int
		return int32(*p)
	case "bigout":
		size := uint64(100 << 20)
		if s, ok := pdk.Config("size"); ok {
			n, _ := strconv.ParseUint(s, 10, 64)
			size = n
		}
		buf := make([]byte, size)
		for i := range buf {
			buf[i] = ' '
		}
		copy(buf, `{"action":"forward"}`)
		pdk.Output(buf)
		return 0
	case "badjson":
		pdk.Output([]byte(`{"action": forward`))
		return 0
	case "file":
		b, err := os.ReadFile("/etc/passwd")
		if err != nil {
			pdk.SetError("open file: " + err.Error())
			return 1
		}
		pdk.Output([]byte(`{"action":"reply","content":` + strconv.Quote(string(b[:min(len(b), 64)])) + `}`))
		return 0
	case "http":
		port, _ := pdk.Config("port")
		body := pdk.HTTPGet("http://127.0.0.1:" + port + "/")
		pdk.Output([]byte(`{"action":"reply","content":` + strconv.Quote(string(body)) + `}`))
		return 0
	case "socket":
		port, _ := pdk.Config("port")
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			pdk.SetError("dial: " + err.Error())
			return 1
		}
		c.Close()
		pdk.Output([]byte(`{"action":"reply","content":"connected"}`))
		return 0
	}
	pdk.Output([]byte(`{"action":"forward"}`))
	return 0
}

func main() {}
