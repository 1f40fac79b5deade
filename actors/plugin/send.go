package plugin

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/xmtpbridge/bridge/xmtp/content"
)

// FilterSend runs the bridge's on_send plug-in on text content before the
// reverse proxy sends it to `to`: it may rewrite it, or refuse it with
// ErrRefused. Content that is not text, and bridges without a binding,
// pass unchanged. A failed call applies onError: forward sends the
// content as it was, drop and dead_letter refuse it.
func (h *Host) FilterSend(ctx context.Context, bridge, to string, body *content.Content) (*content.Content, error) {
	bd := h.lookup(bridge, OnSend)
	if bd == nil {
		return body, nil
	}
	text, err := body.Text()
	if err != nil {
		return body, nil
	}
	in, err := json.Marshal(SendInput{Bridge: bridge, To: to, ContentType: content.TypeText.String(), Content: text})
	if err != nil {
		return body, nil
	}
	out, cerr := h.call(ctx, bd, in)
	var r SendResult
	if cerr == nil {
		if r, err = DecodeSendResult(out); err != nil {
			cerr = h.badOutput(bd, err)
		}
	}
	if cerr != nil {
		if cerr.OnError == ErrorForward {
			return body, nil
		}
		return nil, fmt.Errorf("filter send: %w: %s", ErrRefused, cerr.Reason)
	}
	if r.Action == "refuse" {
		return nil, fmt.Errorf("filter send: %w: %.200s", ErrRefused, r.Reason)
	}
	if r.Content != nil {
		return content.Text(*r.Content), nil
	}
	return body, nil
}
