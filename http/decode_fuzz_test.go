package http

import (
	"testing"
)

// FuzzDecodeRequests feeds arbitrary bodies to the strict decoder of every
// request type: it must never panic, and every refusal is a 400 with a code.
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
		`{"to":"0x00000000000000000000000000000000000000aa","content":"hi"}`,
		`{"name":`, `[]`, `null`, ``, `{"a":1} x`, `{"forward":{"headers":{"a":1}}}`, "{\"name\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		targets := []any{
			&createAccountRequest{}, &createAPIKeyRequest{}, &createBridgeRequest{}, &updateBridgeRequest{},
			&rotateSecretRequest{}, &sendMessageRequest{}, &relayccSignupRequest{}, &relayccHookRequest{},
			&relayccInstanceRequest{},
		}
		for _, v := range targets {
			if err := decodeStrict(body, v); err != nil && (err.Status != 400 || err.Code == "" || err.Message == "") {
				t.Fatalf("decode %T: refusal %+v is not a coded 400", v, err)
			}
		}
		if err := decodeLenient(body, &relayccCanaryRequest{}); err != nil && (err.Status != 400 || err.Code == "") {
			t.Fatalf("decode canary: refusal %+v is not a coded 400", err)
		}
	})
}
