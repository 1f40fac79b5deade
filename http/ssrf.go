package http

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/xmtpbridge/bridge/actors/egress"
)

// resolveTimeout bounds the DNS lookup of a forward URL's host.
const resolveTimeout = 5 * time.Second

// targetPolicy decides whether a forward URL may be called.
type targetPolicy struct {
	allowPrivate bool
	resolver     *net.Resolver
}

// check validates a forward URL: http or https, a host, no credentials, and
// (unless private targets are allowed) every address of the host public.
// field names the request field in the error.
func (p *targetPolicy) check(ctx context.Context, field, raw string) error {
	if len(raw) > 2048 {
		return invalidField(field, "must be at most 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalidField(field, "is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalidField(field, "must be an http or https URL")
	}
	if u.User != nil {
		return invalidField(field, "must not contain credentials; use forward headers instead")
	}
	host := u.Hostname()
	if host == "" {
		return invalidField(field, "has no host")
	}
	if u.Fragment != "" {
		return invalidField(field, "must not contain a fragment")
	}
	if port := u.Port(); port != "" {
		if n, err := parsePort(port); err != nil || n == 0 {
			return invalidField(field, "has an invalid port")
		}
	}
	if p.allowPrivate {
		return nil
	}
	addrs, err := p.resolve(ctx, host)
	if err != nil {
		return &Error{Status: fiber.StatusBadRequest, Code: CodeUnsafeTarget,
			Message: fmt.Sprintf("%s host %q does not resolve", field, host), Err: err}
	}
	for _, a := range addrs {
		if !egress.PublicAddr(a) {
			return errorf(fiber.StatusBadRequest, CodeUnsafeTarget,
				"%s points at a private, loopback or otherwise internal address (%s), which is not allowed", field, a)
		}
	}
	return nil
}

func (p *targetPolicy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{ip}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := p.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, errors.New("resolve " + host + ": no addresses")
	}
	return addrs, nil
}

func parsePort(s string) (int, error) {
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + int(r-'0')
		if n > 65535 {
			return 0, errors.New("out of range")
		}
	}
	return n, nil
}
