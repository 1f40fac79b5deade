package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// file writes the CA's certificate as PEM into dir and returns its path.
func (ca *testCA) file(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, ca.cert.Subject.CommonName+".pem")
	if err := os.WriteFile(path, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serverCert issues a certificate for 127.0.0.1.
func (ca *testCA) serverCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "xmtp node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsFront terminates TLS in front of a plain gRPC server: the way an XMTP
// node is reached behind a load balancer. It counts completed handshakes.
type tlsFront struct {
	addr       string
	handshakes atomic.Int64
}

func startTLSFront(t testing.TB, backend string, cert tls.Certificate) *tlsFront {
	t.Helper()
	ln, err := tls.Listen("tcp", freeport.Addr(t), &tls.Config{
		Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"},
	})
	if err != nil {
		t.Fatalf("listen for tls: %v", err)
	}
	f := &tlsFront{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	var conns sync.Map
	t.Cleanup(func() {
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				f.handshakes.Add(1)
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				conns.Store(b, true)
				defer b.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return f
}

// TestNodeReachesXMTPOverTLS puts a TLS front with a certificate of a
// test CA before the XMTP node. A bridge node with BRIDGE_XMTP_TLS=true
// and that CA in BRIDGE_XMTP_CA_FILE starts, serves, and answers an XMTP
// message through it. The same node fails to start, exit 1 with the
// reason, against the plain XMTP node and against the front when it
// trusts another CA.
func TestNodeReachesXMTPOverTLS(t *testing.T) {
	t.Parallel()
	c := prepareCluster(t, pgtest.NewDatabase(t, template), nil)
	ca, other := newTestCA(t, "bridge-test-ca"), newTestCA(t, "another-ca")
	front := startTLSFront(t, c.xmtpGRPC, ca.serverCert(t))
	caFile, otherFile := ca.file(t, c.dir), other.file(t, c.dir)

	for _, tc := range []struct {
		name, node, ca, reason string
	}{
		{"plain node", c.xmtpGRPC, caFile, "tls: first record does not look like a TLS handshake"},
		{"wrong CA", front.addr, otherFile, "x509: certificate signed by unknown authority"},
	} {
		env := map[string]string{}
		for k, v := range c.env {
			env[k] = v
		}
		env["BRIDGE_XMTP_NODE"], env["BRIDGE_XMTP_TLS"], env["BRIDGE_XMTP_CA_FILE"] = tc.node, "true", tc.ca
		env["BRIDGE_HTTP_ADDR"] = freeport.Addr(t)
		p := start(t, "bridge node, "+tc.name, c.dir, env, "node")
		testkit.WaitFor(t, time.Minute, func() bool {
			if readyStatus("http://"+env["BRIDGE_HTTP_ADDR"]) == 200 {
				t.Fatalf("%s: the node started and is ready, though TLS to the XMTP node must fail", tc.name)
			}
			return p.exited()
		}, "%s: the node to stop", tc.name)
		code := p.wait(time.Second)
		logs := p.errs.String()
		if code != 1 {
			t.Errorf("%s: exit status %d, want 1:\n%s", tc.name, code, testkit.Tail(logs, 2000))
			continue
		}
		if !strings.Contains(logs, "over tls (BRIDGE_XMTP_TLS, BRIDGE_XMTP_CA_FILE)") || !strings.Contains(logs, tc.reason) {
			t.Errorf("%s: the node did not say that TLS to the XMTP node failed and why (%q):\n%s", tc.name, tc.reason, testkit.Tail(logs, 2000))
		}
		t.Logf("%s: exit 1: %s", tc.name, lastLine(logs, "over tls"))
	}

	c.env["BRIDGE_XMTP_NODE"], c.env["BRIDGE_XMTP_TLS"], c.env["BRIDGE_XMTP_CA_FILE"] = front.addr, "true", caFile
	c.startNode()
	if front.handshakes.Load() == 0 {
		t.Fatal("the node is ready but made no TLS handshake with the front")
	}
	tg := webhooktest.NewTarget(t, "json")
	_, addr := echoBridge(t, c, tg)
	b := newBurst(t, c.xmtpGRPC, addr, 1, 3)
	b.start()
	b.wait(time.Minute)
	b.checkNothingLost(tg, c.db)
	t.Logf("the node reached the XMTP node over TLS: %d handshakes", front.handshakes.Load())
}

// lastLine returns the last line of logs that contains s.
func lastLine(logs, s string) string {
	lines := strings.Split(logs, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}
