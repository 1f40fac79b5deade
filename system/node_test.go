package system

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system/config"
	"github.com/xmtpbridge/bridge/xmtp/node"
)

var template = pgtest.Template{Name: "system", Migrate: Migrate}

const (
	testAdmin  = "admin-token-0123456789"
	testSignup = "signup-key-0123456789"
)

// waitLog waits for the JSON log line of logs whose msg is msg and returns
// its string attributes. It fails the test if the run sends its result to
// done first.
func waitLog(t *testing.T, logs *testkit.Buffer, msg string, done <-chan error) map[string]string {
	t.Helper()
	var attrs map[string]string
	testkit.WaitFor(t, 20*time.Second, func() error {
		if recs := logs.Records(msg); len(recs) > 0 {
			attrs = map[string]string{}
			for k, v := range recs[0] {
				if s, ok := v.(string); ok {
					attrs[k] = s
				}
			}
			return nil
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended before logging %q: %v", msg, err)
		default:
		}
		return io.EOF
	}, "log line %s", msg)
	return attrs
}

func loadConfig(t testing.TB, mode config.Mode, kv ...string) *config.Config {
	t.Helper()
	m := map[string]string{
		config.EnvHTTPAddr:         "127.0.0.1:0",
		config.EnvXMTPNodeGRPCAddr: "127.0.0.1:0",
		config.EnvXMTPNodeHTTPAddr: "127.0.0.1:0",
		config.EnvMasterKey:        testkit.MasterKey,
		config.EnvAdminToken:       testAdmin,
		config.EnvSignupKey:        testSignup,
		config.EnvShutdownTimeout:  "10s",
		config.EnvDataDir:          t.TempDir(),
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := m[k]; return v, ok }, config.WithMode(mode))
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	return cfg
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func startNode(t testing.TB, cfg *config.Config, logs io.Writer) *Node {
	t.Helper()
	n, err := New(Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Version: "test", Commit: "abc"})
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})
	return n
}

// TestDevNodeServesWithLocalXMTPNode starts a dev node with the in-process
// XMTP node on real listeners and checks the API, readiness, metrics, the
// local node's gateway and a signup through the real store.
func TestDevNodeServesWithLocalXMTPNode(t *testing.T) {
	url := pgtest.NewDatabase(t, template)
	cfg := loadConfig(t, config.ModeDev, config.EnvDatabaseURL, url)
	var logs testkit.Buffer
	n := startNode(t, cfg, &logs)
	base := "http://" + n.HTTPAddr()

	if code, body, err := get(base + "/healthz"); err != nil || code != 200 {
		t.Fatalf("/healthz: %d %s %v", code, body, err)
	}
	if err := n.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if code, body, err := get(base + "/readyz"); err != nil || code != 200 {
		t.Fatalf("/readyz: %d %s %v", code, body, err)
	}
	code, metrics, err := get(base + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	for _, want := range []string{`bridge_build_info{commit="abc",node=`, "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The local XMTP node answers on its gRPC listener and on its gateway.
	if n.XMTPAddr() == "" || n.XMTPAddr() == "127.0.0.1:0" {
		t.Fatalf("XMTP address %q is not the bound one", n.XMTPAddr())
	}
	conn, err := net.Dial("tcp", n.XMTPAddr())
	if err != nil {
		t.Fatalf("dial local xmtp node: %v", err)
	}
	conn.Close()

	body, _ := json.Marshal(map[string]string{"name": "system test", "signupKey": testSignup})
	resp, err := http.Post(base+"/v1/accounts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("signup: %v", err)
	}
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(respBody), `"apiKey"`) {
		t.Fatalf("signup through the node: %d %s", resp.StatusCode, respBody)
	}

	for _, secret := range []string{testkit.MasterKey, testAdmin, testSignup} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain the secret %q", secret)
		}
	}
}

// TestNodeReadinessFollowsRemoteXMTPNode runs a node-mode bridge against a
// separately started XMTP node and checks that /readyz turns red when that
// node goes away.
func TestNodeReadinessFollowsRemoteXMTPNode(t *testing.T) {
	url := pgtest.NewDatabase(t, template)
	xn, err := node.New(node.Config{DatabaseURL: url, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := xn.Start(ctx); err != nil {
		t.Fatalf("start xmtp node: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			xn.Stop(context.Background())
		}
	})

	cfg := loadConfig(t, config.ModeNode, config.EnvDatabaseURL, url, config.EnvXMTPNode, xn.GRPCAddr())
	n := startNode(t, cfg, io.Discard)
	base := "http://" + n.HTTPAddr()
	if code, body, err := get(base + "/readyz"); err != nil || code != 200 {
		t.Fatalf("/readyz with the xmtp node up: %d %s %v", code, body, err)
	}

	if err := xn.Stop(ctx); err != nil {
		t.Fatalf("stop xmtp node: %v", err)
	}
	stopped = true
	testkit.WaitFor(t, 20*time.Second, func() error {
		code, body, err := get(base + "/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable {
			return &statusError{code, body}
		}
		return nil
	}, "/readyz to turn red")
	if err := n.Ready(ctx); err == nil || !strings.Contains(err.Error(), "reach xmtp node") {
		t.Fatalf("Ready with the xmtp node down: %v", err)
	}
	if code, _, err := get(base + "/healthz"); err != nil || code != 200 {
		t.Fatalf("/healthz must stay green while a dependency is down: %d %v", code, err)
	}
}

// TestNodeReadinessFollowsRemoteXMTPNodeQueries: a remote XMTP node that
// accepts connections but fails every query (its envelope table is gone)
// turns /readyz red, naming the query, and green again once its queries
// work; nothing but a TCP connection was checked before.
func TestNodeReadinessFollowsRemoteXMTPNodeQueries(t *testing.T) {
	url := pgtest.NewDatabase(t, template)
	xmtpURL := pgtest.NewDatabase(t, pgtest.Template{Name: "system_xmtpnode", Migrate: node.Migrate})
	xn, err := node.New(node.Config{DatabaseURL: xmtpURL, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Context(t, 2*time.Minute)
	if err := xn.Start(ctx); err != nil {
		t.Fatalf("start xmtp node: %v", err)
	}
	t.Cleanup(func() { xn.Stop(context.Background()) })

	cfg := loadConfig(t, config.ModeNode, config.EnvDatabaseURL, url, config.EnvXMTPNode, xn.GRPCAddr())
	n := startNode(t, cfg, io.Discard)
	base := "http://" + n.HTTPAddr()
	readyz := func(want int) func() error {
		return func() error {
			code, body, err := get(base + "/readyz")
			if err != nil {
				return err
			}
			if code != want {
				return &statusError{code, body}
			}
			return nil
		}
	}
	testkit.WaitFor(t, 20*time.Second, readyz(http.StatusOK), "/readyz green with the xmtp node up")

	db, err := pgx.Connect(ctx, xmtpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(ctx, `ALTER TABLE xmtp_envelopes RENAME TO xmtp_envelopes_away`); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, readyz(http.StatusServiceUnavailable), "/readyz to turn red while the xmtp node's queries fail")
	if err := n.Ready(ctx); err == nil || !strings.Contains(err.Error(), "query xmtp node") {
		t.Fatalf("Ready while the xmtp node's queries fail: %v; want the failed query named", err)
	}
	if _, err := db.Exec(ctx, `ALTER TABLE xmtp_envelopes_away RENAME TO xmtp_envelopes`); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, readyz(http.StatusOK), "/readyz green again once the queries work")
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return http.StatusText(e.code) + ": " + e.body }

func TestStartFailsWithTheReason(t *testing.T) {
	url := pgtest.NewDatabase(t, template)
	cases := []struct {
		name string
		cfg  *config.Config
		want string
	}{
		{"postgres unreachable", loadConfig(t, config.ModeDev, config.EnvDatabaseURL, "postgres://postgres@"+testkit.ClosedAddr(t)+"/x?sslmode=disable"), "migrate bridge schema"},
		{"xmtp node unreachable", loadConfig(t, config.ModeNode, config.EnvDatabaseURL, url, config.EnvXMTPNode, testkit.ClosedAddr(t)), "reach xmtp node"},
		{"http port busy", nil, "BRIDGE_HTTP_ADDR"},
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases[2].cfg = loadConfig(t, config.ModeDev, config.EnvDatabaseURL, url, config.EnvHTTPAddr, busy.Addr().String())

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), Options{Config: tc.cfg})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: want an error about %q, got %v", tc.want, err)
			}
		})
	}
}

// TestRunStopsCleanlyWhenTheContextEnds checks the graceful path of Run:
// the node serves, the context ends as on SIGTERM, and Run returns nil
// with every listener closed.
func TestRunStopsCleanlyWhenTheContextEnds(t *testing.T) {
	url := pgtest.NewDatabase(t, template)
	cfg := loadConfig(t, config.ModeDev, config.EnvDatabaseURL, url)
	var logs testkit.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	}()
	addr := waitLog(t, &logs, "node started", done)["http_addr"]
	if code, _, err := get("http://" + addr + "/healthz"); err != nil || code != 200 {
		t.Fatalf("/healthz: %d %v", code, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("the HTTP listener is still open after Run returned")
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a config must fail")
	}
	cfg := loadConfig(t, config.ModeDev)
	cfg.MasterKey.Key = nil
	if _, err := New(Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("New without a master key: %v", err)
	}
	x := loadConfig(t, config.ModeXMTPNode, config.EnvDatabaseURL, "postgres://h/x")
	if _, err := New(Options{Config: x}); err == nil {
		t.Fatal("New in xmtp-node mode must fail")
	}
}

// TestStopWithProbesInFlight stops a node while readiness probes keep
// arriving: a probe in flight must not hold up the shutdown that waits
// for it.
func TestStopWithProbesInFlight(t *testing.T) {
	url := pgtest.NewDatabase(t, template)
	cfg := loadConfig(t, config.ModeDev, config.EnvDatabaseURL, url)
	n, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := "http://" + n.HTTPAddr()
	var answered sync.WaitGroup
	answered.Add(4)
	done := make(chan struct{})
	var probes sync.WaitGroup
	for i := 0; i < 4; i++ {
		probes.Add(1)
		go func() {
			defer probes.Done()
			first := true
			for {
				select {
				case <-done:
					return
				default:
				}
				if code, _, err := get(base + "/readyz"); err == nil && code == 200 && first {
					first = false
					answered.Done()
				} else if err != nil && first {
					first = false
					answered.Done()
				}
			}
		}()
	}
	answered.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = n.Stop(ctx)
	close(done)
	probes.Wait()
	if err != nil {
		t.Fatalf("Stop with probes in flight: %v", err)
	}
}

// TestWaitReportsAFailedAPIListener closes the API's listener under a
// running node: Wait must return the reason instead of running half-alive.
func TestWaitReportsAFailedAPIListener(t *testing.T) {
	url := pgtest.NewDatabase(t, template)
	n := startNode(t, loadConfig(t, config.ModeDev, config.EnvDatabaseURL, url), io.Discard)
	n.refs.RLock()
	ln := n.api.ln
	n.refs.RUnlock()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := n.Wait(ctx)
	if err == nil || !strings.Contains(err.Error(), "serve http api") {
		t.Fatalf("Wait after the listener failed: %v", err)
	}
}

// TestRunXMTPNodeServesOpsAndStops runs the xmtp-node mode in-process:
// the ops endpoints answer and follow the node's readiness, and the run
// ends cleanly with its context. A busy ops address fails the start.
func TestRunXMTPNodeServesOpsAndStops(t *testing.T) {
	url := pgtest.NewDatabase(t, template)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := loadConfig(t, config.ModeXMTPNode, config.EnvDatabaseURL, url, config.EnvXMTPNodeOpsAddr, busy.Addr().String())
	if err := RunXMTPNode(context.Background(), Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "BRIDGE_XMTP_NODE_OPS_ADDR") {
		t.Fatalf("RunXMTPNode with a busy ops address: %v", err)
	}

	cfg = loadConfig(t, config.ModeXMTPNode, config.EnvDatabaseURL, url, config.EnvXMTPNodeOpsAddr, "127.0.0.1:0")
	var logs testkit.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunXMTPNode(ctx, Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	}()
	ops := waitLog(t, &logs, "ops endpoints listening", done)["ops_addr"]
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body, err := get("http://" + ops + path); err != nil || code != 200 || body != "{\"ok\":true}\n" {
			t.Fatalf("%s: %d %q %v", path, code, body, err)
		}
	}
	if code, body, err := get("http://" + ops + "/metrics"); err != nil || code != 200 || !strings.Contains(body, "bridge_build_info") {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunXMTPNode after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("RunXMTPNode did not return after its context ended")
	}
}
