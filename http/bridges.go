package http

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// maxMessageBytes bounds the text of one message sent through the reverse
// proxy.
const maxMessageBytes = 32 << 10

// createBridgeRequest is the body of POST /v1/bridges.
type createBridgeRequest struct {
	Name          string                `json:"name"`
	Forward       *forwardRequest       `json:"forward"`
	Delivery      *string               `json:"delivery"`
	Subscriptions *subscriptionsRequest `json:"subscriptions"`
}

// updateBridgeRequest is the body of PATCH /v1/bridges/:id.
type updateBridgeRequest struct {
	Name          *string               `json:"name"`
	Status        *string               `json:"status"`
	Forward       *forwardRequest       `json:"forward"`
	Delivery      *string               `json:"delivery"`
	Subscriptions *subscriptionsRequest `json:"subscriptions"`
}

// rotateSecretRequest is the optional body of the webhook secret rotation.
type rotateSecretRequest struct {
	GraceSeconds *int64 `json:"graceSeconds"`
}

// sendMessageRequest is the body of POST /v1/bridges/:id/messages.
type sendMessageRequest struct {
	To      string `json:"to"`
	Content string `json:"content"`
}

// page reads the limit and cursor query parameters.
func page(c *fiber.Ctx) (persistence.Page, error) {
	p := persistence.Page{After: c.Query("cursor")}
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > persistence.MaxPageSize {
			return p, errorf(fiber.StatusBadRequest, CodeInvalidField, "limit must be an integer between 1 and %d", persistence.MaxPageSize)
		}
		p.Limit = n
	}
	return p, nil
}

// newIdentity generates an XMTP identity and returns its address and
// encoded private key bundle.
func newIdentity() (string, []byte, error) {
	b, err := keys.Generate()
	if err != nil {
		return "", nil, err
	}
	raw, err := b.Marshal()
	if err != nil {
		return "", nil, err
	}
	return b.Address(), raw, nil
}

// createBridge generates an XMTP identity, stores it sealed with its
// forward configuration, and returns the address and the webhook secret,
// once.
func (s *Server) createBridge(c *fiber.Ctx) error {
	var req createBridgeRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := checkName("name", req.Name, false); err != nil {
		return err
	}
	// A bridge without forward.url is a bot: its on_message plug-in
	// answers, and a message the plug-in does not answer is a dead letter.
	cfg := defaultForward()
	if req.Forward != nil {
		if err := req.Forward.apply(c.UserContext(), s.targets, &cfg); err != nil {
			return err
		}
	}
	delivery, err := parseDelivery(req.Delivery)
	if err != nil {
		return err
	}
	subs := persistence.DefaultSubscriptions
	if req.Subscriptions != nil {
		if err := req.Subscriptions.apply(&subs); err != nil {
			return err
		}
	}
	address, bundle, err := newIdentity()
	if err != nil {
		return internal(err)
	}
	acct := account(c)
	b, secrets, err := s.opts.Store.CreateBridge(c.UserContext(), persistence.NewBridge{
		AccountID: acct.ID, Address: address, Name: req.Name, KeyBundle: bundle, Forward: cfg,
		MaxBridges: s.opts.MaxBridgesPerAccount, Delivery: delivery, Subscriptions: &subs,
	})
	if errors.Is(err, persistence.ErrQuotaExceeded) {
		s.metrics.quotaRefusals.WithLabelValues("bridges").Inc()
	}
	if err != nil {
		return storeError(err, "bridge")
	}
	s.log.Info("bridge created", "account", acct.ID, "bridge", b.ID, "address", b.Address)
	s.bridgeCreated(c, b.ID)
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"ok": true, "bridge": viewBridge(b), "webhookSecret": secrets.WebhookSecret})
}

// listBridges lists the caller's bridges, a page at a time.
func (s *Server) listBridges(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	bridges, next, err := s.opts.Store.ListBridges(c.UserContext(), account(c).ID, p)
	if err != nil {
		return storeError(err, "bridge")
	}
	return c.JSON(fiber.Map{"ok": true, "bridges": viewBridges(bridges), "nextCursor": next})
}

// getBridge returns one of the caller's bridges and, on a node with the
// runtime, its live state. Another account's bridge is not found, exactly
// like one that does not exist.
func (s *Server) getBridge(c *fiber.Ctx) error {
	b, err := s.opts.Store.GetBridge(c.UserContext(), account(c).ID, c.Params("id"))
	if err != nil {
		return storeError(err, "bridge")
	}
	health, err := s.opts.Store.EndpointHealthOf(c.UserContext(), b.ID)
	if err != nil {
		return internal(err)
	}
	out := fiber.Map{"ok": true, "bridge": viewBridge(b), "endpointHealth": viewEndpointHealth(health)}
	if s.opts.Instances != nil {
		live, err := s.opts.Instances.InstanceStatus(c.UserContext(), b.ID)
		if err != nil {
			return internal(err)
		}
		view := fiber.Map{"live": live.Live}
		if live.Node != "" {
			view["node"] = live.Node
		}
		if !live.Since.IsZero() {
			view["since"] = live.Since.UTC().Format(time.RFC3339Nano)
		}
		out["live"] = view
	}
	return c.JSON(out)
}

// updateBridge changes the name, status or forward configuration of one of
// the caller's bridges.
func (s *Server) updateBridge(c *fiber.Ctx) error {
	var req updateBridgeRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.Name != nil {
		if err := checkName("name", *req.Name, false); err != nil {
			return err
		}
	}
	var status persistence.BridgeStatus
	if req.Status != nil {
		status = persistence.BridgeStatus(*req.Status)
		if status != persistence.StatusActive && status != persistence.StatusDisabled {
			return invalidField("status", `must be "active" or "disabled"`)
		}
	}
	delivery, err := parseDelivery(req.Delivery)
	if err != nil {
		return err
	}
	// Check the forward URL before taking the row lock: it may resolve DNS.
	if req.Forward != nil && req.Forward.URL != nil {
		if err := s.targets.check(c.UserContext(), "forward.url", *req.Forward.URL); err != nil {
			return err
		}
	}
	b, err := s.opts.Store.UpdateBridge(c.UserContext(), account(c).ID, c.Params("id"), func(b *persistence.Bridge) error {
		if req.Name != nil {
			b.Name = *req.Name
		}
		if req.Status != nil {
			b.Status = status
		}
		if req.Delivery != nil {
			b.Delivery = delivery
		}
		if req.Subscriptions != nil {
			if err := req.Subscriptions.apply(&b.Subscriptions); err != nil {
				return err
			}
		}
		if req.Forward != nil {
			checked := *req.Forward
			open := &targetPolicy{allowPrivate: true}
			return checked.apply(c.UserContext(), open, &b.Forward)
		}
		return nil
	})
	if err != nil {
		if e, ok := err.(*Error); ok {
			return e
		}
		return storeError(err, "bridge")
	}
	s.log.Info("bridge updated", "account", b.AccountID, "bridge", b.ID)
	if s.opts.Events != nil {
		s.opts.Events.BridgeUpdated(c.UserContext(), b.ID)
	}
	return c.JSON(fiber.Map{"ok": true, "bridge": viewBridge(b)})
}

// deleteBridge deletes one of the caller's bridges and all its data.
func (s *Server) deleteBridge(c *fiber.Ctx) error {
	acct := account(c)
	id := c.Params("id")
	if err := s.opts.Store.DeleteBridge(c.UserContext(), acct.ID, id); err != nil {
		return storeError(err, "bridge")
	}
	s.log.Info("bridge deleted", "account", acct.ID, "bridge", id)
	if s.opts.Events != nil {
		s.opts.Events.BridgeDeleted(c.UserContext(), id)
	}
	return c.JSON(fiber.Map{"ok": true})
}

// rotateWebhookSecret issues a new webhook secret; the old one stays valid
// for the grace period.
func (s *Server) rotateWebhookSecret(c *fiber.Ctx) error {
	grace := s.opts.WebhookSecretGrace
	if len(strings.TrimSpace(string(c.Body()))) > 0 {
		var req rotateSecretRequest
		if err := decodeBody(c, &req); err != nil {
			return err
		}
		if req.GraceSeconds != nil {
			if *req.GraceSeconds < 0 || *req.GraceSeconds > 7*24*3600 {
				return invalidField("graceSeconds", "must be between 0 and 604800 (7 days)")
			}
			grace = time.Duration(*req.GraceSeconds) * time.Second
		}
	}
	secret, err := s.opts.Store.RotateWebhookSecret(c.UserContext(), account(c).ID, c.Params("id"), grace)
	if err != nil {
		return storeError(err, "bridge")
	}
	return c.JSON(fiber.Map{"ok": true, "webhookSecret": secret, "previousSecretValidFor": int64(grace.Seconds())})
}

// sendMessage sends a text message from one of the caller's bridges
// through the reverse proxy.
func (s *Server) sendMessage(c *fiber.Ctx) error {
	var req sendMessageRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !keys.IsAddress(req.To) {
		return invalidField("to", "must be a 0x address of 40 hex digits")
	}
	if err := checkContent("content", req.Content); err != nil {
		return err
	}
	// One statement reads the bridge and takes a send from the
	// account's bucket.
	b, allowed, err := s.opts.Store.BridgeForSend(c.UserContext(), account(c).ID, c.Params("id"), s.sendRate())
	if err != nil {
		return storeError(err, "bridge")
	}
	if !allowed {
		return s.sendRateLimited()
	}
	if b.Status != persistence.StatusActive {
		return errorf(fiber.StatusConflict, CodeBridgeDisabled, "bridge is %s, not active", b.Status)
	}
	id, err := s.send(c, b.ID, req.To, req.Content)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"ok": true, "messageId": id})
}

// sendRate is the token bucket of an account's sends.
func (s *Server) sendRate() persistence.SendRate {
	return persistence.SendRate{PerSecond: s.opts.SendRatePerSecond, Burst: s.opts.SendBurst}
}

// sendRateLimited is the answer to a send over the account's rate. A
// second always refills at least one send.
func (s *Server) sendRateLimited() *Error {
	s.metrics.quotaRefusals.WithLabelValues("sends").Inc()
	return &Error{Status: fiber.StatusTooManyRequests, Code: CodeRateLimited, RetryAfter: 1,
		Message: "too many messages sent per second from this account, try again in a second"}
}

// send hands a message to the Sender, or fails when this node cannot send.
func (s *Server) send(c *fiber.Ctx, bridgeID, to, content string) (string, error) {
	if s.opts.Sender == nil {
		return "", errorf(fiber.StatusServiceUnavailable, CodeSendingDisabled, "sending is not available on this node: it runs no actor runtime")
	}
	id, err := s.opts.Sender.Send(c.UserContext(), bridgeID, to, content)
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, ErrRecipientNotOnNetwork):
		return "", &Error{Status: fiber.StatusUnprocessableEntity, Code: CodeRecipientUnknown, Message: "the recipient is not on the XMTP network", Err: err}
	case errors.Is(err, ErrSendRefused):
		return "", &Error{Status: fiber.StatusUnprocessableEntity, Code: CodePluginRefused, Message: "the bridge's on_send plug-in refused the content", Err: err}
	case errors.Is(err, ErrSendUnavailable):
		return "", &Error{Status: fiber.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1, Message: "the bridge identity is not available now (it may be moving between nodes); try again", Err: err}
	case errors.Is(err, ErrSendOutcomeUnknown):
		return "", &Error{Status: fiber.StatusGatewayTimeout, Code: CodeTimeout, Message: "no answer in time; the message may have been sent", Err: err}
	default:
		return "", &Error{Status: fiber.StatusBadGateway, Code: CodeUnavailable, Message: "the message could not be sent", Err: err}
	}
}

func checkContent(field, content string) error {
	switch {
	case content == "":
		return invalidField(field, "is required")
	case len(content) > maxMessageBytes:
		return invalidField(field, "must be at most 32 KiB")
	case !utf8.ValidString(content):
		return invalidField(field, "must be valid UTF-8 text")
	}
	return nil
}

// deliveryStatuses are the values of the status filter of the delivery
// list.
var deliveryStatuses = []persistence.DeliveryStatus{
	persistence.DeliveryPending, persistence.DeliverySucceeded, persistence.DeliveryFailed, persistence.DeliveryDead,
}

// listDeliveries lists the deliveries of one of the caller's bridges, of
// one status when the status parameter names one.
func (s *Server) listDeliveries(c *fiber.Ctx) error {
	raw := c.Query("status")
	if raw == "" {
		return s.deliveries(c, "", "deliveries")
	}
	for _, st := range deliveryStatuses {
		if raw == string(st) {
			return s.deliveries(c, st, "deliveries")
		}
	}
	return invalidField("status", `must be "pending", "succeeded", "failed" or "dead"`)
}

// listDeadLetters lists the dead letters of one of the caller's bridges.
func (s *Server) listDeadLetters(c *fiber.Ctx) error {
	return s.deliveries(c, persistence.DeliveryDead, "deadLetters")
}

func (s *Server) deliveries(c *fiber.Ctx, status persistence.DeliveryStatus, key string) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	list, next, err := s.opts.Store.ListDeliveries(c.UserContext(), account(c).ID, c.Params("id"), status, p)
	if err != nil {
		return storeError(err, "bridge")
	}
	views, err := s.viewDeliveries(c, list)
	if err != nil {
		return storeError(err, "bridge")
	}
	return c.JSON(fiber.Map{"ok": true, key: views, "nextCursor": next})
}

// replayDeadLetter puts a dead letter of one of the caller's bridges back
// in the delivery queue.
func (s *Server) replayDeadLetter(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("deliveryId"), 10, 64)
	if err != nil || id <= 0 {
		return notFound("dead letter")
	}
	d, err := s.opts.Store.ReplayDeadLetter(c.UserContext(), account(c).ID, c.Params("id"), id)
	if err != nil {
		return storeError(err, "dead letter")
	}
	if s.opts.Events != nil {
		s.opts.Events.DeliveriesQueued(c.UserContext(), d.BridgeID)
	}
	views, err := s.viewDeliveries(c, []persistence.Delivery{d})
	if err != nil {
		return storeError(err, "dead letter")
	}
	return c.JSON(fiber.Map{"ok": true, "delivery": views[0]})
}
