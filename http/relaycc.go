package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// relayccAccount is the system account that owns bridges created through
// the relaycc-compatible /signup.
const relayccAccount = "relaycc"

// relayccSignupRequest is the body of POST /signup.
type relayccSignupRequest struct {
	Key            string                 `json:"key"`
	ForwardHandler *relayccForwardHandler `json:"forwardHandler"`
}

type relayccForwardHandler struct {
	HTTPURL string `json:"httpUrl"`
	IsBot   bool   `json:"isBot"`
}

// relayccHookRequest is the body of POST /hook.
type relayccHookRequest struct {
	SendFromBridgeAddress string `json:"sendFromBridgeAddress"`
	TargetAddress         string `json:"targetAddress"`
	Message               string `json:"message"`
	Token                 string `json:"token"`
}

// relayccInstanceRequest is the body of POST /instance.
type relayccInstanceRequest struct {
	Key           string `json:"key"`
	BridgeAddress string `json:"bridgeAddress"`
}

// relayccCanaryRequest is the body of POST /canary. The forward handler
// posts whole decoded messages here, so unknown fields are allowed.
type relayccCanaryRequest struct {
	Message *struct {
		Content *string `json:"content"`
	} `json:"message"`
}

// relayccSignup creates a bridge under the relaycc system account and
// returns its address and hook token.
func (s *Server) relayccSignup(c *fiber.Ctx) error {
	var req relayccSignupRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !secretEqual(req.Key, s.opts.SignupKey) {
		return unauthorized("invalid key")
	}
	if req.ForwardHandler == nil {
		return invalidField("forwardHandler", "is required")
	}
	if err := s.targets.check(c.UserContext(), "forwardHandler.httpUrl", req.ForwardHandler.HTTPURL); err != nil {
		return err
	}
	cfg := defaultForward()
	cfg.URL = req.ForwardHandler.HTTPURL
	cfg.BodyFormat = persistence.FormatRelaycc
	if req.ForwardHandler.IsBot {
		cfg.ReplyMode = persistence.ReplyReply
	}
	acct, err := s.opts.Store.EnsureSystemAccount(c.UserContext(), relayccAccount)
	if err != nil {
		return internal(err)
	}
	address, bundle, err := newIdentity()
	if err != nil {
		return internal(err)
	}
	b, secrets, err := s.opts.Store.CreateBridge(c.UserContext(), persistence.NewBridge{
		AccountID: acct.ID, Address: address, KeyBundle: bundle, Forward: cfg, IssueHookToken: true,
	})
	if err != nil {
		return storeError(err, "bridge")
	}
	s.log.Info("relaycc bridge created", "bridge", b.ID, "address", b.Address)
	s.bridgeCreated(c, b.ID)
	// webhookSecret is not in the relaycc response; relaycc clients ignore
	// it, and targets use it to check the Standard Webhooks signature.
	return c.JSON(fiber.Map{"ok": true, "ethAddress": b.Address, "hookToken": secrets.HookToken, "webhookSecret": secrets.WebhookSecret})
}

// relayccHook sends a message from a bridge. The token must be the
// bridge's hook token (see authorizeBridge).
func (s *Server) relayccHook(c *fiber.Ctx) error {
	var req relayccHookRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !keys.IsAddress(req.SendFromBridgeAddress) {
		return invalidField("sendFromBridgeAddress", "must be a 0x address of 40 hex digits")
	}
	if !keys.IsAddress(req.TargetAddress) {
		return invalidField("targetAddress", "must be a 0x address of 40 hex digits")
	}
	if err := checkContent("message", req.Message); err != nil {
		return err
	}
	b, err := s.authorizeBridge(c, req.Token, req.SendFromBridgeAddress)
	if err != nil {
		return err
	}
	if b.Status != persistence.StatusActive {
		return errorf(fiber.StatusConflict, CodeBridgeDisabled, "bridge is %s, not active", b.Status)
	}
	// Every relaycc bridge belongs to the one relaycc account, so each
	// has a send bucket of its own.
	allowed, err := s.opts.Store.TakeSend(c.UserContext(), b.ID, s.sendRate())
	if err != nil {
		return internal(err)
	}
	if !allowed {
		return s.sendRateLimited()
	}
	id, err := s.send(c, b.ID, req.TargetAddress, req.Message)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{
		"ok":                true,
		"forwardedToBridge": b.Address,
		"forwardedMessage":  fiber.Map{"id": id, "content": req.Message, "recipientAddress": req.TargetAddress},
	})
}

// relayccInstance reports a bridge's status. The key must be the bridge's
// hook token (see authorizeBridge).
func (s *Server) relayccInstance(c *fiber.Ctx) error {
	var req relayccInstanceRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !keys.IsAddress(req.BridgeAddress) {
		return invalidField("bridgeAddress", "must be a 0x address of 40 hex digits")
	}
	b, err := s.authorizeBridge(c, req.Key, req.BridgeAddress)
	if err != nil {
		return err
	}
	status := string(b.Status)
	var live Instance
	if s.opts.Instances != nil {
		live, err = s.opts.Instances.InstanceStatus(c.UserContext(), b.ID)
		if err != nil {
			return internal(err)
		}
	}
	instance := fiber.Map{
		"ethAddress": b.Address,
		"status":     status,
		"forwardHandler": fiber.Map{
			"httpUrl": b.Forward.URL,
			"isBot":   b.Forward.ReplyMode == persistence.ReplyReply,
		},
	}
	if live.Live != "" {
		instance["live"] = live.Live
	}
	if live.Node != "" {
		instance["node"] = live.Node
	}
	if !live.Since.IsZero() {
		instance["liveSince"] = live.Since.UTC().Format(time.RFC3339Nano)
	}
	return c.JSON(fiber.Map{"ok": true, "instance": instance})
}

// tokenWindow is the window failed /hook and /instance token attempts are
// counted in.
const tokenWindow = time.Minute

// wrongToken is the one answer to every token that does not authorize the
// request: missing, unknown, another bridge's, the signup key where it does
// not count, or any token for an address that has no bridge. None of them
// tells the caller more than another.
func wrongToken() *Error {
	return unauthorized("invalid token for this bridge address")
}

// authorizeBridge finds the bridge at address for a /hook or /instance
// request whose token is secret. The token must be the bridge's hook token
// or, only with the RelayccSharedKey setting and only for a bridge made by
// relaycc /signup, the signup key. The failures of each client address
// are counted in Postgres, and a client with too many in the current
// window is refused with 429 before its token is looked at.
func (s *Server) authorizeBridge(c *fiber.Ctx, secret, address string) (persistence.Bridge, error) {
	ctx := c.UserContext()
	client := c.IP()
	n, err := s.opts.Store.TokenFailures(ctx, client, tokenWindow)
	if err != nil {
		return persistence.Bridge{}, &Error{Status: fiber.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1,
			Message: "the token cannot be checked now, try again", Err: err}
	}
	if n >= s.opts.TokenFailuresPerMinute {
		s.metrics.tokenFailures.WithLabelValues("limited").Inc()
		return persistence.Bridge{}, &Error{Status: fiber.StatusTooManyRequests, Code: CodeRateLimited, RetryAfter: retryAfterWindow(tokenWindow),
			Message: "too many failed token attempts from this address, try again in a minute"}
	}
	b, ok, err := s.matchBridge(c, secret, address)
	if err != nil {
		return b, internal(err)
	}
	if ok {
		return b, nil
	}
	s.metrics.tokenFailures.WithLabelValues("refused").Inc()
	if _, err := s.opts.Store.RecordTokenFailure(ctx, client, tokenWindow); err != nil {
		return persistence.Bridge{}, internal(err)
	}
	return persistence.Bridge{}, wrongToken()
}

// matchBridge reports whether secret authorizes the bridge at address.
func (s *Server) matchBridge(c *fiber.Ctx, secret, address string) (persistence.Bridge, bool, error) {
	ctx := c.UserContext()
	if secret == "" {
		return persistence.Bridge{}, false, nil
	}
	b, err := s.opts.Store.BridgeByHookToken(ctx, secret)
	switch {
	case err == nil && strings.EqualFold(b.Address, address):
		return b, true, nil
	case err != nil && !errors.Is(err, persistence.ErrNotFound):
		return b, false, err
	}
	if !s.opts.RelayccSharedKey || !secretEqual(secret, s.opts.SignupKey) {
		return persistence.Bridge{}, false, nil
	}
	b, err = s.opts.Store.BridgeByAddress(ctx, address)
	if errors.Is(err, persistence.ErrNotFound) {
		return b, false, nil
	}
	if err != nil {
		return b, false, err
	}
	owner, err := s.opts.Store.GetAccount(ctx, b.AccountID)
	if err != nil {
		return b, false, err
	}
	return b, owner.SystemName == relayccAccount, nil
}

// retryAfterWindow is the number of whole seconds until the current fixed
// window of length w ends, at least 1.
func retryAfterWindow(w time.Duration) int {
	secs := int64(w / time.Second)
	left := secs - time.Now().Unix()%secs
	if left < 1 {
		left = 1
	}
	return int(left)
}

// relayccCanary echoes the canary message, proving the path from XMTP
// through a bridge to this HTTP endpoint.
func (s *Server) relayccCanary(c *fiber.Ctx) error {
	var req relayccCanaryRequest
	if err := decodeLenient(c.Body(), &req); err != nil {
		return err
	}
	if req.Message == nil || req.Message.Content == nil {
		return invalidField("message.content", "is required")
	}
	return c.JSON(fiber.Map{"ok": true, "data": "Hello from the proxied server! Your message was: " + *req.Message.Content})
}

// decodeLenient decodes one JSON object like decodeStrict but allows
// unknown fields.
func decodeLenient(body []byte, v any) *Error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return errorf(fiber.StatusBadRequest, CodeInvalidJSON, "request body is empty: send a JSON object")
	}
	if trimmed[0] != '{' {
		return errorf(fiber.StatusBadRequest, CodeInvalidJSON, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return errorf(fiber.StatusBadRequest, CodeInvalidJSON, "request body has data after the JSON object")
	}
	return nil
}
