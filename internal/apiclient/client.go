// Package apiclient is a client of a bridge node's REST API, for the
// `bridge` command line. It speaks the routes of http/openapi.json, sends
// the API key or the admin token as a bearer token, and turns every
// refusal into an *Error carrying the API's stable code.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxResponseBytes bounds what the client reads of one answer.
const maxResponseBytes = 4 << 20

// Client calls one node's API.
type Client struct {
	// BaseURL is the API's base URL, for example http://127.0.0.1:8080.
	BaseURL string
	// Token is the API key or the admin token; empty sends none.
	Token string
	// HTTP is the client used; nil uses one with a 30s timeout.
	HTTP *http.Client
	// UserAgent names the caller.
	UserAgent string
}

// Error is a refusal of the API: its HTTP status, stable code and message.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Error returns the code and the message.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// UnreachableError is a request that got no HTTP answer at all.
type UnreachableError struct {
	// URL is the API's base URL.
	URL string
	Err error
}

// Error names the URL that could not be reached.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the API at %s: %v", e.URL, e.Err)
}

// Unwrap returns the cause.
func (e *UnreachableError) Unwrap() error { return e.Err }

// CheckBaseURL returns an error unless raw is an http(s) URL with a host.
func CheckBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("check API URL: %q is not an http(s) URL such as http://127.0.0.1:8080", raw)
	}
	return nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// do sends one request with body (JSON-encoded unless nil) and decodes a
// 2xx answer into out (unless nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	contentType := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd, contentType = bytes.NewReader(b), "application/json"
	}
	return c.send(ctx, method, path, query, contentType, rd, func(_ *http.Response, raw []byte) error {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
		return nil
	})
}

// send sends one request and hands a 2xx answer, read whole, to ok.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, contentType string, body io.Reader, ok func(*http.Response, []byte) error) error {
	base := strings.TrimRight(c.BaseURL, "/")
	if err := CheckBaseURL(base); err != nil {
		return err
	}
	endpoint := base + path
	if len(query) > 0 {
		endpoint += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	res, err := c.httpClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("call %s %s: %w", method, path, ctx.Err())
		}
		return &UnreachableError{URL: base, Err: cause(err)}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return &UnreachableError{URL: base, Err: fmt.Errorf("read answer: %w", err)}
	}
	if len(raw) > maxResponseBytes {
		return fmt.Errorf("read answer of %s %s: larger than %d bytes", method, path, maxResponseBytes)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return DecodeError(res.StatusCode, raw)
	}
	return ok(res, raw)
}

// cause drops the *url.Error wrapper, whose text repeats the method and
// the whole URL.
func cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// DecodeError turns a non-2xx answer into an *Error. It reads the API's
// {"ok":false,"error":"message","code":"code"} and also the nested form
// {"error":{"code":"…","message":"…"}}; anything else keeps the status
// and the start of the body.
func DecodeError(status int, body []byte) *Error {
	e := &Error{Status: status}
	var flat struct {
		Error json.RawMessage `json:"error"`
		Code  string          `json:"code"`
	}
	if json.Unmarshal(body, &flat) == nil && len(flat.Error) > 0 {
		var msg string
		var nested struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		switch {
		case json.Unmarshal(flat.Error, &msg) == nil:
			e.Code, e.Message = flat.Code, msg
		case json.Unmarshal(flat.Error, &nested) == nil:
			e.Code, e.Message = nested.Code, nested.Message
		}
	}
	if e.Code == "" {
		e.Code = fmt.Sprintf("http_%d", status)
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(body))
		if e.Message == "" {
			e.Message = http.StatusText(status)
		}
		if e.Message == "" {
			e.Message = fmt.Sprintf("HTTP status %d", status)
		}
	}
	e.Code = Printable(e.Code, 64)
	e.Message = Printable(e.Message, 500)
	return e
}

// Printable keeps at most max runes of s and replaces control characters,
// so an answer cannot move the cursor or clear the terminal it is shown on.
func Printable(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
