package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/xmtpbridge/bridge/actors/webhook"
)

// Next is the deliverer a Deliverer wraps: webhook.Deliverer.
type Next interface {
	Deliver(ctx context.Context, ep webhook.Endpoint, m webhook.Message) webhook.Result
}

// Deliverer runs a bridge's on_message and on_response plug-ins around the
// webhook delivery of each message. A bridge without a binding goes
// straight to the next deliverer; the lookup is in memory.
type Deliverer struct {
	host *Host
	next Next
}

// NewDeliverer wraps next with h's plug-ins.
func NewDeliverer(h *Host, next Next) *Deliverer { return &Deliverer{host: h, next: next} }

// Deliver implements the runtime's Deliverer port.
func (d *Deliverer) Deliver(ctx context.Context, ep webhook.Endpoint, m webhook.Message) webhook.Result {
	h := d.host
	if bd := h.lookup(m.Bridge, OnMessage); bd != nil {
		res, done := d.onMessage(ctx, bd, &ep, &m)
		if done {
			return res
		}
	}
	bd := h.lookup(m.Bridge, OnResponse)
	if bd == nil {
		return d.next.Deliver(ctx, ep, m)
	}
	wantReply := ep.Reply
	ep.KeepResponse = true
	res := d.next.Deliver(ctx, ep, m)
	if res.Outcome != webhook.OutcomeDelivered {
		return res
	}
	return d.onResponse(ctx, bd, ep, m, res, wantReply)
}

// onMessage runs on_message; done means the delivery is decided (dropped,
// answered by the plug-in, or failed to the dead letters).
func (d *Deliverer) onMessage(ctx context.Context, bd *binding, ep *webhook.Endpoint, m *webhook.Message) (webhook.Result, bool) {
	in, err := webhook.EncodeBody(webhook.FormatJSON, *m)
	if err != nil {
		return webhook.Result{}, false
	}
	out, cerr := d.host.call(ctx, bd, in)
	var r MessageResult
	if cerr == nil {
		if r, err = DecodeMessageResult(out); err != nil {
			cerr = d.host.badOutput(bd, err)
		}
	}
	if cerr != nil {
		return failed(cerr)
	}
	switch r.Action {
	case "drop":
		return webhook.Result{Outcome: webhook.OutcomeDelivered}, true
	case "reply":
		return webhook.Result{Outcome: webhook.OutcomeDelivered, HasReply: true, Reply: *r.Content}, true
	}
	if r.Content != nil {
		m.Content = *r.Content
	}
	if len(r.Headers) > 0 {
		hs := maps.Clone(ep.Headers)
		if hs == nil {
			hs = map[string]string{}
		}
		for k, v := range r.Headers {
			if !webhook.ReservedHeader(k) && !strings.HasPrefix(strings.ToLower(k), "webhook-") {
				hs[k] = v
			}
		}
		ep.Headers = hs
	}
	return webhook.Result{}, false
}

// failed applies a binding's onError to a failed call; done false means
// carry on without the plug-in.
func failed(cerr *CallError) (webhook.Result, bool) {
	switch cerr.OnError {
	case ErrorDrop:
		return webhook.Result{Outcome: webhook.OutcomeDelivered}, true
	case ErrorDeadLetter:
		return webhook.Result{Outcome: webhook.OutcomeRejected, Err: fmt.Errorf("%w: %w", errPluginFailed, cerr)}, true
	}
	return webhook.Result{}, false
}

// onResponse runs on_response on a delivered attempt's response.
func (d *Deliverer) onResponse(ctx context.Context, bd *binding, ep webhook.Endpoint, m webhook.Message, res webhook.Result, wantReply bool) webhook.Result {
	msg, err := webhook.EncodeBody(webhook.FormatJSON, m)
	if err != nil {
		return res
	}
	in := ResponseInput{Message: msg, Response: Response{Status: res.Status, Headers: map[string]string{}, Body: string(res.Body)}}
	for k, v := range res.Header {
		in.Response.Headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return res
	}
	out, cerr := d.host.call(ctx, bd, raw)
	var r ResponseResult
	if cerr == nil {
		if r, err = DecodeResponseResult(out); err != nil {
			cerr = d.host.badOutput(bd, err)
		}
	}
	if cerr != nil {
		if fr, done := failed(cerr); done {
			fr.Status = res.Status
			return fr
		}
		return defaultReply(ep, res, wantReply)
	}
	res.Header, res.Body = nil, nil
	if r.Reply != nil && *r.Reply != "" {
		res.Reply, res.HasReply = *r.Reply, true
	}
	return res
}

// defaultReply reads the reply the endpoint would have given without an
// on_response plug-in.
func defaultReply(ep webhook.Endpoint, res webhook.Result, wantReply bool) webhook.Result {
	body, header := res.Body, res.Header
	res.Header, res.Body = nil, nil
	if !wantReply {
		return res
	}
	var err error
	if ep.Format == webhook.FormatRelaycc {
		res.Reply, res.HasReply, err = webhook.DecodeRelayccReply(body)
	} else {
		res.Reply, res.HasReply, err = webhook.DecodeJSONReply(header.Get("Content-Type"), body)
	}
	if err != nil {
		res.Outcome, res.Err = webhook.OutcomeBadReply, err
	}
	return res
}

// badOutput counts and logs an answer that is not the point's JSON.
func (h *Host) badOutput(bd *binding, err error) *CallError {
	pt := string(bd.point)
	h.metrics.errors.WithLabelValues(pt, ReasonBadOutput).Inc()
	h.cfg.Logger.Warn("plugin call failed", "bridge", bd.b.BridgeID, "plugin", bd.b.PluginID, "point", pt,
		"reason", ReasonBadOutput, "on_error", bd.b.OnError, "error", err)
	return &CallError{Point: bd.point, Reason: ReasonBadOutput, OnError: OnError(bd.b.OnError), Err: err}
}
