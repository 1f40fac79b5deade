package http

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/xmtpbridge/bridge/persistence"
)

// Error is an error answered to the client: an HTTP status, a stable
// machine-readable code and a message safe to show. The single error
// handler writes it as {"ok": false, "error": Message, "code": Code}.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when above 0, is sent as the Retry-After header, in
	// seconds.
	RetryAfter int
	// Err is the cause, logged for 5xx answers and never sent.
	Err error
}

// Error returns the client-facing message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// The stable error codes. ErrorCodes lists them all; a test keeps that
// list, these constants, every code the package's source can answer with
// and the Error schema of openapi.json equal.
const (
	CodeBadRequest       = "bad_request"
	CodeInvalidJSON      = "invalid_json"
	CodeUnknownField     = "unknown_field"
	CodeWrongType        = "wrong_type"
	CodeInvalidField     = "invalid_field"
	CodeBodyTooLarge     = "body_too_large"
	CodeHeadersTooLarge  = "headers_too_large"
	CodeUnsafeTarget     = "unsafe_target"
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeMethodNotAllow   = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeRateLimited      = "rate_limited"
	CodeQuotaExceeded    = "quota_exceeded"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
	CodeInvalidCursor    = "invalid_cursor"
	CodeBridgeDisabled   = "bridge_disabled"
	CodeSignupClosed     = "signup_closed"
	CodeAdminDisabled    = "admin_disabled"
	CodeSendingDisabled  = "sending_unavailable"
	CodeRecipientUnknown = "recipient_unknown"
	CodeTimeout          = "timeout"
	CodeRequestTimeout   = "request_timeout"

	CodePluginNotWasm       = "plugin_not_wasm"
	CodePluginInvalid       = "plugin_invalid"
	CodePluginMissingExport = "plugin_missing_export"
	CodePluginBound         = "plugin_bound"
	CodePluginRefused       = "plugin_refused"
	CodeLiveDisabled        = "live_disabled"
	CodeUpgradeRequired     = "upgrade_required"
)

// ErrorCodes is every code the API answers with, in the order of the Error
// schema's enum in openapi.json.
var ErrorCodes = []string{
	CodeBadRequest, CodeInvalidJSON, CodeUnknownField, CodeWrongType, CodeInvalidField,
	CodeBodyTooLarge, CodeHeadersTooLarge, CodeUnsafeTarget, CodeUnauthorized, CodeNotFound,
	CodeMethodNotAllow, CodeConflict, CodeRateLimited, CodeQuotaExceeded, CodeUnavailable,
	CodeInternal, CodeInvalidCursor, CodeBridgeDisabled, CodeSignupClosed, CodeAdminDisabled,
	CodeSendingDisabled, CodeRecipientUnknown, CodeTimeout, CodeRequestTimeout,
	CodePluginNotWasm, CodePluginInvalid, CodePluginMissingExport, CodePluginBound, CodePluginRefused,
	CodeLiveDisabled, CodeUpgradeRequired,
}

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *Error {
	return errorf(fiber.StatusBadRequest, CodeBadRequest, format, args...)
}

func invalidField(field, problem string) *Error {
	return errorf(fiber.StatusBadRequest, CodeInvalidField, "%s %s", field, problem)
}

func unauthorized(msg string) *Error {
	return errorf(fiber.StatusUnauthorized, CodeUnauthorized, "%s", msg)
}

func notFound(what string) *Error {
	return errorf(fiber.StatusNotFound, CodeNotFound, "%s not found", what)
}

func internal(err error) *Error {
	return &Error{Status: fiber.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
}

// storeError turns a store error into an answer; what names the resource.
func storeError(err error, what string) *Error {
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return notFound(what)
	case errors.Is(err, persistence.ErrConflict):
		return errorf(fiber.StatusConflict, CodeConflict, "%s already exists", what)
	case errors.Is(err, persistence.ErrInvalidCursor):
		return errorf(fiber.StatusBadRequest, CodeInvalidCursor, "cursor is not valid")
	case errors.Is(err, persistence.ErrQuotaExceeded):
		return &Error{Status: fiber.StatusTooManyRequests, Code: CodeQuotaExceeded, RetryAfter: 60,
			Message: "the account holds as many " + what + "s as its quota allows; delete one first"}
	case errors.Is(err, persistence.ErrInvalid):
		return errorf(fiber.StatusBadRequest, CodeInvalidField, "%s has a value out of range", what)
	}
	return internal(err)
}

// handleError is the one place errors become responses. Every code has
// the same status on every route, the relaycc ones included.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		var fe *fiber.Error
		if errors.As(err, &fe) {
			e = fiberError(fe)
		} else {
			e = internal(err)
		}
	}
	status := e.Status
	if e.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(e.RetryAfter))
	}
	if status >= 500 && e.Err != nil {
		s.log.Error("request failed", "method", c.Method(), "path", c.Path(), "status", status, "code", e.Code, "err", e.Err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).JSON(fiber.Map{"ok": false, "error": e.Message, "code": e.Code})
}

// fiberError maps Fiber's own errors (routing, body limit) to answers.
func fiberError(fe *fiber.Error) *Error {
	switch fe.Code {
	case fiber.StatusNotFound:
		return errorf(fe.Code, CodeNotFound, "no such route")
	case fiber.StatusMethodNotAllowed:
		return errorf(fe.Code, CodeMethodNotAllow, "method not allowed")
	case fiber.StatusRequestEntityTooLarge:
		return errorf(fe.Code, CodeBodyTooLarge, "request body is too large")
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return errorf(fe.Code, CodeHeadersTooLarge, "request headers are too large")
	case fiber.StatusRequestTimeout:
		return errorf(fe.Code, CodeRequestTimeout, "the request was not received in time")
	case fiber.StatusTooManyRequests:
		return errorf(fe.Code, CodeRateLimited, "too many requests, try again later")
	}
	if fe.Code >= 500 {
		return internal(fe)
	}
	return errorf(fe.Code, CodeBadRequest, "%s", strings.ToLower(fe.Message))
}
