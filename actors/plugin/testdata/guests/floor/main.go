//go:build wasip1

// Command floor is the benchmark's probe plug-in: each export does one part
// of the bot's on_message, so a benchmark can tell what each part costs.
//
//	noop        nothing: the SDK's own cost of a call
//	input       reads the input
//	output      answers {"action":"forward"} without reading anything
//	json        the JSON work on a fixed message, without host calls
//	on_message  reads the input, does the JSON work and answers
package main

import (
	"encoding/json"

	"guests/pdk"
)

type message struct {
	Content string `json:"content"`
	Sender  string `json:"sender"`
}

var fixed = []byte(`{"id":"m-1","bridge":"0x0000000000000000000000000000000000000001","sender":"0x000000000000000000000000000000000000dEaD","topic":"/xmtp/0/m-bench/proto","contentType":"xmtp.org/text:1.0","content":"what is the weather in Paris?","sentAt":"2023-11-14T22:13:20Z"}`)

var sink []byte

//go:wasmexport noop
func noop() int32 { return 0 }

//go:wasmexport input
func input() int32 {
	sink = pdk.Input()
	return 0
}

var forward = []byte(`{"action":"forward"}`)

//go:wasmexport output
func output() int32 {
	pdk.Output(forward)
	return 0
}

func work(in []byte) []byte {
	var m message
	if json.Unmarshal(in, &m) != nil {
		return nil
	}
	b, _ := json.Marshal(map[string]any{"action": "forward"})
	return b
}

//go:wasmexport json
func jsonOnly() int32 {
	sink = work(fixed)
	return 0
}

//go:wasmexport on_message
func onMessage() int32 {
	pdk.Output(work(pdk.Input()))
	return 0
}

func main() {}
