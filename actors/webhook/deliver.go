// Package webhook delivers one inbound XMTP message to a bridge owner's
// HTTP endpoint and reads the reply: the relaycc and json bodies, Standard
// Webhooks signatures, an HTTP client that refuses internal addresses when
// it connects, bounded responses, classification of the outcome and the
// retry schedule. It keeps no state between deliveries; the forward
// handler records attempts and schedules retries with RetryPolicy.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultUserAgent is the user-agent of deliveries unless configured.
const DefaultUserAgent = "xmtp-bridge-webhook/1"

// DefaultTimeout bounds a delivery whose endpoint sets no timeout.
const DefaultTimeout = 10 * time.Second

// drainBytes is how much of an unused response body is read so that the
// connection can be reused.
const drainBytes = 4 << 10

// ErrInvalidEndpoint means an endpoint's URL is not an absolute http or
// https URL, or it has no signing secret.
var ErrInvalidEndpoint = errors.New("invalid endpoint")

// reservedHeaders are headers the bridge sets itself or that control the
// connection; an endpoint's extra headers may not set them.
var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "content-type": true, "transfer-encoding": true, "connection": true,
	"keep-alive": true, "te": true, "trailer": true, "upgrade": true, "proxy-authorization": true,
	"proxy-authenticate": true, "proxy-connection": true, "user-agent": true, "idempotency-key": true,
	HeaderID: true, HeaderTimestamp: true, HeaderSignature: true,
}

// ReservedHeader reports whether name (any case) is a header the bridge
// sets itself or that controls the connection, which an endpoint's extra
// headers may not set. The API refuses such headers when they are saved;
// the deliverer skips them again when it sends.
func ReservedHeader(name string) bool { return reservedHeaders[strings.ToLower(name)] }

// Endpoint is where and how a bridge's messages are delivered.
type Endpoint struct {
	// URL is the absolute http or https URL deliveries are POSTed to.
	URL string
	// Format is the body format.
	Format Format
	// Reply says whether the response carries a reply to send back.
	Reply bool
	// Headers are extra headers; reserved ones (webhook-*, hop-by-hop,
	// host, content-type, user-agent) are ignored.
	Headers map[string]string
	// Secrets sign the delivery: the current secret first, then
	// rotated-out secrets still in their grace period.
	Secrets []Secret
	// Timeout bounds the whole attempt, reading the response included;
	// zero means DefaultTimeout.
	Timeout time.Duration
	// KeepResponse makes a 2xx attempt return the response's headers and
	// body (bounded like a reply) in Result.Header and Result.Body instead
	// of reading a reply from it, for an on_response plug-in.
	KeepResponse bool
}

// Result is the outcome of one delivery attempt.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status, or 0 when there was no response.
	Status int
	// Reply is the reply to send back, when HasReply.
	Reply    string
	HasReply bool
	// RetryAfter is the target's Retry-After (uncapped), or 0.
	RetryAfter time.Duration
	// Latency is the time from sending to having read the response.
	Latency time.Duration
	// Err says what went wrong, for logs and the delivery record; nil on
	// success. It never holds a secret.
	Err error
	// Header and Body are the response's, when Endpoint.KeepResponse.
	Header http.Header
	Body   []byte
}

// Config configures a Deliverer.
type Config struct {
	// Client sends the requests; nil means NewClient(ClientOptions{}).
	Client *http.Client
	// Metrics counts attempts; nil counts nothing.
	Metrics *Metrics
	// Logger gets one debug record per attempt; nil means slog.Default().
	Logger *slog.Logger
	// UserAgent is the user-agent header; "" means DefaultUserAgent.
	UserAgent string
	// MaxResponseBytes bounds a response body; 0 means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Now is the clock of webhook-timestamp; nil means time.Now.
	Now func() time.Time
}

// Deliverer sends deliveries. It is safe for concurrent use.
type Deliverer struct {
	client    *http.Client
	metrics   *Metrics
	log       *slog.Logger
	userAgent string
	maxBody   int64
	now       func() time.Time
	urls      urlCache
}

// NewDeliverer returns a Deliverer for cfg.
func NewDeliverer(cfg Config) *Deliverer {
	d := &Deliverer{client: cfg.Client, metrics: cfg.Metrics, log: cfg.Logger, userAgent: cfg.UserAgent,
		maxBody: cfg.MaxResponseBytes, now: cfg.Now}
	if d.client == nil {
		d.client = NewClient(ClientOptions{})
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.userAgent == "" {
		d.userAgent = DefaultUserAgent
	}
	if d.maxBody <= 0 {
		d.maxBody = DefaultMaxResponseBytes
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d
}

// NewRequest builds the signed POST of m to ep, timestamped now.
func (d *Deliverer) NewRequest(ctx context.Context, ep Endpoint, m Message) (*http.Request, error) {
	signed := false
	for _, s := range ep.Secrets {
		signed = signed || s.Valid()
	}
	body, bodyErr := EncodeBody(ep.Format, m)
	// The URL is checked before anything else. An endpoint's URL is
	// parsed once and kept (urlCache): each request gets its own copy.
	u, ok := d.urls.get(ep.URL)
	if !ok {
		return nil, fmt.Errorf("build delivery: %w: url must be absolute http or https", ErrInvalidEndpoint)
	}
	// An empty URL parses without work; the request's URL (its own copy)
	// and Host are then the endpoint's, as NewRequestWithContext would
	// set them.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build delivery: %w", err)
	}
	*req.URL, req.Host = u.u, u.host
	if !signed {
		return nil, fmt.Errorf("build delivery: %w: no signing secret", ErrInvalidEndpoint)
	}
	if bodyErr != nil {
		return nil, fmt.Errorf("build delivery: %w", bodyErr)
	}
	for name, value := range ep.Headers {
		if reservedHeaders[strings.ToLower(name)] || strings.ContainsAny(value, "\r\n\x00") {
			continue
		}
		req.Header.Set(name, value)
	}
	ts := d.now().Unix()
	// The five headers share one backing array.
	vals := [...]string{"application/json", d.userAgent, m.ID, strconv.FormatInt(ts, 10), Sign(m.ID, ts, body, ep.Secrets...)}
	own := vals[:]
	req.Header["Content-Type"] = own[0:1:1]
	req.Header["User-Agent"] = own[1:2:2]
	req.Header[HeaderID] = own[2:3:3]
	req.Header[HeaderTimestamp] = own[3:4:4]
	req.Header[HeaderSignature] = own[4:5:5]
	return req, nil
}

// Deliver POSTs m to ep once and classifies the result. It never panics on
// what the endpoint does, and it returns after at most ep.Timeout.
func (d *Deliverer) Deliver(ctx context.Context, ep Endpoint, m Message) Result {
	timeout := ep.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// A caller that already bounds the attempt as tightly (the forward
	// handler does) needs no second timer.
	if deadline, ok := ctx.Deadline(); !ok || time.Until(deadline) > timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	r := d.attempt(ctx, ep, m)
	d.metrics.observe(r)
	if d.log.Enabled(ctx, slog.LevelDebug) {
		d.log.Debug("webhook delivery attempted", "message", m.ID, "outcome", string(r.Outcome),
			"status", r.Status, "latency", r.Latency, "error", r.Err)
	}
	return r
}

func (d *Deliverer) attempt(ctx context.Context, ep Endpoint, m Message) Result {
	req, err := d.NewRequest(ctx, ep, m)
	if err != nil {
		return Result{Outcome: OutcomeInvalid, Err: err}
	}
	start := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		r := Result{Outcome: OutcomeRetry, Latency: time.Since(start), Err: fmt.Errorf("post delivery: %w", scrubURL(err))}
		if errors.Is(err, ErrBlockedAddress) || errors.Is(err, ErrTooManyRedirects) {
			r.Outcome = OutcomeBlocked
		}
		return r
	}
	defer resp.Body.Close()
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		// Go's client reads any three digits as a status; HTTP defines
		// 100 to 599. A response outside them is a broken endpoint's,
		// retried like a broken connection, and its code is not kept as
		// a status.
		_, _ = io.CopyN(io.Discard, resp.Body, drainBytes)
		return Result{Outcome: OutcomeRetry, Latency: time.Since(start),
			Err: fmt.Errorf("post delivery: endpoint answered %d, not an HTTP status", resp.StatusCode)}
	}
	r := Result{Status: resp.StatusCode, Outcome: classifyStatus(resp.StatusCode)}
	if v := resp.Header.Get("Retry-After"); v != "" {
		if after, ok := ParseRetryAfter(v, d.now()); ok {
			r.RetryAfter = after
		}
	}
	if r.Outcome != OutcomeDelivered || (!ep.Reply && !ep.KeepResponse) {
		_, _ = io.CopyN(io.Discard, resp.Body, drainBytes)
		r.Latency = time.Since(start)
		if r.Outcome != OutcomeDelivered {
			r.Err = fmt.Errorf("post delivery: endpoint answered %d", resp.StatusCode)
		}
		return r
	}
	body, err := readLimited(resp.Body, d.maxBody, resp.ContentLength)
	r.Latency = time.Since(start)
	if err != nil {
		if errors.Is(err, ErrResponseTooLarge) {
			r.Outcome, r.Err = OutcomeBadReply, fmt.Errorf("read reply: %w", err)
			return r
		}
		// The response broke off or timed out: the endpoint may not have
		// finished, so try again.
		r.Outcome, r.Err = OutcomeRetry, fmt.Errorf("read reply: %w", scrubURL(err))
		return r
	}
	if ep.KeepResponse {
		r.Header, r.Body = resp.Header.Clone(), body
		return r
	}
	switch ep.Format {
	case FormatRelaycc:
		r.Reply, r.HasReply, err = DecodeRelayccReply(body)
	default:
		r.Reply, r.HasReply, err = DecodeJSONReply(resp.Header.Get("Content-Type"), body)
	}
	if err != nil {
		r.Outcome, r.Err = OutcomeBadReply, err
	}
	return r
}

// readLimited reads r to its end, failing with ErrResponseTooLarge as soon
// as more than limit bytes arrive. size, the body's declared length (-1
// if unknown), sizes the first buffer, up to hintBytes: the usual reply
// is read into one allocation of its own length, and a length declared
// by an endpoint that never sends its body allocates little. Whatever
// the declared length, no more than limit+1 bytes are read.
func readLimited(r io.Reader, limit, size int64) ([]byte, error) {
	first := int64(512)
	if size >= 0 {
		// One byte more than declared, for the read that finds the end.
		first = min(size+1, hintBytes)
	}
	buf := make([]byte, 0, min(first, limit+1))
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(int64(cap(buf)), limit+1-int64(len(buf)))))
		}
		n, err := r.Read(buf[len(buf):min(int64(cap(buf)), limit+1)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, fmt.Errorf("read more than %d bytes: %w", limit, ErrResponseTooLarge)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// hintBytes bounds the first buffer readLimited allocates on the word
// of a declared length.
const hintBytes = 64 << 10

// scrubURL drops the URL from a client error: an owner's URL may carry a
// token in its query.
func scrubURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
