package http

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	nethttp "net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// rawCall posts body as JSON to url over a real connection, with extra
// headers, and returns the status, the headers and the body's bytes.
func rawCall(t *testing.T, url string, body any, hdr map[string]string) (int, nethttp.Header, []byte) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := nethttp.NewRequest("POST", url, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

func hookBody(from, token string) map[string]any {
	return map[string]any{"sendFromBridgeAddress": from, "targetAddress": "0x00000000000000000000000000000000000000aa", "message": "hi", "token": token}
}

func instanceBody(address, key string) map[string]any {
	return map[string]any{"bridgeAddress": address, "key": key}
}

// relayccBridge signs up a bridge through relaycc /signup and returns its
// address and hook token.
func (h *harness) relayccBridge() (string, string) {
	h.t.Helper()
	m := h.expect("POST", "/signup", "", map[string]any{"key": testSignupKey, "forwardHandler": map[string]any{"httpUrl": publicURL}}, 200, "")
	return str(m, "ethAddress"), str(m, "hookToken")
}

// TestSignupKeyNeverDrivesAV1Bridge is finding 2 of issue 10: every
// relaycc user holds the signup key, and it used to send as any bridge and
// read its forward URL. Another account's /v1 bridge cannot be driven or
// read with it, with or without the relaycc compatibility setting.
func TestSignupKeyNeverDrivesAV1Bridge(t *testing.T) {
	t.Parallel()
	for _, shared := range []bool{false, true} {
		h := newHarness(t, func(o *Options) { o.RelayccSharedKey = shared })
		victim, _ := h.createBridge(h.signup("victim"))
		addr := str(victim, "address")
		m := h.expect("POST", "/hook", "", hookBody(addr, testSignupKey), 401, CodeUnauthorized)
		if _, leaked := m["forwardedToBridge"]; leaked {
			t.Fatalf("shared=%v: /hook answered %v", shared, m)
		}
		m = h.expect("POST", "/instance", "", instanceBody(addr, testSignupKey), 401, CodeUnauthorized)
		if _, leaked := m["instance"]; leaked {
			t.Fatalf("shared=%v: /instance revealed %v", shared, m)
		}
	}
}

// TestRelayccSharedKeyIsOptIn: for a bridge made by relaycc /signup, the
// signup key works as its token only with RelayccSharedKey; its own hook
// token always works.
func TestRelayccSharedKeyIsOptIn(t *testing.T) {
	t.Parallel()
	off := newHarness(t, nil)
	addr, token := off.relayccBridge()
	off.expect("POST", "/hook", "", hookBody(addr, testSignupKey), 401, CodeUnauthorized)
	off.expect("POST", "/instance", "", instanceBody(addr, testSignupKey), 401, CodeUnauthorized)
	// Past authorization, a node without a runtime cannot send: 503.
	off.expect("POST", "/hook", "", hookBody(addr, token), 503, CodeSendingDisabled)
	off.expect("POST", "/instance", "", instanceBody(addr, token), 200, "")

	on := newHarness(t, func(o *Options) { o.RelayccSharedKey = true })
	addr, token = on.relayccBridge()
	on.expect("POST", "/hook", "", hookBody(addr, testSignupKey), 503, CodeSendingDisabled)
	m := on.expect("POST", "/instance", "", instanceBody(addr, testSignupKey), 200, "")
	if m["instance"].(map[string]any)["ethAddress"] != addr {
		t.Fatalf("instance with the shared key: %v", m)
	}
	on.expect("POST", "/hook", "", hookBody(addr, token), 503, CodeSendingDisabled)
	on.expect("POST", "/instance", "", instanceBody(addr, token), 200, "")
	// Another relaycc bridge's hook token is still no key to this one.
	_, other := on.relayccBridge()
	on.expect("POST", "/instance", "", instanceBody(addr, other), 401, CodeUnauthorized)
}

// TestTokenBruteForceIsLimited guesses tokens from one client address
// behind a trusted proxy: after the limit, every attempt from it is 429
// with Retry-After, the right token included, on both nodes of a cluster,
// while another address is not affected.
func TestTokenBruteForceIsLimited(t *testing.T) {
	t.Parallel()
	const limit = 5
	a := newHarness(t, func(o *Options) {
		o.TokenFailuresPerMinute = limit
		o.ProxyHeader = "X-Real-IP"
		o.TrustedProxies = []string{"127.0.0.1"}
	})
	b := a.sibling()
	addr, token := a.relayccBridge()
	baseA, baseB := a.startReal(), b.startReal()
	attacker := map[string]string{"X-Real-IP": "198.51.100.7"}
	bystander := map[string]string{"X-Real-IP": "198.51.100.8"}
	clearOfWindowEdge(tokenWindow, 15*time.Second)
	for i := 0; i < limit; i++ {
		base := []string{baseA, baseB}[i%2]
		path := []string{"/hook", "/instance"}[i%2]
		body := []map[string]any{hookBody(addr, "xbh_guess"+strconv.Itoa(i)), instanceBody(addr, "xbh_guess"+strconv.Itoa(i))}[i%2]
		if status, _, raw := rawCall(t, base+path, body, attacker); status != 401 {
			t.Fatalf("guess %d: %d %s, want 401", i, status, raw)
		}
	}
	for _, base := range []string{baseA, baseB} {
		for _, tc := range []struct {
			path string
			body map[string]any
		}{
			{"/hook", hookBody(addr, "xbh_another_guess")},
			{"/instance", instanceBody(addr, token)}, // even the right token
		} {
			status, hdr, raw := rawCall(t, base+tc.path, tc.body, attacker)
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			retry, _ := strconv.Atoi(hdr.Get("Retry-After"))
			if status != 429 || m["code"] != CodeRateLimited || retry < 1 || retry > 60 {
				t.Fatalf("%s%s after %d failures: %d Retry-After %q %s, want 429 rate_limited", base, tc.path, limit, status, hdr.Get("Retry-After"), raw)
			}
		}
	}
	if status, _, raw := rawCall(t, baseB+"/instance", instanceBody(addr, token), bystander); status != 200 {
		t.Fatalf("another address with the right token: %d %s", status, raw)
	}
	n, err := a.store.TokenFailures(context.Background(), "198.51.100.7", tokenWindow)
	if err != nil || n != limit {
		t.Fatalf("failures counted in Postgres: %d %v, want %d", n, err, limit)
	}
	if got := counterValue(t, a.reg, "bridge_http_token_failures_total", "outcome", "limited") +
		counterValue(t, b.reg, "bridge_http_token_failures_total", "outcome", "limited"); got != 4 {
		t.Fatalf("limited attempts counted %v, want 4", got)
	}
}

// TestWrongTokenAnswersAreIdentical: whatever is wrong with the token, the
// answer is the same bytes, so it tells nothing about which tokens or
// addresses exist.
func TestWrongTokenAnswersAreIdentical(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.TokenFailuresPerMinute = 1000 })
	addr, _ := h.relayccBridge()
	other, otherToken := h.relayccBridge()
	v1, _ := h.createBridge(h.signup("alice"))
	v1Addr := str(v1, "address")
	unknown := "0x00000000000000000000000000000000000000cc"
	base := h.startReal()
	cases := []struct {
		name, address, token string
	}{
		{"missing", addr, ""},
		{"random", addr, "nonsense"},
		{"well-formed but unknown", addr, "xbh_0000000000000000000000000000000000000000000"},
		{"another bridge's token", addr, otherToken},
		{"the signup key", addr, testSignupKey},
		{"the signup key on a v1 bridge", v1Addr, testSignupKey},
		{"a token on a v1 bridge", v1Addr, otherToken},
		{"a token on an unknown address", unknown, otherToken},
		{"the signup key on an unknown address", unknown, testSignupKey},
		{"a token on its bridge's address in another case", other, otherToken + "x"},
	}
	for _, path := range []string{"/hook", "/instance"} {
		var first []byte
		for _, tc := range cases {
			body := hookBody(tc.address, tc.token)
			if path == "/instance" {
				body = instanceBody(tc.address, tc.token)
			}
			status, hdr, raw := rawCall(t, base+path, body, nil)
			if status != 401 || hdr.Get("Retry-After") != "" {
				t.Fatalf("%s %s: %d %s", path, tc.name, status, raw)
			}
			if first == nil {
				first = raw
				continue
			}
			if !bytes.Equal(raw, first) {
				t.Errorf("%s %s answers %s, others %s", path, tc.name, raw, first)
			}
		}
	}
}

// counterValue reads the counter name{label=value} from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

// clearOfWindowEdge waits, when the current fixed window of length w ends
// within margin, until the next one starts, so that a test's requests are
// counted in one window.
func clearOfWindowEdge(w, margin time.Duration) {
	if left := w - time.Duration(time.Now().UnixNano())%w; left < margin {
		time.Sleep(left + 50*time.Millisecond)
	}
}
