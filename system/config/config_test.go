package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	testAdmin  = "admin-token-0123456789"
	testSignup = "signup-key-0123456789"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func fixedHost() (string, error) { return "test-host", nil }

func validationError(t *testing.T, err error) *ValidationError {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want *ValidationError, got %T: %v", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error does not match ErrInvalid: %v", err)
	}
	return verr
}

func TestLoadDevDefaults(t *testing.T) {
	c, err := Load(env(), WithMode(ModeDev), WithHostname(fixedHost))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{
		Mode: ModeDev, DatabaseURL: DevDatabaseURL, HTTPAddr: "127.0.0.1:8080", NodeID: "test-host",
		LogLevel: slog.LevelInfo, LogFormat: "text", ShutdownTimeout: 30 * time.Second,
		MasterKey: MasterKey{ID: "k1"}, SignupRatePerMinute: 10, AllowPrivateTargets: true,
		TokenFailuresPerMinute: 10, MaxBridgesPerAccount: 100, SendRatePerSecond: 20, SendBurst: 40,
		MaxBodyBytes: 1 << 20, XMTPNodeGRPCAddr: "127.0.0.1:5556", XMTPNodeHTTPAddr: "127.0.0.1:5555",
		XMTPSetProofs: true, XMTPNodeAuthn: true, XMTPMaxEnvelopeBytes: 1 << 20, XMTPMaxTopicsPerRequest: 1000,
		XMTPMaxEnvelopesPerPublish: 16, XMTPSubscriberBufferBytes: 8 << 20, XMTPMaxSubscriptionsPerClient: 256,
		XMTPMaxSubscriptions: 10_000, XMTPNodeMaxConns: 16,
		CanaryInterval: time.Minute, LeaseTTL: 15 * time.Second, ReconcileInterval: 15 * time.Second,
		SweepInterval: 5 * time.Second, ReplyLoopLimit: 20,
		BreakerOpenAfter: 5, BreakerProbeMin: 5 * time.Second, BreakerProbeMax: 5 * time.Minute, BreakerDisableAfter: 120 * time.Hour,
		Cluster: Cluster{Provider: ProviderAutomanaged, Name: "xmtp-bridge", Host: "127.0.0.1",
			EtcdEndpoints: []string{"127.0.0.1:2379"}, EtcdPrefix: "/xmtp-bridge"},
	}
	if fmt.Sprintf("%#v", *c) != fmt.Sprintf("%#v", want) || c.MasterKey.Key != nil || len(c.PreviousMasterKeys) != 0 {
		t.Fatalf("dev defaults:\n got %v\nwant %v", c, want)
	}
	if !c.RunsLocalXMTPNode() {
		t.Fatal("dev without BRIDGE_XMTP_NODE must run the local XMTP node")
	}
}

func TestLoadNodeAllValues(t *testing.T) {
	prevKey := "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	c, err := Load(env(
		EnvDatabaseURL, "postgres://bridge:pw@db:5432/bridge",
		EnvHTTPAddr, "0.0.0.0:9000",
		EnvNodeID, "node-7",
		EnvLogLevel, "DEBUG",
		EnvLogFormat, "json",
		EnvShutdownTimeout, "5s",
		EnvMasterKey, testkit.MasterKey,
		EnvMasterKeyID, "k2",
		EnvMasterKeysPrevious, "k1:"+prevKey+", k0:"+strings.TrimRight(prevKey, "="),
		EnvAdminToken, testAdmin,
		EnvSignupKey, testSignup,
		EnvSignupRate, "30",
		EnvRelayccSharedKey, "true",
		EnvTokenFailureRate, "5",
		EnvMaxBridgesPerAccount, "7",
		EnvSendRate, "3",
		EnvSendBurst, "4",
		EnvAllowPrivateTargets, "yes",
		EnvMaxBodyBytes, "2048",
		EnvXMTPNode, "xmtp.example.net:5556",
		EnvXMTPTLS, "true",
		EnvXMTPSetProofs, "false",
	), WithHostname(fixedHost))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Mode != ModeNode || c.HTTPAddr != "0.0.0.0:9000" || c.NodeID != "node-7" || c.LogLevel != slog.LevelDebug ||
		c.LogFormat != "json" || c.ShutdownTimeout != 5*time.Second || c.MasterKey.ID != "k2" || len(c.MasterKey.Key) != 32 ||
		c.SignupRatePerMinute != 30 || !c.AllowPrivateTargets || c.MaxBodyBytes != 2048 || c.XMTPNode != "xmtp.example.net:5556" ||
		!c.XMTPTLS || c.XMTPSetProofs || c.RunsLocalXMTPNode() || !c.RelayccSharedKey || c.TokenFailuresPerMinute != 5 ||
		c.MaxBridgesPerAccount != 7 || c.SendRatePerSecond != 3 || c.SendBurst != 4 {
		t.Fatalf("unexpected config: %v", c)
	}
	if len(c.PreviousMasterKeys) != 2 || c.PreviousMasterKeys[0].ID != "k1" || c.PreviousMasterKeys[1].ID != "k0" ||
		!bytes.Equal(c.PreviousMasterKeys[0].Key, c.PreviousMasterKeys[1].Key) || c.PreviousMasterKeys[0].Key[0] != 0xde {
		t.Fatalf("previous keys: %v", c.PreviousMasterKeys)
	}
}

func TestLoadNodeReportsEveryMissingValue(t *testing.T) {
	_, err := Load(env(), WithHostname(fixedHost))
	verr := validationError(t, err)
	want := []string{EnvDatabaseURL, EnvMasterKey, EnvAdminToken, EnvSignupKey, EnvXMTPNode}
	if !slices.Equal(verr.Vars(), want) {
		t.Fatalf("problems for %v, want %v\n%v", verr.Vars(), want, err)
	}
	for _, p := range verr.Problems {
		if !strings.Contains(p.Message, "is required") || p.Example == "" || !strings.HasSuffix(p.Error(), "(example: "+p.Example+")") {
			t.Errorf("problem without reason or example: %q", p.Error())
		}
	}
}

func TestLoadSignupOpenNeedsNoKey(t *testing.T) {
	_, err := Load(env(EnvDatabaseURL, "postgres://db/bridge", EnvMasterKey, testkit.MasterKey, EnvAdminToken, testAdmin,
		EnvXMTPNode, "127.0.0.1:5556", EnvSignupOpen, "true"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
}

func TestLoadReportsEveryBadValueAtOnce(t *testing.T) {
	_, err := Load(env(
		EnvDatabaseURL, "mysql://root:hunter2-secret@db/x",
		EnvHTTPAddr, "localhost",
		EnvNodeID, "node 1",
		EnvLogLevel, "loud",
		EnvLogFormat, "xml",
		EnvShutdownTimeout, "forever",
		EnvMasterKey, "not-a-key-but-a-secret",
		EnvMasterKeyID, "k/1",
		EnvMasterKeysPrevious, "k0:c2VjcmV0LXByZXZpb3Vz,nocolonsecret",
		EnvAdminToken, "short-secret",
		EnvSignupKey, "has a space in the secret",
		EnvSignupOpen, "maybe",
		EnvSignupRate, "0",
		EnvRelayccSharedKey, "always",
		EnvTokenFailureRate, "0",
		EnvMaxBridgesPerAccount, "none",
		EnvSendRate, "-3",
		EnvSendBurst, "0",
		EnvAllowPrivateTargets, "2",
		EnvMaxBodyBytes, "1k",
		EnvXMTPNode, ":5556",
		EnvXMTPTLS, "sure",
		EnvXMTPSetProofs, "perhaps",
		EnvXMTPNodeGRPCAddr, "127.0.0.1:99999",
		EnvXMTPNodeHTTPAddr, "127.0.0.1",
		EnvXMTPNodeAuthn, "nope",
		EnvXMTPMaxEnvelopeBytes, "-1",
		EnvXMTPMaxTopicsPerRequest, "many",
		EnvXMTPMaxEnvelopesPerPub, "0",
		EnvXMTPSubscriberBuffer, "8MB",
		EnvXMTPMaxSubsPerClient, "-3",
		EnvXMTPMaxSubscriptions, "lots",
		EnvPprofAddr, "6060",
	), WithHostname(fixedHost))
	verr := validationError(t, err)
	wantLines := []string{
		`DATABASE_URL: is not a postgres:// or postgresql:// URL (example: postgres://bridge:secret@127.0.0.1:5432/bridge?sslmode=disable)`,
		`BRIDGE_HTTP_ADDR: "localhost" is not host:port (example: 127.0.0.1:8080)`,
		`BRIDGE_NODE_ID: "node 1" is not 1 to 63 letters, digits, '.', '_' or '-' (example: bridge-1)`,
		`BRIDGE_LOG_LEVEL: "loud" is not one of debug, info, warn, error (example: debug)`,
		`BRIDGE_LOG_FORMAT: "xml" is not one of text, json (example: json)`,
		`BRIDGE_SHUTDOWN_TIMEOUT: "forever" is not a duration (example: 10s)`,
		`BRIDGE_MASTER_KEY_ID: "k/1" is not 1 to 32 letters, digits, '_' or '-' (example: k2)`,
		"BRIDGE_MASTER_KEY: is not base64 of exactly 32 bytes (make one with `openssl rand -base64 32`) (example: q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=)",
		`BRIDGE_MASTER_KEYS_PREVIOUS: entry 1 (key id "k0") is not base64 of exactly 32 bytes (example: k0:3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=)`,
		`BRIDGE_MASTER_KEYS_PREVIOUS: entry 2 is not id:base64 (example: k0:3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=)`,
		`BRIDGE_ADMIN_TOKEN: is 12 characters long; use at least 16 (example: adm_4f9c2e7b1d8a6c3e5f0b)`,
		`BRIDGE_SIGNUP_KEY: contains spaces, control or non-ASCII characters (example: sk_7d1e9a4c2b6f8e3d0a5c)`,
		`BRIDGE_SIGNUP_OPEN: "maybe" is not a boolean (true or false) (example: true)`,
		`BRIDGE_SIGNUP_RATE: 0 is outside 1 to 1000000 (example: 30)`,
		`BRIDGE_RELAYCC_SHARED_KEY: "always" is not a boolean (true or false) (example: true)`,
		`BRIDGE_TOKEN_FAILURE_RATE: 0 is outside 1 to 1000000 (example: 30)`,
		`BRIDGE_MAX_BRIDGES_PER_ACCOUNT: "none" is not a whole number (example: 1000)`,
		`BRIDGE_SEND_RATE: -3 is outside 1 to 1000000 (example: 50)`,
		`BRIDGE_SEND_BURST: 0 is outside 1 to 1000000 (example: 100)`,
		`BRIDGE_ALLOW_PRIVATE_TARGETS: "2" is not a boolean (true or false) (example: true)`,
		`BRIDGE_MAX_BODY_BYTES: "1k" is not a whole number (example: 262144)`,
		`BRIDGE_XMTP_NODE: ":5556" needs a host and a non-zero port to dial (example: xmtp.example.net:5556)`,
		`BRIDGE_XMTP_TLS: "sure" is not a boolean (true or false) (example: true)`,
		`BRIDGE_XMTP_SET_PROOFS: "perhaps" is not a boolean (true or false) (example: false)`,
		`BRIDGE_XMTP_NODE_GRPC_ADDR: "127.0.0.1:99999" is not host:port (example: 0.0.0.0:5556)`,
		`BRIDGE_XMTP_NODE_HTTP_ADDR: "127.0.0.1" is not host:port (example: 0.0.0.0:5555)`,
		`BRIDGE_XMTP_NODE_AUTHN: "nope" is not a boolean (true or false) (example: false)`,
		`BRIDGE_XMTP_MAX_ENVELOPE_BYTES: -1 is outside 1024 to 67108864 (example: 524288)`,
		`BRIDGE_XMTP_MAX_TOPICS_PER_REQUEST: "many" is not a whole number (example: 100)`,
		`BRIDGE_XMTP_MAX_ENVELOPES_PER_PUBLISH: 0 is outside 1 to 1000 (example: 4)`,
		`BRIDGE_XMTP_SUBSCRIBER_BUFFER_BYTES: "8MB" is not a whole number (example: 4194304)`,
		`BRIDGE_XMTP_MAX_SUBSCRIPTIONS_PER_CLIENT: -3 is outside 1 to 1000000 (example: 64)`,
		`BRIDGE_XMTP_MAX_SUBSCRIPTIONS: "lots" is not a whole number (example: 2000)`,
		`BRIDGE_PPROF_ADDR: "6060" is not host:port (example: 127.0.0.1:6060)`,
	}
	got := strings.Split(err.Error(), "\n")
	for _, w := range wantLines {
		if !slices.Contains(got, w) {
			t.Errorf("missing problem line:\n  %s", w)
		}
	}
	if t.Failed() {
		t.Fatalf("got:\n%v", err)
	}
	for _, secret := range []string{"hunter2", "not-a-key-but-a-secret", "c2VjcmV0LXByZXZpb3Vz", "nocolonsecret", "short-secret", "space in the secret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error text shows the secret %q:\n%v", secret, err)
		}
	}
	for _, p := range verr.Problems {
		if _, ok := LookupVar(p.Var); !ok {
			t.Errorf("problem names an undocumented variable: %q", p.Error())
		}
	}
}

func TestLoadCrossChecks(t *testing.T) {
	_, err := Load(env(EnvXMTPTLS, "true", EnvMasterKeyID, "k1", EnvMasterKeysPrevious, "k1:"+testkit.MasterKey,
		EnvHTTPAddr, "127.0.0.1:7000", EnvXMTPNodeGRPCAddr, "127.0.0.1:7000", EnvXMTPNodeHTTPAddr, "127.0.0.1:7000"),
		WithMode(ModeDev))
	verr := validationError(t, err)
	want := []string{EnvXMTPTLS, EnvMasterKeysPrevious, EnvXMTPNodeGRPCAddr, EnvXMTPNodeHTTPAddr, EnvXMTPNodeHTTPAddr}
	if !slices.Equal(verr.Vars(), want) {
		t.Fatalf("problems for %v, want %v\n%v", verr.Vars(), want, err)
	}
	// Port 0 never collides.
	if _, err := Load(env(EnvHTTPAddr, "127.0.0.1:0", EnvXMTPNodeGRPCAddr, "127.0.0.1:0", EnvXMTPNodeHTTPAddr, "127.0.0.1:0"), WithMode(ModeDev)); err != nil {
		t.Fatalf("port 0 everywhere: %v", err)
	}
}

func TestLoadXMTPNodeLimits(t *testing.T) {
	c, err := Load(env(EnvDatabaseURL, "postgres://x@127.0.0.1/x", EnvXMTPMaxEnvelopesPerPub, "4", EnvXMTPSubscriberBuffer, "2097152",
		EnvXMTPMaxSubsPerClient, "8", EnvXMTPMaxSubscriptions, "100"), WithMode(ModeXMTPNode))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.XMTPMaxEnvelopesPerPublish != 4 || c.XMTPSubscriberBufferBytes != 2<<20 || c.XMTPMaxSubscriptionsPerClient != 8 || c.XMTPMaxSubscriptions != 100 {
		t.Fatalf("limits: %+v", c)
	}
	// A buffer smaller than one envelope, and a per-client cap above the
	// node's, are refused naming the variable.
	_, err = Load(env(EnvDatabaseURL, "postgres://x@127.0.0.1/x", EnvXMTPMaxEnvelopeBytes, "1048576", EnvXMTPSubscriberBuffer, "1048575",
		EnvXMTPMaxSubsPerClient, "101", EnvXMTPMaxSubscriptions, "100"), WithMode(ModeXMTPNode))
	verr := validationError(t, err)
	if want := []string{EnvXMTPSubscriberBuffer, EnvXMTPMaxSubsPerClient}; !slices.Equal(verr.Vars(), want) {
		t.Fatalf("problems for %v, want %v\n%v", verr.Vars(), want, err)
	}
}

func TestLoadModesRequireTheirValues(t *testing.T) {
	for _, mode := range []Mode{ModeXMTPNode, ModeMigrate} {
		_, err := Load(env(), WithMode(mode))
		if verr := validationError(t, err); !slices.Equal(verr.Vars(), []string{EnvDatabaseURL}) {
			t.Errorf("%s: problems for %v, want only DATABASE_URL", mode, verr.Vars())
		}
		if _, err := Load(env(EnvDatabaseURL, "postgres://127.0.0.1/x"), WithMode(mode)); err != nil {
			t.Errorf("%s: %v", mode, err)
		}
		if _, err := Load(env(EnvDatabaseURL, "postgresql:///bridge?host=/var/run/postgresql"), WithMode(mode)); err != nil {
			t.Errorf("%s: %v", mode, err)
		}
	}
	if _, err := Load(env(EnvDatabaseURL, "postgres:///bridge"), WithMode(ModeMigrate)); err == nil || !strings.Contains(err.Error(), "DATABASE_URL: has no host") {
		t.Errorf("a URL without a host: %v", err)
	}
	if _, err := Load(env(), WithMode("bogus")); err == nil || !strings.Contains(err.Error(), `mode: is unknown: "bogus"`) {
		t.Errorf("unknown mode: %v", err)
	}
}

// TestLoadReadsExactlyTheDocumentedVariables keeps Vars and Load in step:
// a variable read but not documented, or documented but never read, fails.
func TestLoadReadsExactlyTheDocumentedVariables(t *testing.T) {
	read := map[string]bool{}
	Load(func(name string) (string, bool) { read[name] = true; return "", false }, WithMode(ModeDev))
	seen := map[string]bool{}
	for _, v := range Vars {
		if seen[v.Name] {
			t.Errorf("%s is documented twice", v.Name)
		}
		seen[v.Name] = true
		if !read[v.Name] {
			t.Errorf("%s is documented but Load never reads it", v.Name)
		}
		if v.Example == "" || v.Description == "" {
			t.Errorf("%s lacks an example or a description", v.Name)
		}
	}
	for name := range read {
		if !seen[name] {
			t.Errorf("Load reads %s, which Vars does not document", name)
		}
	}
	// Every documented example is a valid value.
	for _, v := range Vars {
		if v.Name == EnvXMTPCAFile {
			continue // its example names a file of a deployment; see TestXMTPCAFile
		}
		xmtpNode, _ := LookupVar(EnvXMTPNode)
		if _, err := Load(env(EnvXMTPNode, xmtpNode.Example, v.Name, v.Example), WithMode(ModeDev)); err != nil {
			var verr *ValidationError
			if errors.As(err, &verr) && slices.Contains(verr.Vars(), v.Name) {
				t.Errorf("example of %s is rejected: %v", v.Name, err)
			}
		}
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	c, err := Load(env(
		EnvDatabaseURL, "postgres://bridge:db-password-42@db:5432/bridge?sslmode=disable",
		EnvMasterKey, testkit.MasterKey,
		EnvMasterKeysPrevious, "k0:3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		EnvAdminToken, testAdmin,
		EnvSignupKey, testSignup,
		EnvXMTPNode, "127.0.0.1:5556",
	))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "config", *c, "key", c.MasterKey)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		fmt.Fprintf(&buf, verb+"\n", c)
		fmt.Fprintf(&buf, verb+"\n", *c)
		fmt.Fprintf(&buf, verb+"\n", c.MasterKey)
		fmt.Fprintf(&buf, verb+"\n", c.PreviousMasterKeys)
	}
	out := buf.String()
	for _, secret := range []string{"db-password-42", testkit.MasterKey, "q83vEjRW", "3q2+7w", testAdmin, testSignup, fmt.Sprint(c.MasterKey.Key[:4])} {
		if strings.Contains(out, secret) {
			t.Errorf("output shows secret %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"postgres://bridge:xxxxx@db:5432/bridge", `"admin_token":"[redacted]"`, "master_key_id=k1", "previous_master_key_ids=k0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := RedactURL("postgres://u@h/db?password=inquery-secret"); strings.Contains(got, "inquery-secret") {
		t.Errorf("RedactURL kept a query password: %s", got)
	}
}

func TestPrepareDevKeepsMasterKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".data")
	c, err := Load(env(), WithMode(ModeDev))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := c.PrepareDev(dir, &out); err != nil {
		t.Fatalf("PrepareDev: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, DevMasterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	if len(c.MasterKey.Key) != 32 || len(c.AdminToken) < 16 || len(c.SignupKey) < 16 {
		t.Fatalf("dev secrets not filled: %v", c)
	}
	if !strings.Contains(out.String(), c.SignupKey) || !strings.Contains(out.String(), c.AdminToken) {
		t.Fatalf("generated keys not printed:\n%s", out.String())
	}

	again, _ := Load(env(EnvAdminToken, testAdmin, EnvSignupOpen, "true"), WithMode(ModeDev))
	out.Reset()
	if err := again.PrepareDev(dir, &out); err != nil {
		t.Fatalf("second PrepareDev: %v", err)
	}
	if !bytes.Equal(again.MasterKey.Key, c.MasterKey.Key) {
		t.Fatal("second run made a new master key instead of reading the file")
	}
	if again.AdminToken != testAdmin || again.SignupKey != "" || out.Len() != 0 {
		t.Fatalf("values from the environment were replaced or printed: %v\n%s", again, out.String())
	}

	if err := os.Chmod(filepath.Join(dir, DevMasterKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	third, _ := Load(env(), WithMode(ModeDev))
	if err := third.PrepareDev(dir, &out); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key file must be refused, got %v", err)
	}
}

func TestMarkdownMatchesReadme(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	section, err := ReadmeSection(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	if section != Markdown() {
		t.Fatalf("README.md's environment table is out of date; run `make readme-env`. It should be:\n%s", Markdown())
	}
}

func TestCanaryAndRuntimeSettings(t *testing.T) {
	c, err := Load(env(EnvCanaryInterval, "0", EnvCanarySample, "5", EnvCanaryURL, "https://bridge.example.net/canary",
		EnvLeaseTTL, "5s", EnvReconcileInterval, "1s", EnvSweepInterval, "200ms"), WithMode(ModeDev))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.CanaryInterval != 0 || c.CanarySample != 5 || c.CanaryURL != "https://bridge.example.net/canary" ||
		c.LeaseTTL != 5*time.Second || c.ReconcileInterval != time.Second || c.SweepInterval != 200*time.Millisecond {
		t.Fatalf("settings not read: %v", c)
	}
	_, err = Load(env(EnvCanaryInterval, "10ms", EnvCanaryURL, "ftp://x/canary", EnvCanarySample, "-1"), WithMode(ModeDev))
	verr := validationError(t, err)
	for _, name := range []string{EnvCanaryInterval, EnvCanaryURL, EnvCanarySample} {
		if !slices.Contains(verr.Vars(), name) {
			t.Errorf("no problem reported for %s: %v", name, err)
		}
	}
}

func TestLoadClusterSettings(t *testing.T) {
	c, err := Load(env(EnvClusterProvider, "etcd", EnvEtcdEndpoints, "etcd-1:2379, etcd-2:2379", EnvEtcdPrefix, "/prod/",
		EnvClusterHost, "0.0.0.0", EnvClusterAdvertisedHost, "bridge-1.internal", EnvClusterPort, "6331"), WithMode(ModeDev))
	if err != nil {
		t.Fatal(err)
	}
	want := Cluster{Provider: "etcd", Name: "xmtp-bridge", Host: "0.0.0.0", Port: 6331, AdvertisedHost: "bridge-1.internal",
		EtcdEndpoints: []string{"etcd-1:2379", "etcd-2:2379"}, EtcdPrefix: "/prod"}
	if fmt.Sprint(c.Cluster) != fmt.Sprint(want) {
		t.Fatalf("cluster settings %+v, want %+v", c.Cluster, want)
	}
	c, err = Load(env(), WithMode(ModeDev))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Provider != ProviderAutomanaged || c.Cluster.Host != "127.0.0.1" || len(c.Cluster.Peers) != 0 ||
		!slices.Equal(c.Cluster.EtcdEndpoints, []string{"127.0.0.1:2379"}) {
		t.Fatalf("defaults: %+v", c.Cluster)
	}
}

func TestLoadRejectsBadClusterSettings(t *testing.T) {
	_, err := Load(env(
		EnvClusterProvider, "consul",
		EnvClusterName, "my cluster",
		EnvClusterHost, "http://bridge-1:6331",
		EnvClusterPort, "70000",
		EnvClusterPeers, "bridge-1:6330,bridge-2",
		EnvEtcdEndpoints, "etcd-1:0",
		EnvEtcdPrefix, "prod",
	), WithMode(ModeDev))
	verr := validationError(t, err)
	want := []string{EnvClusterProvider, EnvClusterName, EnvClusterHost, EnvClusterPort, EnvClusterPeers, EnvEtcdEndpoints, EnvEtcdPrefix}
	if !slices.Equal(verr.Vars(), want) {
		t.Fatalf("problems for %v, want %v\n%v", verr.Vars(), want, err)
	}
	// Rules between variables.
	_, err = Load(env(EnvClusterProvider, "etcd", EnvClusterPeers, "a:1,b:1"), WithMode(ModeDev))
	if verr := validationError(t, err); !slices.Equal(verr.Vars(), []string{EnvClusterPeers}) {
		t.Errorf("peers with etcd: %v", err)
	}
	_, err = Load(env(EnvClusterPeers, "a:6330,b:6330"), WithMode(ModeDev))
	if verr := validationError(t, err); !slices.Equal(verr.Vars(), []string{EnvClusterProviderPort}) {
		t.Errorf("peers without a provider port: %v", err)
	}
	_, err = Load(env(EnvClusterHost, "0.0.0.0"), WithMode(ModeDev))
	if verr := validationError(t, err); !slices.Equal(verr.Vars(), []string{EnvClusterAdvertisedHost}) {
		t.Errorf("wildcard host without an advertised host: %v", err)
	}
}

func TestLoadProxySettings(t *testing.T) {
	c, err := Load(env(EnvProxyHeader, "X-Real-IP", EnvTrustedProxies, "127.0.0.1, 10.0.0.0/8"), WithMode(ModeDev))
	if err != nil {
		t.Fatal(err)
	}
	if c.ProxyHeader != "X-Real-IP" || !slices.Equal(c.TrustedProxies, []string{"127.0.0.1", "10.0.0.0/8"}) {
		t.Fatalf("proxy settings: %q %v", c.ProxyHeader, c.TrustedProxies)
	}
	_, err = Load(env(EnvProxyHeader, "X Real IP", EnvTrustedProxies, "10.0.0.0/33"), WithMode(ModeDev))
	if verr := validationError(t, err); !slices.Equal(verr.Vars(), []string{EnvProxyHeader, EnvTrustedProxies}) {
		t.Fatalf("bad proxy settings: %v", err)
	}
}

// TestPrepareDevKeepsTokensAcrossRestarts checks that dev's generated admin
// token and signup key are the same on the next start, kept in files of
// mode 0600, and that a file others can read or holding junk is refused.
func TestPrepareDevKeepsTokensAcrossRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".data")
	first, _ := Load(env(), WithMode(ModeDev))
	var out bytes.Buffer
	if err := first.PrepareDev(dir, &out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{DevAdminTokenFile, DevSignupKeyFile} {
		info, err := os.Stat(filepath.Join(dir, f))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", f, info, err)
		}
	}
	second, _ := Load(env(), WithMode(ModeDev))
	if err := second.PrepareDev(dir, &out); err != nil {
		t.Fatal(err)
	}
	if second.AdminToken != first.AdminToken || second.SignupKey != first.SignupKey {
		t.Fatal("a restart made new dev tokens")
	}
	if !strings.Contains(out.String(), "dev: signup key, kept in "+filepath.Join(dir, DevSignupKeyFile)+": "+first.SignupKey) {
		t.Fatalf("the kept signup key is not printed with its file:\n%s", out.String())
	}
	if err := os.Chmod(filepath.Join(dir, DevSignupKeyFile), 0o640); err != nil {
		t.Fatal(err)
	}
	third, _ := Load(env(), WithMode(ModeDev))
	if err := third.PrepareDev(dir, &out); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a group-readable signup key file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, DevAdminTokenFile), []byte("x y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, DevSignupKeyFile), 0o600)
	fourth, _ := Load(env(), WithMode(ModeDev))
	if err := fourth.PrepareDev(dir, &out); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("a junk admin token file: %v", err)
	}
}

// TestTombstoneSettings checks the defaults of the tombstone settings and
// that a bad value is refused with the variable's name.
func TestTombstoneSettings(t *testing.T) {
	c, err := Load(env(), WithMode(ModeDev))
	if err != nil {
		t.Fatal(err)
	}
	if c.TombstoneFor != 168*time.Hour || c.TombstoneMessage != DefaultTombstoneMessage {
		t.Fatalf("defaults: %v %q", c.TombstoneFor, c.TombstoneMessage)
	}
	c, err = Load(env(EnvTombstoneFor, "0", EnvTombstoneMessage, "Gone: write to 0xabc instead."), WithMode(ModeDev))
	if err != nil || c.TombstoneFor != 0 || c.TombstoneMessage != "Gone: write to 0xabc instead." {
		t.Fatalf("set values: %v %q %v", c.TombstoneFor, c.TombstoneMessage, err)
	}
	for _, bad := range [][2]string{{EnvTombstoneFor, "-1h"}, {EnvTombstoneFor, "soon"}, {EnvTombstoneMessage, "   "},
		{EnvTombstoneMessage, "two\nlines"}, {EnvTombstoneMessage, strings.Repeat("x", 501)}} {
		_, err := Load(env(bad[0], bad[1]), WithMode(ModeDev))
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%q: %v, want an error naming the variable", bad[0], bad[1], err)
		}
	}
}

func TestReplyLoopLimit(t *testing.T) {
	c, err := Load(env(EnvReplyLoopLimit, "0"), WithMode(ModeDev), WithHostname(fixedHost))
	if err != nil || c.ReplyLoopLimit != 0 {
		t.Fatalf("BRIDGE_REPLY_LOOP_LIMIT=0: %v, %v", c, err)
	}
	c, err = Load(env(EnvReplyLoopLimit, "60"), WithMode(ModeDev), WithHostname(fixedHost))
	if err != nil || c.ReplyLoopLimit != 60 {
		t.Fatalf("BRIDGE_REPLY_LOOP_LIMIT=60: %v, %v", c, err)
	}
	for _, bad := range []string{"-1", "many", "1e3"} {
		_, err := Load(env(EnvReplyLoopLimit, bad), WithMode(ModeDev), WithHostname(fixedHost))
		if err == nil || !strings.Contains(err.Error(), EnvReplyLoopLimit) {
			t.Errorf("BRIDGE_REPLY_LOOP_LIMIT=%s: error %v does not name the variable", bad, err)
		}
	}
}
