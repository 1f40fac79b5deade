package http

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeRequests feeds arbitrary bodies to the strict decoder of every
// request type: it must never panic, every refusal is a 400 with a code,
// an accepted body has no key that is not exactly a field of its type
// (checked against the type's own encoding), and an unknown_field refusal
// names a key of the body.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []string{
		`{"name":"alice","signupKey":"k"}`,
		`{"name":"b","forward":{"url":"https://8.8.8.8/","bodyFormat":"json","replyMode":"reply","timeoutMs":1000,"maxConcurrency":2,"headers":{"X":"y"},"allowSenders":["0x00000000000000000000000000000000000000aa"],"denySenders":[]}}`,
		`{"status":"disabled","forward":{"timeoutMs":900}}`,
		`{"key":"k","forwardHandler":{"httpUrl":"https://8.8.8.8/","isBot":true}}`,
		`{"sendFromBridgeAddress":"0x00000000000000000000000000000000000000aa","targetAddress":"0x00000000000000000000000000000000000000bb","message":"hi","token":"t"}`,
		`{"key":"k","bridgeAddress":"0x00000000000000000000000000000000000000aa"}`,
		`{"message":{"content":"ping"}}`,
		`{"graceSeconds":60}`,
		`{"delivery":"both","subscriptions":{"enabled":false,"subscribeWord":"start","unsubscribeWord":"stop"}}`,
		`{"subscriptions":{"Enabled":true}}`, `{"content":"news to all"}`,
		`{"to":"0x00000000000000000000000000000000000000aa","content":"hi"}`,
		`{"name":`, `[]`, `null`, ``, `{"a":1} x`, `{"forward":{"headers":{"a":1}}}`, "{\"name\":\"\xff\"}",
		// Keys that differ from a field only in case, nested ones, escaped
		// ones, and unknown keys under values of every kind.
		`{"forward":{"url":"https://8.8.8.8/","replymode":"reply"}}`,
		`{"NAME":"a"}`, `{"Forward":{}}`, `{"forward":{"Headers":{}}}`,
		`{"forwardHandler":{"isbot":true}}`, `{"n\u0061me":"a"}`, `{"forward":{"repl\u0079Mode":"reply"}}`,
		`{"forward":null,"x":1}`, `{"forward":{"allowSenders":[{"a":1}]}}`, `{"forward":[{"url":1}]}`,
		`{"name":"a","name":"b"}`, `{"":1}`, `{"forward":{"headers":{"":"x","REPLYMODE":"y"}}}`,
		`{"status":{"deep":[[[[[[[[[[{"k":1}]]]]]]]]]]}}`,
		`{"forward":{"url":"x"},"forward":{"replymode":"reply"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		targets := []any{
			&createAccountRequest{}, &createAPIKeyRequest{}, &createBridgeRequest{}, &updateBridgeRequest{},
			&rotateSecretRequest{}, &sendMessageRequest{}, &relayccSignupRequest{}, &relayccHookRequest{},
			&relayccInstanceRequest{}, &broadcastRequest{},
		}
		for _, v := range targets {
			err := decodeStrict(body, v)
			if err != nil {
				if err.Status != 400 || err.Code == "" || err.Message == "" {
					t.Fatalf("decode %T: refusal %+v is not a coded 400", v, err)
				}
				if err.Code == CodeUnknownField {
					checkNamedField(t, body, err.Message)
				}
				continue
			}
			var in, out any
			if json.Unmarshal(body, &in) != nil {
				t.Fatalf("decode %T accepted %q, which encoding/json refuses", v, body)
			}
			enc, merr := json.Marshal(v)
			if merr != nil || json.Unmarshal(enc, &out) != nil {
				t.Fatalf("re-encode %T: %v", v, merr)
			}
			if path, ok := keysWithin(in, out, ""); !ok {
				t.Fatalf("decode %T accepted %q with the key %q, which is no field of the type", v, body, path)
			}
		}
		if err := decodeLenient(body, &relayccCanaryRequest{}); err != nil && (err.Status != 400 || err.Code == "") {
			t.Fatalf("decode canary: refusal %+v is not a coded 400", err)
		}
	})
}

// keysWithin reports whether every object key of in is, exactly, a key of
// the object at the same place in out (the request re-encoded: every field
// of its type, and every key of its maps), and the path of the first one
// that is not.
func keysWithin(in, out any, path string) (string, bool) {
	switch x := in.(type) {
	case map[string]any:
		o, ok := out.(map[string]any)
		if !ok {
			return path, false
		}
		for k, v := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			ov, ok := o[k]
			if !ok {
				return p, false
			}
			if p, ok := keysWithin(v, ov, p); !ok {
				return p, false
			}
		}
	case []any:
		o, ok := out.([]any)
		if !ok || len(o) != len(x) {
			return path, false
		}
		for i := range x {
			if p, ok := keysWithin(x[i], o[i], path+"["+strconv.Itoa(i)+"]"); !ok {
				return p, false
			}
		}
	}
	return path, true
}

// checkNamedField checks that an unknown_field message names a key of the
// body: its path ends in a key of the body, when the body is valid UTF-8
// (the decoder turns invalid bytes into U+FFFD).
func checkNamedField(t *testing.T, body []byte, msg string) {
	t.Helper()
	quoted, ok := strings.CutPrefix(msg, "unknown field ")
	path, err := strconv.Unquote(quoted)
	if !ok || err != nil {
		t.Fatalf("unknown_field message %q does not quote the field", msg)
	}
	var v any
	if !utf8.Valid(body) || json.Unmarshal(body, &v) != nil {
		return
	}
	var keys []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				keys = append(keys, k)
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	for _, k := range keys {
		if path == k || strings.HasSuffix(path, "."+k) {
			return
		}
	}
	t.Fatalf("unknown_field names %q, which is not a key of %q", path, body)
}
