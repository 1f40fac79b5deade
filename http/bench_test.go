package http

import (
	"net/http/httptest"
	"testing"
)

func BenchmarkDecodeStrict(b *testing.B) {
	body := []byte(`{"name":"b","forward":{"url":"https://8.8.8.8/","bodyFormat":"json","replyMode":"reply","timeoutMs":1000,"maxConcurrency":2,"headers":{"X":"y"},"allowSenders":["0x00000000000000000000000000000000000000aa"],"denySenders":[]}}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var req createBridgeRequest
		if err := decodeStrict(body, &req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetBridge measures an authenticated API read end to end through
// the Fiber app and Postgres.
func BenchmarkGetBridge(b *testing.B) {
	h := newHarness(b, nil)
	key := h.signup("alice")
	br, _ := h.createBridge(key)
	path := "/v1/bridges/" + str(br, "id")
	for b.Loop() {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := h.srv.App().Test(req, -1)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
