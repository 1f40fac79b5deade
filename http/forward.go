package http

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// Limits of a forward handler configuration.
const (
	minTimeoutMs        = 100
	maxTimeoutMs        = 120_000
	defaultTimeoutMs    = 10_000
	maxConcurrency      = 1000
	defaultConcurrency  = 64
	maxForwardHeaders   = 20
	maxHeaderValueBytes = 1024
	maxSenderList       = 1000
)

// forwardRequest is a forward handler configuration in a request. Absent
// fields keep their current value (or the default, on create).
type forwardRequest struct {
	URL            *string            `json:"url"`
	BodyFormat     *string            `json:"bodyFormat"`
	ReplyMode      *string            `json:"replyMode"`
	Retry          *string            `json:"retry"`
	TimeoutMs      *int64             `json:"timeoutMs"`
	MaxConcurrency *int               `json:"maxConcurrency"`
	Headers        *map[string]string `json:"headers"`
	AllowSenders   *[]string          `json:"allowSenders"`
	DenySenders    *[]string          `json:"denySenders"`
}

// defaultForward is the configuration a new bridge starts from.
func defaultForward() persistence.ForwardConfig {
	return persistence.ForwardConfig{
		BodyFormat: persistence.FormatJSON, ReplyMode: persistence.ReplyNone, Retry: persistence.RetryStandard,
		Timeout: defaultTimeoutMs * time.Millisecond, MaxConcurrency: defaultConcurrency,
		Headers: map[string]string{}, AllowSenders: []string{}, DenySenders: []string{},
	}
}

// apply validates the present fields of r and writes them into cfg.
func (r *forwardRequest) apply(ctx context.Context, policy *targetPolicy, cfg *persistence.ForwardConfig) error {
	if r.URL != nil {
		if err := policy.check(ctx, "forward.url", *r.URL); err != nil {
			return err
		}
		cfg.URL = *r.URL
	}
	if r.BodyFormat != nil {
		f := persistence.BodyFormat(*r.BodyFormat)
		if f != persistence.FormatJSON && f != persistence.FormatRelaycc {
			return invalidField("forward.bodyFormat", `must be "json" or "relaycc"`)
		}
		cfg.BodyFormat = f
	}
	if r.ReplyMode != nil {
		m := persistence.ReplyMode(*r.ReplyMode)
		if m != persistence.ReplyNone && m != persistence.ReplyReply {
			return invalidField("forward.replyMode", `must be "none" or "reply"`)
		}
		cfg.ReplyMode = m
	}
	if r.Retry != nil {
		m := persistence.RetryMode(*r.Retry)
		if m != persistence.RetryStandard && m != persistence.RetryFinal4xx {
			return invalidField("forward.retry", `must be "standard" or "final4xx"`)
		}
		cfg.Retry = m
	}
	if r.TimeoutMs != nil {
		if *r.TimeoutMs < minTimeoutMs || *r.TimeoutMs > maxTimeoutMs {
			return invalidField("forward.timeoutMs", fmt.Sprintf("must be between %d and %d", minTimeoutMs, maxTimeoutMs))
		}
		cfg.Timeout = time.Duration(*r.TimeoutMs) * time.Millisecond
	}
	if r.MaxConcurrency != nil {
		if *r.MaxConcurrency < 1 || *r.MaxConcurrency > maxConcurrency {
			return invalidField("forward.maxConcurrency", fmt.Sprintf("must be between 1 and %d", maxConcurrency))
		}
		cfg.MaxConcurrency = *r.MaxConcurrency
	}
	if r.Headers != nil {
		if err := checkHeaders(*r.Headers); err != nil {
			return err
		}
		cfg.Headers = *r.Headers
		if cfg.Headers == nil {
			cfg.Headers = map[string]string{}
		}
	}
	if r.AllowSenders != nil {
		list, err := checkAddressList("forward.allowSenders", *r.AllowSenders)
		if err != nil {
			return err
		}
		cfg.AllowSenders = list
	}
	if r.DenySenders != nil {
		list, err := checkAddressList("forward.denySenders", *r.DenySenders)
		if err != nil {
			return err
		}
		cfg.DenySenders = list
	}
	return nil
}

func checkHeaders(h map[string]string) error {
	if len(h) > maxForwardHeaders {
		return invalidField("forward.headers", fmt.Sprintf("may hold at most %d headers", maxForwardHeaders))
	}
	for name, value := range h {
		if !isToken(name) {
			return invalidField("forward.headers", fmt.Sprintf("has an invalid header name %q", name))
		}
		if webhook.ReservedHeader(name) {
			return invalidField("forward.headers", fmt.Sprintf("may not set %s, which the bridge sets itself", name))
		}
		if len(value) > maxHeaderValueBytes || strings.ContainsAny(value, "\r\n\x00") {
			return invalidField("forward.headers", fmt.Sprintf("value of %s must be one line of at most %d bytes", name, maxHeaderValueBytes))
		}
	}
	return nil
}

// isToken reports whether s is an HTTP header field name (RFC 9110 token).
func isToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func checkAddressList(field string, list []string) ([]string, error) {
	if len(list) > maxSenderList {
		return nil, invalidField(field, fmt.Sprintf("may hold at most %d addresses", maxSenderList))
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		if !keys.IsAddress(a) {
			return nil, invalidField(field, fmt.Sprintf("holds %q, which is not a 0x address of 40 hex digits", a))
		}
		out = append(out, a)
	}
	return out, nil
}
