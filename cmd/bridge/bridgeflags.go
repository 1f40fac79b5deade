package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/internal/apiclient"
)

// forwardFlags are the flags of a bridge's forward configuration, shared
// by `bridges create` and `bridges update`. Only the flags given go into
// the request, so an update changes only those.
type forwardFlags struct {
	url         string
	bodyFormat  string
	replyMode   string
	retry       string
	allow, deny []string
	headers     []string
	timeout     time.Duration
	concurrency int
}

func (f *forwardFlags) add(c *cobra.Command) {
	fs := c.Flags()
	fs.StringVar(&f.url, "url", "", "the endpoint each message is forwarded to")
	fs.StringVar(&f.bodyFormat, "body-format", "", "body of the forward request: json or relaycc (default json)")
	fs.StringVar(&f.replyMode, "reply-mode", "", "none, or reply: the endpoint's answer goes back as the XMTP reply (default none)")
	fs.StringVar(&f.retry, "retry", "", "standard: every failure is retried; final4xx: a 4xx answer other than 429 makes a dead letter at once (default standard)")
	fs.StringSliceVar(&f.allow, "allow", nil, "only these sender addresses are forwarded (repeat or comma-separate; --allow= clears)")
	fs.StringSliceVar(&f.deny, "deny", nil, "these sender addresses are never forwarded (repeat or comma-separate; --deny= clears)")
	fs.StringArrayVar(&f.headers, "header", nil, "a header sent with every forward request, 'Name: value' (repeat; replaces them all)")
	fs.DurationVar(&f.timeout, "timeout", 0, "how long one forward request may take, 100ms to 2m (default 10s)")
	fs.IntVar(&f.concurrency, "concurrency", 0, "how many forward requests may run at once, 1 to 1000 (default 8)")
	_ = c.RegisterFlagCompletionFunc("body-format", cobra.FixedCompletions([]string{"json", "relaycc"}, cobra.ShellCompDirectiveNoFileComp))
	_ = c.RegisterFlagCompletionFunc("retry", cobra.FixedCompletions(retryModes, cobra.ShellCompDirectiveNoFileComp))
	_ = c.RegisterFlagCompletionFunc("reply-mode", cobra.FixedCompletions([]string{"none", "reply"}, cobra.ShellCompDirectiveNoFileComp))
}

// change returns the forward change of the flags given, or nil when none
// was given.
func (f *forwardFlags) change(c *cobra.Command) (*apiclient.ForwardChange, error) {
	fs := c.Flags()
	var ch apiclient.ForwardChange
	any := false
	if fs.Changed("url") {
		ch.URL, any = &f.url, true
	}
	if fs.Changed("body-format") {
		ch.BodyFormat, any = &f.bodyFormat, true
	}
	if fs.Changed("reply-mode") {
		ch.ReplyMode, any = &f.replyMode, true
	}
	if fs.Changed("retry") {
		if !contains(retryModes, f.retry) {
			return nil, usagef("--retry %q is not one of %s", f.retry, strings.Join(retryModes, ", "))
		}
		ch.Retry, any = &f.retry, true
	}
	if fs.Changed("allow") {
		list := addresses(f.allow)
		ch.AllowSenders, any = &list, true
	}
	if fs.Changed("deny") {
		list := addresses(f.deny)
		ch.DenySenders, any = &list, true
	}
	if fs.Changed("header") {
		h := map[string]string{}
		for _, kv := range f.headers {
			name, value, ok := strings.Cut(kv, ":")
			if !ok {
				name, value, ok = strings.Cut(kv, "=")
			}
			if !ok || strings.TrimSpace(name) == "" {
				return nil, usagef("--header %q is not 'Name: value'", kv)
			}
			h[strings.TrimSpace(name)] = strings.TrimSpace(value)
		}
		ch.Headers, any = &h, true
	}
	if fs.Changed("timeout") {
		if f.timeout%time.Millisecond != 0 || f.timeout <= 0 {
			return nil, usagef("--timeout %s is not a whole number of milliseconds above 0", f.timeout)
		}
		ms := f.timeout.Milliseconds()
		ch.TimeoutMs, any = &ms, true
	}
	if fs.Changed("concurrency") {
		ch.MaxConcurrency, any = &f.concurrency, true
	}
	if !any {
		return nil, nil
	}
	return &ch, nil
}

var (
	retryModes    = []string{"standard", "final4xx"}
	deliveryModes = []string{"webhook", "live", "both"}
)

// addDeliveryFlag adds --delivery, where a bridge's inbound messages go.
func addDeliveryFlag(c *cobra.Command, v *string) {
	c.Flags().StringVar(v, "delivery", "", "where inbound messages go: webhook (default), live (only `bridge tail` and other live consumers) or both")
	_ = c.RegisterFlagCompletionFunc("delivery", cobra.FixedCompletions(deliveryModes, cobra.ShellCompDirectiveNoFileComp))
}

// deliveryChange returns the --delivery given, or nil.
func deliveryChange(c *cobra.Command, v string) (*string, error) {
	if !c.Flags().Changed("delivery") {
		return nil, nil
	}
	if !contains(deliveryModes, v) {
		return nil, usagef("--delivery %q is not one of %s", v, strings.Join(deliveryModes, ", "))
	}
	return &v, nil
}

// addresses drops the empty entries of a list flag, so --allow= is [].
func addresses(list []string) []string {
	out := []string{}
	for _, a := range list {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// forwardFields are a forward configuration for Fields.
func forwardFields(f apiclient.Forward) []string {
	headers := make([]string, 0, len(f.Headers))
	for name := range f.Headers {
		headers = append(headers, name)
	}
	return []string{
		"url", f.URL,
		"body format", f.BodyFormat,
		"reply mode", f.ReplyMode,
		"retry", f.Retry,
		"timeout", (time.Duration(f.TimeoutMs) * time.Millisecond).String(),
		"concurrency", fmt.Sprint(f.MaxConcurrency),
		"allow", strings.Join(f.AllowSenders, ", "),
		"deny", strings.Join(f.DenySenders, ", "),
		"headers", strings.Join(headers, ", "),
	}
}
