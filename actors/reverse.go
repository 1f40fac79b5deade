package actors

// The reverse child.
//
// Accepts: *handlerTask (a message from the API server's own XMTP identity,
// whose JSON content {targetAddress, message} is a command to send message
// to targetAddress as the bridge), *actorpb.SendRequest (a send made over REST,
// forwarded by the identity actor with its original sender).
// Sends: *actorpb.SendResponse to the requester, *topicHandled and
// *conversationStarted to the identity actor; it publishes XMTP messages.
// Supervised by: the identity actor's supervision.Strategy; a command that
// keeps making it fail is quarantined.
// On restart: nothing is lost; a command not yet handled is redelivered by
// the strategy, and its topic's cursor has not moved past it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/xmtpbridge/bridge/actors/actorpb"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// ErrBadCommand reports a reverse command that is not the JSON
// {targetAddress, message}.
var ErrBadCommand = errors.New("malformed reverse command")

type reverser struct {
	a *activation
}

// reverseCommand is the content of a reverse command message.
type reverseCommand struct {
	TargetAddress string `json:"targetAddress"`
	Message       string `json:"message"`
}

// parseReverseCommand decodes the text of a reverse command.
func parseReverseCommand(text string) (reverseCommand, error) {
	var c reverseCommand
	if err := json.Unmarshal([]byte(text), &c); err != nil {
		return c, fmt.Errorf("parse reverse command: %w: %w", ErrBadCommand, err)
	}
	if !keys.IsAddress(c.TargetAddress) || c.Message == "" {
		return c, fmt.Errorf("parse reverse command: %w", ErrBadCommand)
	}
	return c, nil
}

func (r *reverser) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Stopped:
		r.a.rt.metrics.stopsReverse.Inc()
	case *handlerTask:
		r.command(m)
		r.a.rt.root.Send(r.a.self, &topicHandled{topic: m.msg.Topic, ts: m.msg.EnvelopeTimestamp, digest: m.raw})
	case *actorpb.SendRequest:
		body, err := content.Decode(m.Content)
		if err != nil {
			ctx.Respond(&actorpb.SendResponse{Error: errorToWire(fmt.Errorf("decode content: %w", err))})
			return
		}
		sctx, cancel := context.WithTimeout(r.a.ctx, 30*time.Second)
		defer cancel()
		id, err := r.a.send(sctx, m.To, body, persistence.SendREST)
		ctx.Respond(&actorpb.SendResponse{MessageId: id, Error: errorToWire(err)})
	}
}

func (r *reverser) command(t *handlerTask) {
	a := r.a
	text, err := t.msg.Content.Text()
	if err != nil {
		a.log.Warn("reverse command is not text", "message", t.msg.ID)
		return
	}
	cmd, err := parseReverseCommand(text)
	if err != nil {
		a.log.Warn("reverse command rejected", "message", t.msg.ID, "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, 30*time.Second)
	defer cancel()
	id, err := a.send(ctx, cmd.TargetAddress, content.Text(cmd.Message), persistence.SendReverse)
	if err != nil {
		a.log.Warn("reverse send", "message", t.msg.ID, "to", cmd.TargetAddress, "error", err)
		return
	}
	a.log.Debug("reverse command sent", "command", t.msg.ID, "message", id, "to", cmd.TargetAddress)
}

// send publishes body to an address as the bridge, in the default
// conversation with it, which it starts when there is none, and records
// its status as a message sent on source.
func (a *activation) send(ctx context.Context, to string, body *content.Content, source persistence.SendSource) (string, error) {
	if !keys.IsAddress(to) {
		return "", fmt.Errorf("send to %q: %w", to, ErrBadCommand)
	}
	if err := a.checkLease(ctx); err != nil {
		return "", fmt.Errorf("send to %s: %w", to, err)
	}
	if f := a.rt.cfg.SendFilter; f != nil {
		var err error
		if body, err = f.FilterSend(ctx, a.address, to, body); err != nil {
			return "", fmt.Errorf("send to %s: %w", to, err)
		}
	}
	conv, created, err := a.convs.start(ctx, to, time.Now())
	if err != nil {
		return "", fmt.Errorf("send to %s: %w", to, err)
	}
	if created {
		a.rt.root.Send(a.self, &conversationStarted{conv: conv})
	}
	return a.publishRecorded(ctx, conv, body, "reverse", source, to)
}

// publish seals and publishes body on conv.
func (a *activation) publish(ctx context.Context, conv *conversation.Conversation, body *content.Content, handler string) (string, error) {
	env, err := conv.Seal(a.bundle, body, time.Now())
	if err != nil {
		return "", fmt.Errorf("seal message: %w", err)
	}
	if err := a.rt.cfg.XMTP.Publish(ctx, a.auth, env); err != nil {
		return "", fmt.Errorf("publish message to %s: %w", conv.Topic, err)
	}
	a.rt.metrics.messagesOut.WithLabelValues(handler).Inc()
	return conversation.MessageID(env.Message), nil
}
