package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook"
)

// target is an owner's endpoint served by httptest: it checks the Standard
// Webhooks signature of every request, records what arrived under which
// webhook-id, and answers "echo: <content>" in the bridge's format.
type target struct {
	srv    *httptest.Server
	format string // "relaycc" or "json"

	mu       sync.Mutex
	secret   string
	ids      map[string]int             // webhook-id -> requests
	byText   map[string]map[string]bool // content -> webhook-ids
	bodies   []map[string]any
	badSigs  int
	received int
	// reject, while set, answers 400 to every signed request.
	reject bool
}

func newTarget(t testing.TB, format string) *target {
	tg := &target{format: format, ids: map[string]int{}, byText: map[string]map[string]bool{}}
	tg.srv = httptest.NewServer(http.HandlerFunc(tg.serve))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) setReject(v bool) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.reject = v
}

func (tg *target) setSecret(s string) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.secret = s
}

func (tg *target) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	tg.mu.Lock()
	secret := tg.secret
	tg.mu.Unlock()
	if err := webhook.Verify(secret, r.Header, raw, time.Now()); err != nil {
		tg.mu.Lock()
		tg.badSigs++
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
	if tg.format == "relaycc" {
		text = str(body, "message", "content")
	}
	id := r.Header.Get(webhook.HeaderID)
	tg.mu.Lock()
	if tg.reject {
		tg.mu.Unlock()
		http.Error(w, "rejected", http.StatusBadRequest)
		return
	}
	tg.received++
	tg.ids[id]++
	if tg.byText[text] == nil {
		tg.byText[text] = map[string]bool{}
	}
	tg.byText[text][id] = true
	tg.bodies = append(tg.bodies, body)
	tg.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if tg.format == "relaycc" {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "data": "echo: " + text})
	} else {
		_ = json.NewEncoder(w).Encode(map[string]any{"reply": "echo: " + text})
	}
}

// texts returns how many distinct contents arrived.
func (tg *target) texts() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.byText)
}

// requests returns how many signed requests arrived.
func (tg *target) requests() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.received
}

// firstBody returns the first request body.
func (tg *target) firstBody() map[string]any {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.bodies) == 0 {
		return nil
	}
	return tg.bodies[0]
}

// badSignatures returns how many requests failed the signature check.
func (tg *target) badSignatures() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.badSigs
}

// has reports whether content arrived.
func (tg *target) has(text string) bool {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.byText[text]) > 0
}
