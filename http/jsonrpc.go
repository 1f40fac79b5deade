package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// JSON-RPC 2.0 frames of the live socket (docs/live.md). Every frame is one
// JSON object; batches are refused.

// The JSON-RPC error codes the live socket answers with: the standard ones
// and the server's own, from -32001 down.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcMethodNotFound = -32601
	rpcInvalidParams  = -32602
	rpcInternalError  = -32603

	rpcUnknownMessage  = -32001
	rpcAlreadyReplied  = -32002
	rpcSendFailed      = -32003
	rpcTooManyInFlight = -32004
	rpcRateLimited     = -32005
)

// rpcError is a JSON-RPC error object.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("json-rpc error %d: %s", e.Code, e.Message) }

// rpcRequest is a request or, without an id, a notification.
type rpcRequest struct {
	// ID is the request's id as sent (a string, a number or null); nil
	// for a notification, which gets no answer.
	ID     json.RawMessage
	Method string
	Params json.RawMessage
}

// rpcNullID is the id of an answer to a frame whose id could not be read.
var rpcNullID = json.RawMessage("null")

// decodeRPC reads one frame. The error is the answer to send, with the
// request's id when it could be read.
func decodeRPC(data []byte) (rpcRequest, *rpcError) {
	if !json.Valid(data) {
		return rpcRequest{ID: rpcNullID}, &rpcError{Code: rpcParseError, Message: "parse error: the frame is not JSON"}
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		msg := "invalid request: a frame is one JSON object"
		if len(trimmed) > 0 && trimmed[0] == '[' {
			msg = "invalid request: batches are not supported, send one request a frame"
		}
		return rpcRequest{ID: rpcNullID}, &rpcError{Code: rpcInvalidRequest, Message: msg}
	}
	var raw struct {
		JSONRPC json.RawMessage `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  json.RawMessage `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return rpcRequest{ID: rpcNullID}, &rpcError{Code: rpcInvalidRequest, Message: "invalid request"}
	}
	req := rpcRequest{ID: raw.ID, Params: raw.Params}
	if raw.ID != nil && !validRPCID(raw.ID) {
		return rpcRequest{ID: rpcNullID}, &rpcError{Code: rpcInvalidRequest, Message: "invalid request: id must be a string, a number or null"}
	}
	answerID := req.ID
	if answerID == nil {
		answerID = rpcNullID
	}
	var version string
	if json.Unmarshal(raw.JSONRPC, &version) != nil || version != "2.0" {
		return rpcRequest{ID: answerID}, &rpcError{Code: rpcInvalidRequest, Message: `invalid request: jsonrpc must be "2.0"`}
	}
	if json.Unmarshal(raw.Method, &req.Method) != nil || req.Method == "" {
		return rpcRequest{ID: answerID}, &rpcError{Code: rpcInvalidRequest, Message: "invalid request: method must be a non-empty string"}
	}
	if p := bytes.TrimLeft(raw.Params, " \t\r\n"); len(p) > 0 && p[0] != '{' {
		return rpcRequest{ID: answerID}, &rpcError{Code: rpcInvalidParams, Message: "invalid params: params must be an object"}
	}
	return req, nil
}

// validRPCID reports whether an id is a string, a number or null.
func validRPCID(id json.RawMessage) bool {
	var v any
	if json.Unmarshal(id, &v) != nil {
		return false
	}
	switch v.(type) {
	case string, float64, nil:
		return true
	}
	return false
}

// decodeParams reads params into v strictly: unknown fields and wrong
// types are invalid params.
func decodeParams(params json.RawMessage, v any) *rpcError {
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		msg := "invalid params"
		if errors.As(err, &te) && te.Field != "" {
			msg = "invalid params: " + te.Field + " has the wrong type"
		}
		return &rpcError{Code: rpcInvalidParams, Message: msg}
	}
	return nil
}

// rpcResponse is the answer to a request.
type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

// rpcNotification is a frame the server sends unasked.
type rpcNotification struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params"`
}

func rpcResult(id json.RawMessage, result any) rpcResponse {
	return rpcResponse{JSONRPC: "2.0", ID: id, Result: result}
}

func rpcFailure(id json.RawMessage, e *rpcError) rpcResponse {
	return rpcResponse{JSONRPC: "2.0", ID: id, Error: e}
}

func rpcNotify(method string, params any) rpcNotification {
	return rpcNotification{JSONRPC: "2.0", Method: method, Params: params}
}
