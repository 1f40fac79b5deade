//go:build wasip1

// Command bot is the well-behaved test plug-in. It exports every extension
// point; the binding's config key "mode" picks what on_message does:
//
//	help     answers "help" itself and forwards everything else
//	drop     drops every message
//	forward  forwards the message unchanged (the benchmark's trivial plug-in)
//	rewrite  forwards the content in upper case with an x-plugin header
//	version  answers with the version it was built with (-X main.version)
//
// on_response turns a JSON answer {"city":…,"tempC":…} into a sentence, and
// on_send refuses content containing "forbidden" and prefixes the rest with
// the config key "prefix".
package main

import (
	"encoding/json"
	"strings"

	"guests/pdk"
)

var version = "dev"

type message struct {
	Content string `json:"content"`
	Sender  string `json:"sender"`
}

func reply(v any) int32 {
	b, _ := json.Marshal(v)
	pdk.Output(b)
	return 0
}

//go:wasmexport on_message
func onMessage() int32 {
	var m message
	if err := json.Unmarshal(pdk.Input(), &m); err != nil {
		pdk.SetError("bad input")
		return 1
	}
	mode, _ := pdk.Config("mode")
	switch mode {
	case "drop":
		return reply(map[string]any{"action": "drop", "reason": "filtered"})
	case "rewrite":
		return reply(map[string]any{"action": "forward", "content": strings.ToUpper(m.Content),
			"headers": map[string]string{"x-plugin": "rewrite"}})
	case "version":
		return reply(map[string]any{"action": "reply", "content": version + ": " + m.Content})
	case "help":
		if strings.TrimSpace(strings.ToLower(m.Content)) == "help" {
			return reply(map[string]any{"action": "reply", "content": "Commands: help, weather <city>"})
		}
	}
	return reply(map[string]any{"action": "forward"})
}

//go:wasmexport on_response
func onResponse() int32 {
	var in struct {
		Response struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(pdk.Input(), &in); err != nil {
		pdk.SetError("bad input")
		return 1
	}
	var w struct {
		City  string  `json:"city"`
		TempC float64 `json:"tempC"`
	}
	if json.Unmarshal([]byte(in.Response.Body), &w) != nil || w.City == "" {
		return reply(map[string]any{"reply": nil})
	}
	b, _ := json.Marshal(w.TempC)
	return reply(map[string]any{"reply": "It is " + string(b) + "°C in " + w.City + "."})
}

//go:wasmexport on_send
func onSend() int32 {
	var in struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(pdk.Input(), &in); err != nil {
		pdk.SetError("bad input")
		return 1
	}
	if strings.Contains(in.Content, "forbidden") {
		return reply(map[string]any{"action": "refuse", "reason": "forbidden word"})
	}
	prefix, _ := pdk.Config("prefix")
	return reply(map[string]any{"action": "send", "content": prefix + in.Content})
}

func main() {}
