package http

import (
	"encoding/json"
	nethttp "net/http"
	"strings"
	"testing"
)

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.MaxBodyBytes = 4096; o.SignupRatePerMinute = 1000 })
	key := h.signup("alice")
	big := `{"name":"` + strings.Repeat("a", 5000) + `"}`
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"malformed", "POST", "/v1/accounts", "", `{"name":`, 400, CodeInvalidJSON},
		{"not json", "POST", "/v1/accounts", "", `name=alice`, 400, CodeInvalidJSON},
		{"empty", "POST", "/v1/accounts", "", ``, 400, CodeInvalidJSON},
		{"array", "POST", "/v1/accounts", "", `[{"name":"a"}]`, 400, CodeInvalidJSON},
		{"trailing", "POST", "/v1/accounts", "", `{"name":"a","signupKey":"` + testSignupKey + `"} {}`, 400, CodeInvalidJSON},
		{"wrong type", "POST", "/v1/accounts", "", `{"name":42}`, 400, CodeWrongType},
		{"unknown field", "POST", "/v1/accounts", "", `{"name":"a","admin":true}`, 400, CodeUnknownField},
		{"bridge wrong nested type", "POST", "/v1/bridges", key, `{"forward":{"url":"https://8.8.8.8/","timeoutMs":"soon"}}`, 400, CodeWrongType},
		{"bridge unknown nested field", "POST", "/v1/bridges", key, `{"forward":{"url":"https://8.8.8.8/","retries":3}}`, 400, CodeUnknownField},
		{"patch malformed", "PATCH", "/v1/bridges/0190f5a4-0000-7000-8000-000000000000", key, `{"name"`, 400, CodeInvalidJSON},
		{"relaycc malformed", "POST", "/signup", "", `{"key":`, 400, CodeInvalidJSON},
		{"relaycc unknown field", "POST", "/instance", "", `{"key":"k","bridgeAddress":"0x","extra":1}`, 400, CodeUnknownField},
		{"relaycc wrong type", "POST", "/hook", "", `{"message":7}`, 400, CodeWrongType},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			status, m := h.do(tc.method, tc.path, tc.token, tc.body)
			if status != tc.status || m["ok"] != false || m["code"] != tc.code || str(m, "error") == "" {
				t.Fatalf("status %d body %v; want %d code %s", status, m, tc.status, tc.code)
			}
		})
	}
	h.t = t

	// Oversized bodies are refused while reading, before any handler, so
	// they are checked over a real connection.
	base := h.startReal()
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/v1/accounts", "", 413},
		{"/v1/bridges", key, 413},
		{"/hook", "", 413}, // every code has one status, on relaycc routes too
		{"/signup", "", 413},
	} {
		req, _ := nethttp.NewRequest("POST", base+tc.path, strings.NewReader(big))
		req.Header.Set("Content-Type", "application/json")
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("oversized %s: %v", tc.path, err)
		}
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || m["ok"] != false || m["code"] != CodeBodyTooLarge {
			t.Errorf("oversized %s: status %d body %v (%v); want %d %s", tc.path, resp.StatusCode, m, err, tc.status, CodeBodyTooLarge)
		}
	}

	_, m := h.do("POST", "/v1/accounts", "", `{"name":42}`)
	if !strings.Contains(str(m, "error"), `"name"`) || !strings.Contains(str(m, "error"), "string") {
		t.Errorf("wrong-type message %q does not name the field and its type", str(m, "error"))
	}
	_, m = h.do("POST", "/v1/accounts", "", `{"name":"a","admin":true}`)
	if !strings.Contains(str(m, "error"), "admin") {
		t.Errorf("unknown-field message %q does not name the field", str(m, "error"))
	}
}
