package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Point is a named extension point; a plug-in implements it by exporting a
// function of the same name.
type Point string

// The extension points.
const (
	// OnMessage runs before a message is forwarded.
	OnMessage Point = "on_message"
	// OnResponse runs after the endpoint answered.
	OnResponse Point = "on_response"
	// OnSend runs before the reverse proxy sends content.
	OnSend Point = "on_send"
)

// Points lists every extension point.
var Points = []Point{OnMessage, OnResponse, OnSend}

// ParsePoint reports the point named s.
func ParsePoint(s string) (Point, bool) {
	for _, p := range Points {
		if string(p) == s {
			return p, true
		}
	}
	return "", false
}

// OnError is what a binding does when its plug-in fails.
type OnError string

// The onError policies.
const (
	// ErrorForward carries on as if there were no plug-in.
	ErrorForward OnError = "forward"
	// ErrorDrop drops the message (or refuses the send).
	ErrorDrop OnError = "drop"
	// ErrorDeadLetter makes the delivery a dead letter at once.
	ErrorDeadLetter OnError = "dead_letter"
)

// ValidOnError reports whether s is an onError policy.
func ValidOnError(s string) bool {
	return s == string(ErrorForward) || s == string(ErrorDrop) || s == string(ErrorDeadLetter)
}

// ErrRefused means an on_send plug-in refused the content.
var ErrRefused = errors.New("plug-in refused the content")

// ErrBadOutput means a plug-in answered something that is not its point's
// JSON.
var ErrBadOutput = errors.New("plug-in output is not valid")

// MessageResult is what on_message answers.
type MessageResult struct {
	// Action is "forward", "drop" or "reply".
	Action string `json:"action"`
	// Content replaces the message's content (forward) or is the reply.
	Content *string `json:"content,omitempty"`
	// Headers are extra request headers (forward).
	Headers map[string]string `json:"headers,omitempty"`
	// Reason says why a message was dropped.
	Reason string `json:"reason,omitempty"`
}

// ResponseInput is what on_response gets.
type ResponseInput struct {
	Message  json.RawMessage `json:"message"`
	Response Response        `json:"response"`
}

// Response is the endpoint's answer as on_response sees it.
type Response struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// ResponseResult is what on_response answers: a reply, or null for none.
type ResponseResult struct {
	Reply *string `json:"reply"`
}

// SendInput is what on_send gets.
type SendInput struct {
	Bridge      string `json:"bridge"`
	To          string `json:"to"`
	ContentType string `json:"contentType"`
	Content     string `json:"content"`
}

// SendResult is what on_send answers.
type SendResult struct {
	// Action is "send" or "refuse".
	Action string `json:"action"`
	// Content replaces the content (send).
	Content *string `json:"content,omitempty"`
	// Reason says why the content was refused.
	Reason string `json:"reason,omitempty"`
}

// maxReplyBytes bounds a reply or rewritten content a plug-in answers.
const maxReplyBytes = 32 << 10

// DecodeMessageResult reads an on_message answer.
func DecodeMessageResult(b []byte) (MessageResult, error) {
	var r MessageResult
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode on_message output: %w: %w", ErrBadOutput, err)
	}
	switch r.Action {
	case "forward", "drop":
	case "reply":
		if r.Content == nil || *r.Content == "" {
			return r, fmt.Errorf("decode on_message output: %w: reply without content", ErrBadOutput)
		}
	default:
		return r, fmt.Errorf("decode on_message output: %w: unknown action %q", ErrBadOutput, r.Action)
	}
	if r.Content != nil && len(*r.Content) > maxReplyBytes {
		return r, fmt.Errorf("decode on_message output: %w: content over %d bytes", ErrBadOutput, maxReplyBytes)
	}
	if len(r.Headers) > 32 {
		return r, fmt.Errorf("decode on_message output: %w: more than 32 headers", ErrBadOutput)
	}
	return r, nil
}

// DecodeResponseResult reads an on_response answer; the "reply" key must
// be there, a string or null.
func DecodeResponseResult(b []byte) (ResponseResult, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return ResponseResult{}, fmt.Errorf("decode on_response output: %w: %w", ErrBadOutput, err)
	}
	v, ok := raw["reply"]
	if !ok {
		return ResponseResult{}, fmt.Errorf("decode on_response output: %w: no reply key", ErrBadOutput)
	}
	var r ResponseResult
	if err := json.Unmarshal(v, &r.Reply); err != nil {
		return ResponseResult{}, fmt.Errorf("decode on_response output: %w: reply is not a string or null", ErrBadOutput)
	}
	if r.Reply != nil && len(*r.Reply) > maxReplyBytes {
		return ResponseResult{}, fmt.Errorf("decode on_response output: %w: reply over %d bytes", ErrBadOutput, maxReplyBytes)
	}
	return r, nil
}

// DecodeSendResult reads an on_send answer.
func DecodeSendResult(b []byte) (SendResult, error) {
	var r SendResult
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode on_send output: %w: %w", ErrBadOutput, err)
	}
	if r.Action != "send" && r.Action != "refuse" {
		return r, fmt.Errorf("decode on_send output: %w: unknown action %q", ErrBadOutput, r.Action)
	}
	if r.Content != nil && (len(*r.Content) > maxReplyBytes || *r.Content == "") {
		return r, fmt.Errorf("decode on_send output: %w: content empty or over %d bytes", ErrBadOutput, maxReplyBytes)
	}
	return r, nil
}
