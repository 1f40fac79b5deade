package http

import (
	"encoding/json"
	"testing"

	"github.com/xmtpbridge/bridge/persistence"
)

// FuzzLiveFrame feeds arbitrary frames to the live socket's JSON-RPC
// decoder: it never panics, a refusal carries a standard error code and an
// id that is valid JSON (null when the frame's could not be read), an
// accepted frame has a method and object params, and the params decoder
// of every method refuses anything but its own fields.
func FuzzLiveFrame(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ack","params":{"id":"m"}}`,
		`{"jsonrpc":"2.0","id":"a","method":"reply","params":{"id":"m","content":"hi"}}`,
		`{"jsonrpc":"2.0","method":"send","params":{"to":"0x00000000000000000000000000000000000000aa","content":"x"}}`,
		`{"jsonrpc":"2.0","id":null,"method":"ack"}`,
		`{"jsonrpc":"2.0","id":[],"method":"ack"}`, `{"jsonrpc":2,"id":1,"method":"ack"}`,
		`[]`, `[{"jsonrpc":"2.0","id":1,"method":"ack"}]`, `null`, `""`, `1`, ``, `{`, "\xff",
		`{"jsonrpc":"2.0","id":1,"method":"ack","params":"x"}`, `{"jsonrpc":"2.0","id":1,"method":"ack","params":null}`,
		`{"jsonrpc":"2.0","id":1e400,"method":"ack"}`, `{"jsonrpc":"2.0","id":1,"method":"","params":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"ack","params":{"id":{"deep":[[[[[[[[[[1]]]]]]]]]]}}}`,
		`{"jsonrpc":"2.0","jsonrpc":"1.0","id":1,"method":"ack"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, rerr := decodeRPC(frame)
		if rerr != nil {
			switch rerr.Code {
			case rpcParseError, rpcInvalidRequest, rpcInvalidParams:
			default:
				t.Fatalf("refusal code %d", rerr.Code)
			}
			if req.ID == nil || !json.Valid(req.ID) || !validRPCID(req.ID) {
				t.Fatalf("refusal id %q", req.ID)
			}
			return
		}
		if req.Method == "" {
			t.Fatal("accepted a frame without a method")
		}
		if req.ID != nil && !validRPCID(req.ID) {
			t.Fatalf("accepted id %q", req.ID)
		}
		var ack struct {
			ID string `json:"id"`
		}
		var send struct {
			To      string `json:"to"`
			Content string `json:"content"`
		}
		for _, v := range []any{&ack, &send} {
			if e := decodeParams(req.Params, v); e != nil && e.Code != rpcInvalidParams {
				t.Fatalf("params refusal code %d", e.Code)
			}
		}
		// What a message notification carries is JSON whatever the body.
		if p, err := liveMessageParams(persistence.LiveMessage{ID: 1, MessageID: "m", Body: frame}); err == nil && !json.Valid(p) {
			t.Fatalf("message params %q are not JSON", p)
		}
	})
}
