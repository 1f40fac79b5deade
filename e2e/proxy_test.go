package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

// clientFrom returns an HTTP client whose connections come from the
// loopback address ip (all of 127.0.0.0/8 is local on Linux).
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		// One connection per request: each is counted on its own peer.
		DisableKeepAlives: true,
	}}
}

// signupFrom posts one account signup through hc with the proxy header
// X-Real-IP set to claimed (unless empty) and returns the status and the
// error code of the answer.
func signupFrom(t testing.TB, hc *http.Client, api, claimed string) (int, string) {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"name": "proxied", "signupKey": signupKey})
	req, err := http.NewRequest("POST", api+"/v1/accounts", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if claimed != "" {
		req.Header.Set("X-Real-IP", claimed)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s/v1/accounts: %v", api, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(body, &e)
	return resp.StatusCode, e.Code
}

// TestForgedProxyHeaderIsRateLimitedOnItsOwnAddress runs a node behind a
// trusted proxy at 127.0.0.1 (BRIDGE_PROXY_HEADER=X-Real-IP,
// BRIDGE_TRUSTED_PROXIES=127.0.0.1) with 3 signups a minute per client. A
// client that connects directly from 127.0.0.2 and claims a new address in
// the header on every request is counted on 127.0.0.2 all the same: its
// fourth signup is refused with 429. The proxy's header is believed: four
// clients behind it with four addresses all sign up, and a request the
// proxy passes on for 127.0.0.2 is refused, since that address used up its
// signups.
func TestForgedProxyHeaderIsRateLimitedOnItsOwnAddress(t *testing.T) {
	t.Parallel()
	c := newCluster(t, map[string]string{
		"BRIDGE_PROXY_HEADER": "X-Real-IP", "BRIDGE_TRUSTED_PROXIES": "127.0.0.1", "BRIDGE_SIGNUP_RATE": "3",
	})
	// The limit counts in windows of a clock minute: start with 10 seconds
	// or more left in one, so the few requests below fall in it.
	testkit.WaitFor(t, 15*time.Second, func() bool { return time.Now().Second() < 50 }, "a clock minute with 10 seconds left")

	direct, proxy := clientFrom("127.0.0.2"), clientFrom("127.0.0.1")
	for i := range 4 {
		claimed := fmt.Sprintf("203.0.113.%d", 10+i)
		status, code := signupFrom(t, direct, c.api, claimed)
		switch {
		case i < 3 && status != 201:
			t.Fatalf("signup %d from 127.0.0.2 claiming %s: status %d (%s), want 201", i+1, claimed, status, code)
		case i == 3 && (status != 429 || code != "rate_limited"):
			t.Fatalf("signup %d from 127.0.0.2 claiming %s: status %d (%s), want 429 rate_limited: the forged header escaped the limit", i+1, claimed, status, code)
		}
	}
	for i := range 4 {
		claimed := fmt.Sprintf("198.51.100.%d", 10+i)
		if status, code := signupFrom(t, proxy, c.api, claimed); status != 201 {
			t.Fatalf("signup for %s through the trusted proxy: status %d (%s), want 201: the proxy's header is believed", claimed, status, code)
		}
	}
	if status, code := signupFrom(t, proxy, c.api, "127.0.0.2"); status != 429 {
		t.Fatalf("signup for 127.0.0.2 through the trusted proxy: status %d (%s), want 429: that address used up its signups", status, code)
	}
}
