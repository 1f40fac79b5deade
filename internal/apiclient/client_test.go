package apiclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDecodeErrorReadsBothShapes(t *testing.T) {
	for _, tc := range []struct {
		body      string
		code, msg string
	}{
		{`{"ok":false,"error":"bridge not found","code":"not_found"}`, "not_found", "bridge not found"},
		{`{"error":{"code":"rate_limited","message":"slow down"}}`, "rate_limited", "slow down"},
		{`<html>bad gateway</html>`, "http_502", "<html>bad gateway</html>"},
		{``, "http_502", "Bad Gateway"},
		{`{"error":42}`, "http_502", `{"error":42}`},
		{"{\"error\":\"\\u001b[2Jgone\\u001b[31m\",\"code\":\"x\\u0007\"}", "x ", " [2Jgone [31m"},
	} {
		e := DecodeError(502, []byte(tc.body))
		if e.Status != 502 || e.Code != tc.code || e.Message != tc.msg {
			t.Errorf("DecodeError(%q) = %+v, want code %q message %q", tc.body, e, tc.code, tc.msg)
		}
	}
}

// TestHostileServerCannotFloodOrDriveTheTerminal points the client at a
// server that answers too much, escape sequences and broken JSON.
func TestHostileServerCannotFloodOrDriveTheTerminal(t *testing.T) {
	huge := strings.Repeat("x", maxResponseBytes+10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/account":
			w.Write([]byte(`{"ok":true,"account":` + `"` + huge + `"}`))
		case "/v1/api-keys":
			w.WriteHeader(http.StatusTeapot)
			w.Write([]byte(`{"ok":false,"code":"teapot","error":"` + strings.Repeat("\\u001b[1m", 2000) + `"}`))
		case "/v1/bridges":
			w.Write([]byte(`{"ok":true,"bridges":[{"id":`))
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Token: "xbk_secret"}
	ctx := context.Background()
	if _, err := c.Account(ctx); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a huge answer: %v", err)
	}
	_, err := c.APIKeys(ctx)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != "teapot" || strings.ContainsRune(ae.Message, 0x1b) || len([]rune(ae.Message)) > 501 {
		t.Fatalf("an answer with escape sequences: %#v", err)
	}
	if _, err := c.Bridges(ctx); err == nil || !strings.Contains(err.Error(), "decode answer of GET /v1/bridges") {
		t.Fatalf("broken JSON: %v", err)
	}
}

func TestUnreachableNamesTheURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &Client{BaseURL: "http://" + addr + "/", Token: "xbk_secret", HTTP: &http.Client{Timeout: 5 * time.Second}}
	_, err = c.Account(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.URL != "http://"+addr || !strings.HasPrefix(err.Error(), "cannot reach the API at http://"+addr+": ") {
		t.Fatalf("unreachable API: %v", err)
	}
	if strings.Contains(err.Error(), "xbk_secret") {
		t.Fatal("the error shows the token")
	}
	if err := (&Client{BaseURL: "ftp://x"}).DeleteBridge(context.Background(), "b"); err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
		t.Fatalf("ftp URL: %v", err)
	}
}

// TestPathsAreEscaped checks that an id cannot reach another route.
func TestPathsAreEscaped(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath()
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	if err := c.DeleteBridge(context.Background(), "../api-keys/k1"); err != nil {
		t.Fatal(err)
	}
	if got != "/v1/bridges/..%2Fapi-keys%2Fk1" {
		t.Fatalf("path %q", got)
	}
}
