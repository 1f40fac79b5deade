package deploytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "deploytest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a server certificate for names (DNS names or IPs) signed by
// the CA to dir/fullchain.pem and dir/privkey.pem, the file names certbot
// uses.
func (ca *testCA) issue(t testing.TB, dir string, names ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem...)
	writeFile(t, filepath.Join(dir, "fullchain.pem"), chain)
	writeFile(t, filepath.Join(dir, "privkey.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// site is the values render.sh fills into deploy/nginx/bridge.conf.
type site struct {
	domain    string
	upstreams []string
	httpAddr  string // 127.0.0.1:port
	httpsAddr string
	certDir   string
	webroot   string
}

// nginxRun is one nginx started by a test, with its own prefix directory.
type nginxRun struct {
	bin, prefix, conf string
}

// renderSite runs deploy/nginx/render.sh with the site's values.
func renderSite(t testing.TB, s site) []byte {
	t.Helper()
	cmd := exec.Command(filepath.Join(deployDir, "nginx", "render.sh"))
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "DOMAIN=" + s.domain, "UPSTREAMS=" + strings.Join(s.upstreams, ","),
		"LISTEN_HTTP=" + s.httpAddr, "LISTEN_HTTPS=" + s.httpsAddr, "CERT_DIR=" + s.certDir, "ACME_WEBROOT=" + s.webroot,
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("render.sh: %v\n%s", err, stderr)
	}
	return out
}

// nginxMainConf is the main configuration a test runs nginx with: every
// path inside the prefix, the sites included in the http context as
// Debian's nginx.conf includes sites-enabled.
func nginxMainConf(prefix string, includes ...string) string {
	var b strings.Builder
	// Run as root, nginx would start its workers as nobody, who cannot
	// read the test's private temporary directories.
	if os.Geteuid() == 0 {
		if u, err := user.Current(); err == nil {
			fmt.Fprintf(&b, "user %s;\n", u.Username)
		}
	}
	fmt.Fprintf(&b, "worker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log info;\n", prefix, prefix)
	b.WriteString("events { worker_connections 256; }\nhttp {\n")
	fmt.Fprintf(&b, "  access_log %s/access.log;\n", prefix)
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "  %s_temp_path %s/tmp/%s;\n", d, prefix, d)
	}
	for _, inc := range includes {
		fmt.Fprintf(&b, "  include %s;\n", inc)
	}
	b.WriteString("}\n")
	return b.String()
}

// startNginx writes the rendered site and a main configuration into a new
// prefix, checks it with `nginx -t`, starts nginx in the foreground and
// waits until it accepts connections on waitAddr.
func startNginx(t testing.TB, siteConf []byte, waitAddr string, extra ...string) *nginxRun {
	t.Helper()
	bin := needTool(t, "nginx", "nginx", "/usr/sbin/nginx")
	prefix := t.TempDir()
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	sitePath := filepath.Join(prefix, "bridge.conf")
	writeFile(t, sitePath, siteConf)
	n := &nginxRun{bin: bin, prefix: prefix, conf: filepath.Join(prefix, "nginx.conf")}
	writeFile(t, n.conf, []byte(nginxMainConf(prefix, append([]string{sitePath}, extra...)...)))
	if out, err := exec.Command(bin, n.args("-t")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\n--- site ---\n%s", err, out, siteConf)
	}
	p := startProc(t, bin, nil, n.args("-g", "daemon off;")...)
	testkit.WaitFor(t, 20*time.Second, func() error {
		if done, err := p.exited(); done {
			t.Fatalf("nginx exited: %v\n%s", err, p.out.String())
		}
		c, err := net.DialTimeout("tcp", waitAddr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}, "nginx to listen on %s", waitAddr)
	return n
}

// args returns nginx's arguments for this prefix, followed by more.
func (n *nginxRun) args(more ...string) []string {
	return append([]string{"-p", n.prefix, "-e", filepath.Join(n.prefix, "error.log"), "-c", n.conf}, more...)
}

// reloadCommand is the command line that reloads this nginx.
func (n *nginxRun) reloadCommand() string {
	return n.bin + " " + strings.Join(n.args("-s", "reload"), " ")
}

// client returns an HTTP client that reaches every name at addr, from the
// local address from (a 127.0.0.x address), trusting roots.
func client(from, addr string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
