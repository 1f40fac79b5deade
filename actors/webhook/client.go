package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/xmtpbridge/bridge/actors/egress"
)

// DefaultMaxResponseBytes bounds how much of a response body is read.
const DefaultMaxResponseBytes = 1 << 20

// defaultMaxRedirects is how many redirects a delivery follows unless
// ClientOptions says otherwise.
const defaultMaxRedirects = 3

var (
	// ErrBlockedAddress means the target (or a redirect) resolved to a
	// loopback, private, link-local or otherwise internal address while
	// private targets are not allowed.
	ErrBlockedAddress = errors.New("target address is not allowed")
	// ErrTooManyRedirects means the target redirected more often than
	// allowed, or redirected when redirects are refused.
	ErrTooManyRedirects = errors.New("too many redirects")
	// ErrResponseTooLarge means a response body was larger than the limit.
	ErrResponseTooLarge = errors.New("response body too large")
)

// ClientOptions configures the HTTP client deliveries go through.
type ClientOptions struct {
	// AllowPrivate lets deliveries reach loopback, private and link-local
	// addresses (development only).
	AllowPrivate bool
	// AllowPrefixes are internal addresses reachable even when
	// AllowPrivate is false: an operator's internal receivers, or a
	// test's own server.
	AllowPrefixes []netip.Prefix
	// MaxRedirects is how many redirects are followed; 0 means 3 and a
	// negative value refuses every redirect. Each hop is checked again at
	// dial time.
	MaxRedirects int
	// Resolver resolves target names; nil means the system resolver.
	// Whatever it answers, the address dialled is checked.
	Resolver *net.Resolver
	// DialTimeout bounds connecting; default 10s. The whole delivery is
	// bounded by the endpoint's timeout.
	DialTimeout time.Duration
}

// dialGuard refuses connections to addresses that are not public.
type dialGuard struct {
	allowPrivate bool
	allow        []netip.Prefix
}

// control is a net.Dialer Control function: it sees the address actually
// dialled, after DNS, so a name that resolves to an internal address
// (DNS rebinding, a redirect) is refused.
func (g dialGuard) control(_, address string, _ syscall.RawConn) error {
	if g.allowPrivate {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("check address %s: %w", address, ErrBlockedAddress)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("check address %s: %w", address, ErrBlockedAddress)
	}
	ip = ip.Unmap()
	if egress.PublicAddr(ip) {
		return nil
	}
	for _, p := range g.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	return fmt.Errorf("connect to %s: %w", ip, ErrBlockedAddress)
}

// NewClient returns an HTTP client for deliveries to untrusted endpoints:
// internal addresses are refused when connecting, redirects are limited and
// re-checked, no proxy from the environment is used, and response headers
// are bounded. Response bodies are bounded by the Deliverer.
func NewClient(o ClientOptions) *http.Client {
	dialTimeout := o.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = 10 * time.Second
	}
	guard := dialGuard{allowPrivate: o.AllowPrivate, allow: append([]netip.Prefix(nil), o.AllowPrefixes...)}
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second, Control: guard.control, Resolver: o.Resolver}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    64, // a bridge's default concurrency: a busy endpoint keeps its connections
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	maxRedirects := o.MaxRedirects
	if maxRedirects == 0 {
		maxRedirects = defaultMaxRedirects
	}
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if maxRedirects < 0 || len(via) > maxRedirects {
				return fmt.Errorf("follow redirect: %w", ErrTooManyRedirects)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("follow redirect to scheme %q: %w", req.URL.Scheme, ErrBlockedAddress)
			}
			return nil
		},
	}
}
