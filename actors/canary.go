package actors

// The canary child.
//
// Accepts: *handlerTask, a message from the canary identity only.
// Sends: *topicHandled to the identity actor; it POSTs the message to the
// API server's canary URL ({"message":{"content":…}}, relaycc shape) and
// publishes the answer's data as a reply in the same conversation.
// Supervised by: the identity actor's supervision.Strategy.
// On restart: the failed message is redelivered by the strategy.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/xmtpbridge/bridge/xmtp/content"
)

// ErrCanaryAnswer reports a canary endpoint answer that is not
// {"ok":true,"data":"…"}.
var ErrCanaryAnswer = errors.New("bad canary answer")

type canary struct {
	a *activation
}

func (c *canary) Receive(ctx actor.Context) {
	switch t := ctx.Message().(type) {
	case *handlerTask:
		if err := c.handle(t); err != nil {
			c.a.log.Warn("canary", "message", t.msg.ID, "error", err)
		}
		c.a.rt.root.Send(c.a.self, &topicHandled{topic: t.msg.Topic, ts: t.msg.EnvelopeTimestamp, digest: t.raw})
	case *actor.Stopped:
		c.a.rt.metrics.stopsCanary.Inc()
	}
}

func (c *canary) handle(t *handlerTask) error {
	a := c.a
	url := a.rt.cfg.CanaryURL
	if url == "" {
		return nil
	}
	text, err := t.msg.Content.Text()
	if err != nil {
		return fmt.Errorf("read canary message: %w", err)
	}
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	body, err := json.Marshal(map[string]any{"message": map[string]any{"content": text}})
	if err != nil {
		return fmt.Errorf("encode canary request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build canary request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.rt.cfg.CanaryClient.Do(req)
	if err != nil {
		return fmt.Errorf("call canary: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("read canary answer: %w", err)
	}
	data, err := decodeCanaryAnswer(resp.StatusCode, raw)
	if err != nil {
		return err
	}
	conv := a.convs.get(t.msg.Topic)
	if conv == nil {
		return fmt.Errorf("reply to canary: unknown conversation %s", t.msg.Topic)
	}
	if err := a.checkLease(ctx); err != nil {
		return fmt.Errorf("reply to canary: %w", err)
	}
	if _, err := a.publish(ctx, conv, content.Text(data), "canary"); err != nil {
		return fmt.Errorf("reply to canary: %w", err)
	}
	return nil
}

// decodeCanaryAnswer reads {"ok":true,"data":"…"}.
func decodeCanaryAnswer(status int, raw []byte) (string, error) {
	if status/100 != 2 {
		return "", fmt.Errorf("call canary: %w: status %d", ErrCanaryAnswer, status)
	}
	var ans struct {
		OK   bool            `json:"ok"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return "", fmt.Errorf("decode canary answer: %w: %w", ErrCanaryAnswer, err)
	}
	if !ans.OK || len(ans.Data) == 0 {
		return "", fmt.Errorf("decode canary answer: %w: not ok", ErrCanaryAnswer)
	}
	var s string
	if err := json.Unmarshal(ans.Data, &s); err == nil {
		return s, nil
	}
	return string(ans.Data), nil
}
