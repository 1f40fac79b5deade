// Package webhooktest is the owner's endpoint of the tests: an httptest
// server that checks the Standard Webhooks signature of every request,
// records what arrived under which webhook-id, and answers
// "echo: <content>" in the bridge's body format.
//
// It is the part of the test kit (internal/testkit) that needs the
// webhook package, so it lives beside it.
package webhooktest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/persistence"
)

// Target is an owner's endpoint. Requests to /hook/<slug> are checked
// with the secret SetHookSecret gave that slug (an unknown slug is
// answered 404); requests to any other path with the secret of
// SetSecret.
type Target struct {
	// URL is the base URL of the server.
	URL    string
	format persistence.BodyFormat

	mu      sync.Mutex
	secret  string
	hooks   map[string]string // slug -> webhook secret
	status  func(content string) int
	reply   func(content string) string
	got     []Request
	bad     []string // why each bad signature failed
	unknown int      // requests to a slug without a secret
}

// Request is one signed request the target accepted.
type Request struct {
	Slug    string // the hook it came to, "" outside /hook/
	ID      string // its webhook-id
	Content string // the message content of its body
	Body    map[string]any
}

// Hits is what arrived for one content.
type Hits struct {
	Requests int
	IDs      map[string]int  // webhook-id -> requests
	Slugs    map[string]bool // the hooks it came to
}

// NewTarget starts a target that reads and answers bodies in format and
// stops it when the test ends.
func NewTarget(t testing.TB, format persistence.BodyFormat) *Target {
	tg := &Target{format: format, hooks: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(tg.serve))
	t.Cleanup(srv.Close)
	tg.URL = srv.URL
	return tg
}

// SetSecret sets the webhook secret of requests outside /hook/.
func (tg *Target) SetSecret(secret string) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.secret = secret
}

// SetHookSecret sets the webhook secret of requests to /hook/<slug>.
func (tg *Target) SetHookSecret(slug, secret string) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.hooks[slug] = secret
}

// SetStatus makes status decide the status code of each signed request
// by its content; any code but 200 is answered with an empty body, and the
// request is not recorded. nil answers 200.
func (tg *Target) SetStatus(status func(content string) int) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.status = status
}

// SetReply sets the reply text the target answers a content with, instead
// of "echo: " and the content.
func (tg *Target) SetReply(reply func(content string) string) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.reply = reply
}

func (tg *Target) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	slug, hooked := strings.CutPrefix(r.URL.Path, "/hook/")
	tg.mu.Lock()
	secret, status, reply := tg.secret, tg.status, tg.reply
	if hooked {
		s, known := tg.hooks[slug]
		if !known {
			tg.unknown++
			tg.mu.Unlock()
			http.Error(w, "no such hook", http.StatusNotFound)
			return
		}
		secret = s
	} else {
		slug = ""
	}
	tg.mu.Unlock()
	if err := webhook.Verify(secret, r.Header, raw, time.Now()); err != nil {
		tg.mu.Lock()
		tg.bad = append(tg.bad, err.Error())
		tg.mu.Unlock()
		http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
		return
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		http.Error(w, "not json", http.StatusBadRequest)
		return
	}
	text := str(body, "content")
	if tg.format == persistence.FormatRelaycc {
		text = str(body, "message", "content")
	}
	if status != nil {
		if code := status(text); code != http.StatusOK {
			w.WriteHeader(code)
			return
		}
	}
	tg.mu.Lock()
	tg.got = append(tg.got, Request{Slug: slug, ID: r.Header.Get(webhook.HeaderID), Content: text, Body: body})
	tg.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	answer := "echo: " + text
	if reply != nil {
		answer = reply(text)
	}
	if tg.format == persistence.FormatRelaycc {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "data": answer})
	} else {
		_ = json.NewEncoder(w).Encode(map[string]any{"reply": answer})
	}
}

// str walks body down the keys path and returns the string there, or "".
func str(body map[string]any, path ...string) string {
	var v any = body
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// Received returns the requests accepted so far, in order.
func (tg *Target) Received() []Request {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]Request(nil), tg.got...)
}

// Contents returns the contents of the requests accepted so far, in order.
func (tg *Target) Contents() []string {
	var out []string
	for _, r := range tg.Received() {
		out = append(out, r.Content)
	}
	return out
}

// Requests returns how many requests were accepted.
func (tg *Target) Requests() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.got)
}

// Has reports whether a request with content was accepted.
func (tg *Target) Has(content string) bool {
	return tg.Hits(content).Requests > 0
}

// Hits returns what arrived with content.
func (tg *Target) Hits(content string) Hits {
	h, ok := tg.ByContent()[content]
	if !ok {
		return Hits{IDs: map[string]int{}, Slugs: map[string]bool{}}
	}
	return h
}

// ByContent returns what arrived, by content.
func (tg *Target) ByContent() map[string]Hits {
	out := map[string]Hits{}
	for _, r := range tg.Received() {
		h, ok := out[r.Content]
		if !ok {
			h = Hits{IDs: map[string]int{}, Slugs: map[string]bool{}}
		}
		h.Requests++
		h.IDs[r.ID]++
		h.Slugs[r.Slug] = true
		out[r.Content] = h
	}
	return out
}

// Texts returns how many distinct contents arrived.
func (tg *Target) Texts() int { return len(tg.ByContent()) }

// IDs returns how many requests arrived under each webhook-id.
func (tg *Target) IDs() map[string]int {
	ids := map[string]int{}
	for _, r := range tg.Received() {
		ids[r.ID]++
	}
	return ids
}

// BadSignatures returns why each request with a bad signature failed.
func (tg *Target) BadSignatures() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]string(nil), tg.bad...)
}

// Unknown returns how many requests came to a hook without a secret.
func (tg *Target) Unknown() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.unknown
}

// FirstBody returns the body of the first request accepted, or nil.
func (tg *Target) FirstBody() map[string]any {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.got) == 0 {
		return nil
	}
	return tg.got[0].Body
}

// ServeHTTP serves one request as the target does, for a test's own
// server that wraps the target (to fail, delay or count requests first).
func (tg *Target) ServeHTTP(w http.ResponseWriter, r *http.Request) { tg.serve(w, r) }
