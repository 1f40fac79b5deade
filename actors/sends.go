package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
)

// recordTimeout bounds the write of a send's status after its publish.
const recordTimeout = 5 * time.Second

// publishRecorded seals body on conv, publishes it and records the
// outcome as the status of a message sent on source to the address to:
// sent, or failed with the error. The status write does not change the
// answer of the send; a failed write is logged.
func (a *activation) publishRecorded(ctx context.Context, conv *conversation.Conversation, body *content.Content,
	handler string, source persistence.SendSource, to string) (string, error) {
	env, err := conv.Seal(a.bundle, body, time.Now())
	if err != nil {
		return "", fmt.Errorf("seal message: %w", err)
	}
	id := conversation.MessageID(env.Message)
	perr := a.rt.cfg.XMTP.Publish(ctx, a.auth, env)
	status, lastError := persistence.SendSent, ""
	if perr != nil {
		status, lastError = persistence.SendFailed, perr.Error()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := a.rt.cfg.Store.RecordSend(rctx, a.bridgeID, id, source, to, status, lastError); err != nil {
		a.log.Warn("record send status", "message", id, "error", err)
	}
	if perr != nil {
		return "", fmt.Errorf("publish message to %s: %w", conv.Topic, perr)
	}
	a.rt.metrics.messagesOut.WithLabelValues(handler).Inc()
	return id, nil
}
