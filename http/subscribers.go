package http

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// subscriptionsRequest is the subscriptions field of a bridge request.
type subscriptionsRequest struct {
	Enabled         *bool   `json:"enabled"`
	SubscribeWord   *string `json:"subscribeWord"`
	UnsubscribeWord *string `json:"unsubscribeWord"`
}

// apply checks the request and sets what it names on s.
func (r *subscriptionsRequest) apply(s *persistence.Subscriptions) error {
	if r.Enabled != nil {
		s.Enabled = *r.Enabled
	}
	for _, w := range []struct {
		field string
		in    *string
		out   *string
	}{{"subscriptions.subscribeWord", r.SubscribeWord, &s.SubscribeWord}, {"subscriptions.unsubscribeWord", r.UnsubscribeWord, &s.UnsubscribeWord}} {
		if w.in == nil {
			continue
		}
		word := strings.TrimSpace(*w.in)
		if word == "" || len(word) > 64 || !utf8.ValidString(word) || strings.ContainsAny(word, " \t\r\n") {
			return invalidField(w.field, "must be one word of 1 to 64 bytes")
		}
		*w.out = word
	}
	if strings.EqualFold(s.SubscribeWord, s.UnsubscribeWord) {
		return invalidField("subscriptions.unsubscribeWord", "must differ from subscribeWord")
	}
	return nil
}

// subscriptionsView is a bridge's subscriptions in responses.
type subscriptionsView struct {
	Enabled         bool   `json:"enabled"`
	SubscribeWord   string `json:"subscribeWord"`
	UnsubscribeWord string `json:"unsubscribeWord"`
}

func viewSubscriptions(s persistence.Subscriptions) subscriptionsView {
	return subscriptionsView{Enabled: s.Enabled, SubscribeWord: s.SubscribeWord, UnsubscribeWord: s.UnsubscribeWord}
}

// listSubscribers lists the subscribers of one of the caller's bridges,
// by address.
func (s *Server) listSubscribers(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	list, next, err := s.opts.Store.ListSubscribers(c.UserContext(), account(c).ID, c.Params("id"), p)
	if err != nil {
		return storeError(err, "bridge")
	}
	type view struct {
		Address   string    `json:"address"`
		CreatedAt time.Time `json:"createdAt"`
	}
	out := make([]view, 0, len(list))
	for _, x := range list {
		out = append(out, view{Address: x.Address, CreatedAt: x.CreatedAt})
	}
	return c.JSON(fiber.Map{"ok": true, "subscribers": out, "nextCursor": next})
}

// deleteSubscriber removes a subscriber of one of the caller's bridges.
func (s *Server) deleteSubscriber(c *fiber.Ctx) error {
	addr := c.Params("address")
	if !keys.IsAddress(addr) {
		return notFound("subscriber")
	}
	if err := s.opts.Store.RemoveSubscriber(c.UserContext(), account(c).ID, c.Params("id"), addr); err != nil {
		return storeError(err, "subscriber")
	}
	return c.JSON(fiber.Map{"ok": true})
}

// broadcastRequest is the body of POST /v1/bridges/:id/broadcasts.
type broadcastRequest struct {
	Content string `json:"content"`
}

// createBroadcast stores a broadcast to every current subscriber of one
// of the caller's bridges; the bridge's grain sends it.
func (s *Server) createBroadcast(c *fiber.Ctx) error {
	var req broadcastRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := checkContent("content", req.Content); err != nil {
		return err
	}
	b, err := s.opts.Store.GetBridge(c.UserContext(), account(c).ID, c.Params("id"))
	if err != nil {
		return storeError(err, "bridge")
	}
	if b.Status != persistence.StatusActive {
		return errorf(fiber.StatusConflict, CodeBridgeDisabled, "bridge is %s, not active", b.Status)
	}
	bc, err := s.opts.Store.CreateBroadcast(c.UserContext(), account(c).ID, b.ID, req.Content)
	if err != nil {
		return storeError(err, "bridge")
	}
	s.log.Info("broadcast created", "bridge", b.ID, "broadcast", bc.ID, "recipients", bc.Recipients)
	if s.opts.Events != nil {
		s.opts.Events.DeliveriesQueued(c.UserContext(), b.ID)
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"ok": true, "id": bc.ID, "recipients": bc.Recipients})
}

// getBroadcast answers the status of a broadcast: copies sent, failed and
// pending, and the failures with their reason.
func (s *Server) getBroadcast(c *fiber.Ctx) error {
	st, err := s.opts.Store.BroadcastStatus(c.UserContext(), account(c).ID, c.Params("id"), c.Params("broadcastId"))
	if err != nil {
		return storeError(err, "broadcast")
	}
	type failure struct {
		Address string `json:"address"`
		Reason  string `json:"reason"`
	}
	failures := make([]failure, 0, len(st.Failures))
	for _, f := range st.Failures {
		failures = append(failures, failure{Address: f.Address, Reason: f.Reason})
	}
	return c.JSON(fiber.Map{"ok": true, "broadcast": fiber.Map{
		"id": st.ID, "recipients": st.Recipients, "sent": st.Sent, "failed": st.Failed, "pending": st.Pending,
		"failures": failures, "createdAt": st.CreatedAt,
	}})
}
