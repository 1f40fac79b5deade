package deploytest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// acmeDomain is the name the test certifies. pebble resolves it through
// pebble-challtestsrv's DNS server, which answers 127.0.0.1 for every name,
// and validates the http-01 challenge for real by fetching the token from
// 127.0.0.1 on its httpPort: from certbot's own server (standalone), then
// from nginx's webroot location (webroot). PEBBLE_VA_ALWAYS_VALID is not
// used.
const acmeDomain = "bridge.acme.deploytest.test"

// freeUDPAndTCPPort returns a loopback port free for both UDP and TCP (a
// DNS server listens on both).
func freeUDPAndTCPPort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := freeport.Port(t)
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			u.Close()
			return p
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// TestACMEWithPebble runs deploy/acme/obtain-cert.sh (certbot) against
// Debian's pebble: a first certificate with the standalone method, nginx
// started on it serving the bridge node over HTTPS that verifies against
// pebble's root, then a forced renewal with the webroot method through that
// nginx, which the script reloads to serve the new certificate.
func TestACMEWithPebble(t *testing.T) {
	t.Parallel()
	pebble := needTool(t, "pebble", "pebble", "/usr/bin/pebble")
	challtest := needTool(t, "pebble-challtestsrv", "pebble", "/usr/bin/pebble-challtestsrv")
	needTool(t, "certbot", "certbot")
	dir := t.TempDir()

	// pebble's own HTTPS listener, with a certificate from a test CA that
	// certbot trusts through REQUESTS_CA_BUNDLE.
	ca := newTestCA(t)
	ca.issue(t, filepath.Join(dir, "pebble-tls"), "127.0.0.1", "localhost")
	caFile := filepath.Join(dir, "pebble-tls", "ca.pem")
	writeFile(t, caFile, ca.pem)

	dnsPort := freeUDPAndTCPPort(t)
	startProc(t, challtest, nil,
		"-dns01", fmt.Sprintf("127.0.0.1:%d", dnsPort), "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", freeport.Addr(t), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	testkit.WaitFor(t, 20*time.Second, func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", dnsPort), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}, "pebble-challtestsrv's DNS server")

	acmeAddr, mgmtAddr := freeport.Addr(t), freeport.Addr(t)
	httpPort := freeport.Port(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": acmeAddr, "managementListenAddress": mgmtAddr,
		"certificate": filepath.Join(dir, "pebble-tls", "fullchain.pem"), "privateKey": filepath.Join(dir, "pebble-tls", "privkey.pem"),
		"httpPort": httpPort, "tlsPort": freeport.Port(t), "ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	raw, _ := json.Marshal(cfg)
	writeFile(t, filepath.Join(dir, "pebble.json"), raw)
	startProc(t, pebble, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"-config", filepath.Join(dir, "pebble.json"), "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))
	mgmt := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}}
	directory := "https://" + acmeAddr + "/dir"
	testkit.WaitFor(t, 20*time.Second, func() error {
		resp, err := mgmt.Get(directory)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}, "pebble's directory")

	certbotDir := filepath.Join(dir, "letsencrypt")
	webroot := filepath.Join(dir, "acme-webroot")
	live := filepath.Join(certbotDir, "live", acmeDomain)
	obtain := func(method string, more ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(deployDir, "acme", "obtain-cert.sh"))
		cmd.Env = append([]string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "REQUESTS_CA_BUNDLE=" + caFile,
			"ACME_DOMAIN=" + acmeDomain, "ACME_SERVER=" + directory, "ACME_METHOD=" + method,
			"ACME_HTTP_PORT=" + fmt.Sprint(httpPort), "ACME_HTTP_ADDRESS=127.0.0.1", "ACME_WEBROOT=" + webroot,
			"ACME_CONFIG_DIR=" + certbotDir, "ACME_WORK_DIR=" + filepath.Join(dir, "certbot-work"),
			"ACME_LOGS_DIR=" + filepath.Join(dir, "certbot-logs"),
		}, more...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			logs, _ := os.ReadFile(filepath.Join(dir, "certbot-logs", "letsencrypt.log"))
			t.Fatalf("obtain-cert.sh (%s): %v\n%s\n--- certbot log (tail) ---\n%s", method, err, out, testkit.Tail(string(logs), 4000))
		}
	}

	// 1. The first certificate, with nothing on port 80 yet.
	obtain("standalone", "NGINX_RELOAD=")
	roots := x509.NewCertPool()
	rootPEM := fetch(t, mgmt, "https://"+mgmtAddr+"/roots/0")
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble's /roots/0 is not a PEM certificate: %q", rootPEM)
	}
	first := verifyChain(t, filepath.Join(live, "fullchain.pem"), roots, fetch(t, mgmt, "https://"+mgmtAddr+"/intermediates/0"))

	// 2. nginx with that certificate in front of a bridge node.
	n := startNode(t, "deploytest-acme", nil)
	s := site{domain: acmeDomain, upstreams: []string{n.addr}, httpAddr: fmt.Sprintf("127.0.0.1:%d", httpPort),
		httpsAddr: freeport.Addr(t), certDir: live, webroot: webroot}
	ngx := startNginx(t, renderSite(t, s), s.httpsAddr)
	served := func() *x509.Certificate {
		t.Helper()
		c := client("127.0.0.1", s.httpsAddr, roots)
		resp, err := c.Get("https://" + acmeDomain + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz over pebble's certificate: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), n.id) {
			t.Fatalf("GET /healthz over pebble's certificate: %d %s, want 200 from %s", resp.StatusCode, body, n.id)
		}
		return resp.TLS.PeerCertificates[0]
	}
	if got := served(); !got.Equal(first) {
		t.Fatalf("nginx serves serial %s, want the certificate certbot obtained (serial %s)", got.SerialNumber, first.SerialNumber)
	}

	// 3. A renewal through nginx's ACME location; the script reloads nginx.
	obtain("webroot", "ACME_RENEW=force", "NGINX_RELOAD="+ngx.reloadCommand())
	second := verifyChain(t, filepath.Join(live, "fullchain.pem"), roots, nil)
	if second.Equal(first) {
		t.Fatal("the forced renewal left the same certificate")
	}
	// pebble reuses no authorization (PEBBLE_AUTHZREUSE=0): its validation
	// fetched the token through nginx.
	if !regexp.MustCompile(`"GET /\.well-known/acme-challenge/[A-Za-z0-9_-]+ HTTP/1\.1" 200 `).Match(mustRead(t, filepath.Join(ngx.prefix, "access.log"))) {
		t.Errorf("nginx's access log shows no ACME challenge fetched with 200:\n%s", mustRead(t, filepath.Join(ngx.prefix, "access.log")))
	}
	testkit.WaitFor(t, 20*time.Second, func() error {
		if got := served(); !got.Equal(second) {
			return fmt.Errorf("serial %s, want %s", got.SerialNumber, second.SerialNumber)
		}
		return nil
	}, "nginx to serve the renewed certificate")

	// 4. Without ACME_RENEW the certificate is kept and nothing reloads.
	obtain("webroot", "NGINX_RELOAD=false")
}

// fetch GETs url and returns the body of a 200 answer.
func fetch(t *testing.T, c *http.Client, url string) []byte {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return body
}

// verifyChain checks that the certificate chain in path is for acmeDomain
// and verifies up to roots, with the given intermediate when it is not nil
// among the chain, and returns the leaf.
func verifyChain(t *testing.T, path string, roots *x509.CertPool, wantIntermediate []byte) *x509.Certificate {
	t.Helper()
	rest := mustRead(t, path)
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("%s holds %d certificates, want the leaf and pebble's intermediate", path, len(certs))
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: acmeDomain, Roots: roots, Intermediates: inter}); err != nil {
		t.Fatalf("%s does not verify for %s against pebble's root: %v", path, acmeDomain, err)
	}
	if wantIntermediate != nil {
		b, _ := pem.Decode(wantIntermediate)
		if b == nil {
			t.Fatalf("pebble's /intermediates/0 is not PEM: %q", wantIntermediate)
		}
		found := false
		for _, c := range certs[1:] {
			found = found || string(c.Raw) == string(b.Bytes)
		}
		if !found {
			t.Errorf("%s does not carry pebble's intermediate from /intermediates/0", path)
		}
	}
	return certs[0]
}
