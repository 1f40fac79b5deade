package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseLogin feeds any config file to parseLogin: it never panics, and
// what it refuses it refuses with an error that does not quote the file,
// which may hold an API key.
func FuzzParseLogin(f *testing.F) {
	for _, s := range []string{
		`{"api":"http://127.0.0.1:8080","apiKey":"xbk_abc"}`, `{}`, `null`, `[]`, ``, `{"api":1}`,
		`{"api":"x","apiKey":"xbk_secret_in_a_broken_file"`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseLogin(data, "/config.json")
		if err != nil && len(data) > 8 && containsBytes(err.Error(), data) {
			t.Fatalf("the error quotes the file: %v", err)
		}
	})
}

func containsBytes(s string, b []byte) bool {
	for i := 0; i+len(b) <= len(s); i++ {
		if s[i:i+len(b)] == string(b) {
			return true
		}
	}
	return false
}

// FuzzLiveFrame feeds any frame, as a server (or a hostile sender's
// message in it) could send it, to tail's decoder and its line for
// people: nothing panics, and the line is one line of at most 401 runes
// without control characters, so a message cannot move the terminal's
// cursor or forge another line.
func FuzzLiveFrame(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","method":"message","params":{"id":"1","cursor":"2","sender":"0xabc","contentType":"xmtp.org/text:1.0","content":"hello","sentAt":"2026-12-01T16:00:00Z"}}`,
		`{"jsonrpc":"2.0","method":"message","params":{"id":"1","content":"\u001b[2J\r\nfake line"}}`,
		`{"jsonrpc":"2.0","method":"message","params":{"id":"1","content":{"a":[1,2]}}}`,
		`{"jsonrpc":"2.0","method":"status","params":{"messageId":"9","status":"sent"}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"already"}}`,
		`[]`, `null`, `{"method":7}`, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFrame(data)
		if err != nil {
			return
		}
		var m liveMessage
		if json.Unmarshal(fr.Params, &m) != nil {
			return
		}
		line := messageLine(m, "acked", time.Unix(0, 0))
		if strings.ContainsAny(line, "\x1b\r\n\x00\x7f") || utf8.RuneCountInString(line) > 401 {
			t.Fatalf("line %q", line)
		}
	})
}
