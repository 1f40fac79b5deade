package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// maxAnswerBytes bounds how much of an answer the check reads.
const maxAnswerBytes = 1 << 20

// statusError is an answer with another status than the step expects.
type statusError struct {
	Method, Path string
	Status       int
	// Message is the API's error message and code, or the start of the
	// body when it is not the API's error shape.
	Message string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: answered %d: %s", e.Method, e.Path, e.Status, e.Message)
}

// healthAnswer is the answer of /healthz and /readyz.
type healthAnswer struct {
	OK   bool
	Node string
}

// accountCreated is what the check keeps of POST /v1/accounts.
type accountCreated struct {
	AccountID string
	APIKey    string
	KeyID     string
}

// bridgeCreated is what the check keeps of POST /v1/bridges.
type bridgeCreated struct {
	ID      string
	Address string
}

// decoder is an answer type the check can read from a body.
type decoder interface {
	decode(body []byte) error
}

// call sends one request to the target and decodes the answer into out
// (when not nil) after checking its status. apiKey, when set, goes in the
// Authorization header.
func (c *check) call(ctx context.Context, method, path, apiKey string, body any, want int, out decoder) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := nethttp.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "bridge-smoke")
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The URL error repeats the method and URL; keep only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return &statusError{Method: method, Path: path, Status: resp.StatusCode, Message: errorMessage(raw)}
	}
	if out != nil {
		if err := out.decode(raw); err != nil {
			return fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
		}
	}
	return nil
}

// errorMessage returns the message and code of an API error body
// ({"ok":false,"error":…,"code":…}), or a short, printable start of any
// other body.
func errorMessage(body []byte) string {
	var e struct {
		Error *string `json:"error"`
		Code  string  `json:"code"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != nil {
		msg := printable(*e.Error, 300)
		if msg == "" {
			msg = "an error without a message"
		}
		if e.Code != "" {
			msg += " (" + printable(e.Code, 64) + ")"
		}
		return msg
	}
	if s := printable(string(body), 200); s != "" {
		return s
	}
	return "empty body"
}

// printable returns s with control characters and invalid UTF-8 replaced
// and cut to at most max runes, so an answer cannot garble the output.
func printable(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.TrimSpace(s) {
		if n == max {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// decodeObject decodes body, which must be one JSON object with "ok":
// true, into v.
func decodeObject(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return errors.New("the body is not a JSON object")
	}
	var ok struct {
		OK *bool `json:"ok"`
	}
	if err := json.Unmarshal(body, &ok); err != nil {
		return fmt.Errorf("decode JSON: %w", err)
	}
	if ok.OK == nil || !*ok.OK {
		return errors.New(`the answer lacks "ok": true`)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode JSON: %w", err)
	}
	return nil
}

func (h *healthAnswer) decode(body []byte) error {
	var v struct {
		Node string `json:"node"`
	}
	if err := decodeObject(body, &v); err != nil {
		return err
	}
	h.OK, h.Node = true, printable(v.Node, 100)
	return nil
}

func (a *accountCreated) decode(body []byte) error {
	var v struct {
		Account struct {
			ID string `json:"id"`
		} `json:"account"`
		APIKey     string `json:"apiKey"`
		APIKeyInfo struct {
			ID string `json:"id"`
		} `json:"apiKeyInfo"`
	}
	if err := decodeObject(body, &v); err != nil {
		return err
	}
	switch {
	case !isID(v.Account.ID):
		return errors.New("the answer has no account.id")
	case !isToken(v.APIKey):
		return errors.New("the answer has no usable apiKey")
	case !isID(v.APIKeyInfo.ID):
		return errors.New("the answer has no apiKeyInfo.id")
	}
	*a = accountCreated{AccountID: v.Account.ID, APIKey: v.APIKey, KeyID: v.APIKeyInfo.ID}
	return nil
}

func (b *bridgeCreated) decode(body []byte) error {
	var v struct {
		Bridge struct {
			ID      string `json:"id"`
			Address string `json:"address"`
		} `json:"bridge"`
	}
	if err := decodeObject(body, &v); err != nil {
		return err
	}
	switch {
	case !isID(v.Bridge.ID):
		return errors.New("the answer has no bridge.id")
	case !keys.IsAddress(v.Bridge.Address):
		return fmt.Errorf("bridge.address %q is not a 0x address of 40 hex digits", printable(v.Bridge.Address, 50))
	}
	*b = bridgeCreated{ID: v.Bridge.ID, Address: v.Bridge.Address}
	return nil
}

// isID reports whether s can be an identifier in a URL path: 1 to 64
// letters, digits, '-' or '_'.
func isID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// isToken reports whether s can go in an Authorization header: 8 to 512
// visible ASCII characters.
func isToken(s string) bool {
	if len(s) < 8 || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
