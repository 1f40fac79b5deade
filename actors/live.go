package actors

// Delivery-mode routing of the forward child. A bridge in live or both mode
// hands each delivery to its live stream (persistence.HandOverLive): a
// durable row announced to every node over Postgres LISTEN/NOTIFY, where
// the LiveHub of the node that holds a consumer's socket picks it up. In
// live mode that completes the delivery; in both mode the webhook attempt
// follows. The hand-over runs on the attempt goroutine, under the lease,
// and is idempotent, so a retry or a second activation adds nothing.

import (
	"context"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/persistence"
)

// handOverLive puts d in the bridge's live stream, with msg as the body of
// its `message` notification, and reports whether it is there. A delivery
// that could not be handed over stays due and is tried again.
func (a *activation) handOverLive(b persistence.Bridge, d persistence.Delivery, msg webhook.Message) bool {
	body, err := webhook.EncodeBody(webhook.FormatJSON, msg)
	if err != nil {
		a.log.Error("encode live message", "delivery", d.ID, "error", err)
		return false
	}
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	if err := a.rt.cfg.Store.HandOverLive(ctx, a.currentLease(), d, body, !b.Delivery.Webhook()); err != nil {
		a.noteFenced(err)
		if a.ctx.Err() == nil {
			a.log.Warn("hand over live message", "delivery", d.ID, "error", err)
		}
		return false
	}
	return true
}
