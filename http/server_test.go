package http

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/persistence/storetest"
)

const (
	testSignupKey  = "signup-key-for-tests-0123456789"
	testAdminToken = "admin-token-for-tests-0123456789"
)

// harness is a server on its own migrated database.
type harness struct {
	t     testing.TB
	srv   *Server
	store *persistence.Store
	reg   *prometheus.Registry
	logs  *testkit.Buffer
	// url and sealer open more stores on the same database.
	url    string
	sealer *persistence.Sealer
}

func newHarness(t testing.TB, mutate func(*Options)) *harness {
	t.Helper()
	url := pgtest.NewDatabase(t, pgtest.Template{Name: "bridge", Migrate: persistence.Migrate})
	sealer := storetest.Sealer(t)
	store := storetest.Open(t, url, sealer)
	logs := &testkit.Buffer{}
	reg := prometheus.NewRegistry()
	opts := Options{
		Store:      store,
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry:   reg,
		SignupKey:  testSignupKey,
		AdminToken: testAdminToken,
		NodeID:     "node-test",
	}
	if mutate != nil {
		mutate(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	return &harness{t: t, srv: srv, store: store, reg: reg, logs: logs, url: url, sealer: sealer}
}

// sibling is a second server, as another node of the cluster has, with its
// own store (its own connection pool) on the same database and the same
// options.
func (h *harness) sibling() *harness {
	h.t.Helper()
	store := storetest.Open(h.t, h.url, h.sealer)
	opts := h.srv.opts
	opts.Store = store
	opts.Registry = prometheus.NewRegistry()
	opts.NodeID = "node-sibling"
	srv, err := New(opts)
	if err != nil {
		h.t.Fatalf("new server: %v", err)
	}
	return &harness{t: h.t, srv: srv, store: store, reg: opts.Registry, logs: h.logs, url: h.url, sealer: h.sealer}
}

// do sends a request through the Fiber app. body is sent as is when it is a
// string, and as JSON otherwise (nil sends no body).
func (h *harness) do(method, path, token string, body any) (int, map[string]any) {
	h.t.Helper()
	status, _, m := h.doWithHeaders(method, path, token, body)
	return status, m
}

// doWithHeaders is do that also returns the response headers.
func (h *harness) doWithHeaders(method, path, token string, body any) (int, nethttp.Header, map[string]any) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.srv.App().Test(req, -1)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			h.t.Fatalf("%s %s: response is not JSON: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, resp.Header, m
}

// expect checks status and, for errors, the ok flag and code.
func (h *harness) expect(method, path, token string, body any, wantStatus int, wantCode string) map[string]any {
	h.t.Helper()
	status, m := h.do(method, path, token, body)
	if status != wantStatus {
		h.t.Fatalf("%s %s: status %d, want %d; body %v", method, path, status, wantStatus, m)
	}
	if wantCode != "" {
		if m["ok"] != false || m["code"] != wantCode || m["error"] == "" {
			h.t.Fatalf("%s %s: body %v, want ok=false code=%s and an error message", method, path, m, wantCode)
		}
	} else if m != nil && m["ok"] != true {
		h.t.Fatalf("%s %s: body %v, want ok=true", method, path, m)
	}
	return m
}

// signup creates an account and returns its API key.
func (h *harness) signup(name string) string {
	h.t.Helper()
	m := h.expect("POST", "/v1/accounts", "", map[string]any{"name": name, "signupKey": testSignupKey}, 201, "")
	key, _ := m["apiKey"].(string)
	if !strings.HasPrefix(key, persistence.APIKeyPrefix) {
		h.t.Fatalf("signup returned api key %q", key)
	}
	return key
}

// publicURL is a forward URL on a public address; no request is made to it.
const publicURL = "https://8.8.8.8/hook"

// createBridge creates a bridge and returns its id and webhook secret.
func (h *harness) createBridge(key string) (map[string]any, string) {
	h.t.Helper()
	m := h.expect("POST", "/v1/bridges", key, map[string]any{"name": "bot", "forward": map[string]any{"url": publicURL}}, 201, "")
	b, _ := m["bridge"].(map[string]any)
	secret, _ := m["webhookSecret"].(string)
	return b, secret
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// startReal serves the harness on a real listener and returns its URL.
func (h *harness) startReal() string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ln) }()
	h.t.Cleanup(func() {
		if err := h.srv.Shutdown(context.Background()); err != nil {
			h.t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			h.t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}
