package deploytest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/system/config"
)

const testDomain = "bridge.deploytest.test"

// TestNginxSiteInFrontOfNode renders deploy/nginx/bridge.conf, checks it
// with `nginx -t` and serves real requests through it over TLS to a
// running bridge node. Two of the three upstreams refuse connections, so
// every request also proves the passive failover.
func TestNginxSiteInFrontOfNode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t)
	certDir := filepath.Join(dir, "live", testDomain)
	ca.issue(t, certDir, testDomain)
	webroot := filepath.Join(dir, "acme")

	extra := map[string]string{"BRIDGE_SIGNUP_RATE": "1"}
	_, proxyHeader := config.LookupVar("BRIDGE_PROXY_HEADER")
	_, trustedProxies := config.LookupVar("BRIDGE_TRUSTED_PROXIES")
	if proxyHeader {
		extra["BRIDGE_PROXY_HEADER"] = "X-Real-IP"
	}
	if trustedProxies {
		extra["BRIDGE_TRUSTED_PROXIES"] = "127.0.0.1"
	}
	n := startNode(t, "deploytest-nginx", extra)

	s := site{domain: testDomain, upstreams: []string{freeport.Addr(t), n.addr, freeport.Addr(t)},
		httpAddr: freeport.Addr(t), httpsAddr: freeport.Addr(t), certDir: certDir, webroot: webroot}
	startNginx(t, renderSite(t, s), s.httpsAddr)
	base := "https://" + testDomain
	c2 := client("127.0.0.2", s.httpsAddr, ca.pool())

	t.Run("healthz over TLS with two upstreams down", func(t *testing.T) {
		for i := 0; i < 9; i++ {
			status, body := do(t, c2, http.MethodGet, base+"/healthz", nil, nil)
			if status != http.StatusOK || body["node"] != n.id {
				t.Fatalf("GET /healthz #%d through nginx: %d %v, want 200 from node %s", i, status, body, n.id)
			}
		}
	})

	t.Run("plain HTTP redirects, ACME challenges answered", func(t *testing.T) {
		plain := client("127.0.0.2", s.httpAddr, nil)
		resp, err := plain.Get("http://" + testDomain + "/v1/accounts?x=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://"+testDomain+"/v1/accounts?x=1" {
			t.Errorf("plain HTTP: %d Location %q, want 301 to https://%s/v1/accounts?x=1", resp.StatusCode, resp.Header.Get("Location"), testDomain)
		}
		challenge := filepath.Join(webroot, ".well-known", "acme-challenge")
		if err := os.MkdirAll(challenge, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(challenge, "tok-123"), []byte("tok-123.thumbprint"))
		resp, err = plain.Get("http://" + testDomain + "/.well-known/acme-challenge/tok-123")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "tok-123.thumbprint" {
			t.Errorf("ACME challenge over plain HTTP: %d %q, want 200 with the token file", resp.StatusCode, body)
		}
	})

	t.Run("metrics stay private, big bodies refused", func(t *testing.T) {
		if status, _ := do(t, c2, http.MethodGet, base+"/metrics", nil, nil); status != http.StatusNotFound {
			t.Errorf("GET /metrics through nginx: %d, want 404", status)
		}
		big := bytes.Repeat([]byte("x"), 2<<20)
		if status, _ := do(t, c2, http.MethodPost, base+"/v1/accounts", big, nil); status != http.StatusRequestEntityTooLarge {
			t.Errorf("POST of 2 MiB through nginx: %d, want 413", status)
		}
	})

	t.Run("signup, and the node sees the client address", func(t *testing.T) {
		signup := func(c *http.Client, hdr map[string]string) (int, map[string]any) {
			body, _ := json.Marshal(map[string]string{"name": "deploytest", "signupKey": testSignupKey})
			return do(t, c, http.MethodPost, base+"/v1/accounts", body, hdr)
		}
		status, body := signup(c2, nil)
		if status != http.StatusCreated || !strings.HasPrefix(fmt.Sprint(body["apiKey"]), "xbk_") {
			t.Fatalf("signup through nginx: %d %v, want 201 with an API key", status, body)
		}
		// BRIDGE_SIGNUP_RATE=1: a second signup from 127.0.0.2 is limited.
		if status, body := signup(c2, nil); status != http.StatusTooManyRequests {
			t.Fatalf("second signup from 127.0.0.2: %d %v, want 429", status, body)
		}
		if !proxyHeader {
			t.Fatalf("the node does not read BRIDGE_PROXY_HEADER (not in config.Vars): behind nginx it sees every " +
				"client as 127.0.0.1, so one client's signups limit everyone's. The node must pass " +
				"BRIDGE_PROXY_HEADER to http.Options.ProxyHeader (and BRIDGE_TRUSTED_PROXIES to Fiber's trusted proxy check)")
		}
		// Another client address has its own limit: the node keyed the
		// limit on X-Real-IP, not on nginx's address.
		c3 := client("127.0.0.3", s.httpsAddr, ca.pool())
		if status, body := signup(c3, nil); status != http.StatusCreated {
			t.Fatalf("signup from 127.0.0.3 after 127.0.0.2 was limited: %d %v, want 201 (the node must key on X-Real-IP)", status, body)
		}
		// nginx replaces a client's own X-Real-IP and X-Forwarded-For.
		spoof := map[string]string{"X-Real-IP": "10.9.8.7", "X-Forwarded-For": "10.9.8.7"}
		if status, body := signup(c3, spoof); status != http.StatusTooManyRequests {
			t.Fatalf("signup from 127.0.0.3 claiming X-Real-IP 10.9.8.7: %d %v, want 429 (nginx must overwrite the header)", status, body)
		}
	})

	// Last, as Kubernetes would before stopping the pod: the StatefulSet's
	// preStop command, with the container's BRIDGE_NODE_ID and
	// BRIDGE_ADMIN_TOKEN, drains the node.
	t.Run("the Kubernetes preStop command drains the node", func(t *testing.T) {
		pre := stringList(bridgeContainer(t, one(t, k8sObjects(t), "StatefulSet")), "lifecycle", "preStop", "exec", "command")
		if len(pre) < 2 || pre[0] != "/bridge" {
			t.Fatalf("preStop command %q does not run /bridge", pre)
		}
		args := slices.Clone(pre[1:])
		for i, a := range args {
			if strings.HasPrefix(a, "--api=") {
				args[i] = "--api=http://" + n.addr // the pod's 127.0.0.1:8080
			}
		}
		cmd := exec.Command(testkit.BuildBridge(t, dockerBuild), args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BRIDGE_NODE_ID=" + n.id, "BRIDGE_ADMIN_TOKEN=" + testAdminToken}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bridge %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		direct := &http.Client{Timeout: 10 * time.Second}
		if status, _ := do(t, direct, http.MethodGet, "http://"+n.addr+"/readyz", nil, nil); status != http.StatusServiceUnavailable {
			t.Errorf("/readyz after the drain: %d, want 503", status)
		}
		if status, body := do(t, c2, http.MethodGet, base+"/healthz", nil, nil); status != http.StatusOK || body["node"] != n.id {
			t.Errorf("/healthz through nginx after the drain: %d %v, want 200: a drained node serves until it stops", status, body)
		}
	})
}

// do sends one request and decodes a JSON answer.
func do(t *testing.T, c *http.Client, method, url string, body []byte, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, &out)
	}
	return resp.StatusCode, out
}

// headerUpstream is a small HTTP server behind nginx that records the
// headers it gets and answers WebSocket-style upgrades by echoing lines.
type headerUpstream struct {
	mu   sync.Mutex
	seen []http.Header
}

func (u *headerUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	u.mu.Lock()
	u.seen = append(u.seen, h)
	u.mu.Unlock()
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		_, _ = io.WriteString(w, "ok")
		return
	}
	if !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
		http.Error(w, "Connection: upgrade missing", http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	_ = rw.Flush()
	line, err := rw.ReadString('\n')
	if err != nil {
		return
	}
	_, _ = rw.WriteString("echo " + line)
	_ = rw.Flush()
}

func (u *headerUpstream) last() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return nil
	}
	return u.seen[len(u.seen)-1]
}

// TestNginxSiteHeadersAndWebSocket puts the site in front of a small Go
// upstream (the bridge has no WebSocket route yet) and checks what nginx
// passes on: the client address, the scheme, the host, and a WebSocket
// upgrade that becomes a two-way tunnel.
func TestNginxSiteHeadersAndWebSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t)
	certDir := filepath.Join(dir, "live", testDomain)
	ca.issue(t, certDir, testDomain)

	up := &headerUpstream{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: up}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	s := site{domain: testDomain, upstreams: []string{ln.Addr().String()},
		httpAddr: freeport.Addr(t), httpsAddr: freeport.Addr(t), certDir: certDir, webroot: filepath.Join(dir, "acme")}
	startNginx(t, renderSite(t, s), s.httpsAddr)

	c := client("127.0.0.2", s.httpsAddr, ca.pool())
	status, _ := do(t, c, http.MethodGet, "https://"+testDomain+"/v1/anything", nil,
		map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"})
	if status != http.StatusOK {
		t.Fatalf("GET through nginx: %d", status)
	}
	h := up.last()
	for name, want := range map[string]string{
		"X-Real-Ip": "127.0.0.2", "X-Forwarded-For": "127.0.0.2", "X-Forwarded-Proto": "https",
		"Host": testDomain, "X-Forwarded-Host": testDomain,
	} {
		if got := h.Get(name); got != want {
			t.Errorf("upstream got %s %q, want %q", name, got, want)
		}
	}
	if h.Get("Upgrade") != "" || strings.Contains(strings.ToLower(h.Get("Connection")), "upgrade") {
		t.Errorf("a plain request reached the upstream with Upgrade %q Connection %q", h.Get("Upgrade"), h.Get("Connection"))
	}

	// A WebSocket handshake: 101, then bytes flow both ways.
	conn, err := tls.Dial("tcp", s.httpsAddr, &tls.Config{ServerName: testDomain, RootCAs: ca.pool(), NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /v1/stream HTTP/1.1\r\nHost: "+testDomain+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read the upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("upgrade through nginx: %d Upgrade %q, want 101 websocket", resp.StatusCode, resp.Header.Get("Upgrade"))
	}
	h = up.last()
	if !strings.EqualFold(h.Get("Upgrade"), "websocket") || !strings.Contains(strings.ToLower(h.Get("Connection")), "upgrade") {
		t.Errorf("upstream got Upgrade %q Connection %q for the handshake", h.Get("Upgrade"), h.Get("Connection"))
	}
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := br.ReadString('\n')
	if err != nil || line != "echo ping\n" {
		t.Fatalf("through the upgraded connection: %q, %v; want %q", line, err, "echo ping\n")
	}
}

// TestNginxConfigs checks the compose stack's nginx-proxy limits file with
// `nginx -t` in an http context, and that render.sh refuses bad values.
func TestNginxConfigs(t *testing.T) {
	bin := needTool(t, "nginx", "nginx", "/usr/sbin/nginx")
	prefix := t.TempDir()
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(prefix, "nginx.conf")
	writeFile(t, conf, []byte(nginxMainConf(prefix, filepath.Join(deployDir, "compose", "nginx-proxy.conf"))))
	out, err := exec.Command(bin, "-p", prefix, "-e", filepath.Join(prefix, "error.log"), "-c", conf, "-t").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t with deploy/compose/nginx-proxy.conf: %v\n%s", err, out)
	}

	for _, bad := range [][]string{
		{"UPSTREAMS=10.0.0.1:8080"},
		{"DOMAIN=bridge.example.net"},
		{"DOMAIN=bad name", "UPSTREAMS=10.0.0.1:8080"},
		{"DOMAIN=bridge.example.net", "UPSTREAMS=10.0.0.1"},
		{"DOMAIN=bridge.example.net", "UPSTREAMS=10.0.0.1:8080;evil"},
		{"DOMAIN=bridge.example.net", "UPSTREAMS=10.0.0.1:8080", "CERT_DIR=relative"},
		{"DOMAIN=bridge.example.net", "UPSTREAMS=10.0.0.1:8080", "LISTEN_HTTPS=443; ssl_verify off"},
	} {
		cmd := exec.Command(filepath.Join(deployDir, "nginx", "render.sh"))
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, bad...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "render.sh:") {
			t.Errorf("render.sh with %q: %v %q, want exit 2 naming the problem", bad, err, out)
		}
	}
}
