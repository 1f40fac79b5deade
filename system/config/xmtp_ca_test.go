package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestXMTPCAFile reads the authorities of BRIDGE_XMTP_CA_FILE at load: a
// PEM certificate becomes the root pool of the XMTP connection, and a
// missing file, a directory or device, a file without a certificate, a
// huge file, or the variable without BRIDGE_XMTP_TLS is a problem that
// names it.
func TestXMTPCAFile(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, raw []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	load := func(kv ...string) (*Config, error) {
		return Load(env(append([]string{EnvXMTPNode, "xmtp.example.net:5556"}, kv...)...), WithMode(ModeDev))
	}

	c, err := load(EnvXMTPTLS, "true", EnvXMTPCAFile, good)
	if err != nil {
		t.Fatalf("a PEM certificate: %v", err)
	}
	if c.XMTPCAFile != good || c.XMTPRootCAs == nil || !c.XMTPRootCAs.Equal(func() *x509.CertPool {
		p := x509.NewCertPool()
		cert, _ := x509.ParseCertificate(der)
		p.AddCert(cert)
		return p
	}()) {
		t.Fatalf("the root pool does not hold the file's certificate: file %q", c.XMTPCAFile)
	}
	if c, err := load(EnvXMTPTLS, "true"); err != nil || c.XMTPRootCAs != nil {
		t.Fatalf("without the variable the system's roots apply (nil pool): %v, %v", c, err)
	}

	for _, tc := range []struct {
		name, path, tls, want string
	}{
		{"missing file", filepath.Join(dir, "nope.pem"), "true", "cannot be read"},
		{"not PEM", write("junk.pem", []byte("-----BEGIN NOTHING-----\nzz\n")), "true", "holds no PEM certificate"},
		{"too large", write("huge.pem", []byte(strings.Repeat("a", maxCAFileBytes+1))), "true", "larger than 1 MiB"},
		{"a directory", dir, "true", "is not a regular file"},
		{"a device", os.DevNull, "true", "is not a regular file"},
		{"without TLS", good, "false", "BRIDGE_XMTP_TLS is false"},
	} {
		_, err := load(EnvXMTPTLS, tc.tls, EnvXMTPCAFile, tc.path)
		var verr *ValidationError
		if !errors.As(err, &verr) || !strings.Contains(err.Error(), EnvXMTPCAFile+": ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want a problem of %s saying %q", tc.name, err, EnvXMTPCAFile, tc.want)
		}
	}
}
