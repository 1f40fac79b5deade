package config

import (
	"errors"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"net/url"
	"strings"
	"testing"
)

// FuzzLoad feeds Load arbitrary values, written as NAME=value lines, in
// every mode. Load must never panic, every problem must name a documented
// variable, and a loaded configuration must show no secret when logged.
func FuzzLoad(f *testing.F) {
	f.Add("BRIDGE_HTTP_ADDR=localhost\nBRIDGE_MASTER_KEY=abc", uint8(0))
	f.Add("DATABASE_URL=postgres://u:p@h/db\nBRIDGE_MASTER_KEY="+testkit.MasterKey+"\nBRIDGE_ADMIN_TOKEN="+testAdmin+"\nBRIDGE_SIGNUP_OPEN=1\nBRIDGE_XMTP_NODE=h:1", uint8(0))
	f.Add("BRIDGE_MASTER_KEYS_PREVIOUS=a:"+testkit.MasterKey+",b:x,,:\nBRIDGE_MASTER_KEY_ID=a", uint8(1))
	f.Add("BRIDGE_XMTP_NODE_GRPC_ADDR=[::1]:0\nBRIDGE_XMTP_NODE_HTTP_ADDR=[::1]:0\nBRIDGE_SHUTDOWN_TIMEOUT=1h1s", uint8(2))
	f.Add("DATABASE_URL=postgresql:///x?host=/tmp\nBRIDGE_MAX_BODY_BYTES=99999999999999999999", uint8(3))
	f.Add("BRIDGE_NODE_ID=\xff\nBRIDGE_LOG_LEVEL=WARNING\nBRIDGE_SIGNUP_KEY=\x00\x01", uint8(1))
	f.Add("BRIDGE_CANARY_INTERVAL=500ms\nBRIDGE_CANARY_SAMPLE=-3\nBRIDGE_CANARY_URL=http://u:pw@h/canary\nBRIDGE_LEASE_TTL=0s\nBRIDGE_SWEEP_INTERVAL=1ms", uint8(1))
	f.Add("BRIDGE_CLUSTER_PROVIDER=etcd\nBRIDGE_ETCD_ENDPOINTS=a:1, ,b:0\nBRIDGE_ETCD_PREFIX=/x/\nBRIDGE_CLUSTER_HOST=::\nBRIDGE_CLUSTER_PEERS=a:1", uint8(1))
	f.Add("BRIDGE_CLUSTER_HOST=0.0.0.0\nBRIDGE_CLUSTER_ADVERTISED_HOST=[::1]\nBRIDGE_CLUSTER_PORT=65536\nBRIDGE_PROXY_HEADER=X-Real-IP\nBRIDGE_TRUSTED_PROXIES=10.0.0.0/8,::1,x", uint8(1))
	f.Add("BRIDGE_XMTP_NODE=h:1\nBRIDGE_XMTP_TLS=true\nBRIDGE_XMTP_CA_FILE=/nonexistent/ca.pem", uint8(0))
	f.Add("BRIDGE_XMTP_NODE=h:1\nBRIDGE_XMTP_CA_FILE=/", uint8(1))
	f.Add("BRIDGE_BREAKER_OPEN_AFTER=0\nBRIDGE_BREAKER_PROBE_MIN=1h\nBRIDGE_BREAKER_PROBE_MAX=1ms\nBRIDGE_BREAKER_DISABLE_AFTER=-1s", uint8(1))
	modes := []Mode{ModeNode, ModeDev, ModeXMTPNode, ModeMigrate}
	secretKeys := map[string]bool{"master_key": true, "admin_token": true, "signup_key": true}

	f.Fuzz(func(t *testing.T, data string, mode uint8) {
		values := map[string]string{}
		for _, line := range strings.Split(data, "\n") {
			if name, value, ok := strings.Cut(line, "="); ok {
				values[name] = value
			}
		}
		lookup := func(name string) (string, bool) { v, ok := values[name]; return v, ok }
		c, err := Load(lookup, WithMode(modes[int(mode)%len(modes)]), WithHostname(fixedHost))
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) == 0 {
				t.Fatalf("error is not a non-empty *ValidationError: %T %v", err, err)
			}
			for _, p := range verr.Problems {
				if _, ok := LookupVar(p.Var); !ok {
					t.Fatalf("problem names an undocumented variable: %q", p.Error())
				}
				if !strings.HasPrefix(p.Error(), p.Var+": ") || p.Message == "" {
					t.Fatalf("problem does not start with its variable: %q", p.Error())
				}
			}
			return
		}
		for _, a := range c.LogValue().Group() {
			if secretKeys[a.Key] {
				if v := a.Value.String(); v != "" && v != redacted {
					t.Fatalf("%s logged as %q", a.Key, v)
				}
			}
		}
		if orig, err := url.Parse(c.DatabaseURL); err == nil {
			red, err := url.Parse(RedactURL(c.DatabaseURL))
			if err != nil {
				t.Fatalf("redacted url does not parse: %v", err)
			}
			if _, has := orig.User.Password(); has {
				if pw, _ := red.User.Password(); pw != "xxxxx" {
					t.Fatalf("database password printed: %s", RedactURL(c.DatabaseURL))
				}
			}
			if orig.Query().Has("password") && red.Query().Get("password") != "xxxxx" {
				t.Fatalf("database password printed: %s", RedactURL(c.DatabaseURL))
			}
		}
	})
}
